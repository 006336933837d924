using Microsoft.Extensions.DependencyInjection.Extensions;
using ProtoPNet.Service.Training;

namespace ProtoPNet.Service.Hosting;

public static class TrainingHostingExtensions
{
    /// <summary>
    /// Training jobs (the /training endpoints): the jobs folder store and the trainer's catalogue of presets and options.
    /// Training:DataRoot, when set, must be an existing folder.
    /// </summary>
    public static IHostApplicationBuilder AddTraining(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<TrainingOptions>().BindSettings(builder.Configuration, TrainingOptions.SectionName)
            .ValidateDataAnnotations()
            .Validate(o => string.IsNullOrWhiteSpace(o.DataRoot) || Directory.Exists(o.DataRoot),
                "Training:DataRoot must be an existing folder (or empty: jobs cannot name data folders)")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(_ => TrainerCatalog.Load());
        builder.Services.AddSingleton<TrainingJobStore>();
        builder.Services.AddHostedService<TrainingStartReport>();
        builder.Services.AddHostedService<FinishedJobRetention>();
        return builder;
    }
}
