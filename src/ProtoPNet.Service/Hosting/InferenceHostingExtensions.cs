using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

public static class InferenceHostingExtensions
{
    /// <summary>Options (validated at start), ONNX Runtime sessions, image decoding, the classifier, the model registry and the classification use case.</summary>
    public static IHostApplicationBuilder AddInference(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        services.AddOptions<InferenceOptions>().BindSettings(configuration, InferenceOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ImageLimits>().BindSettings(configuration, ImageLimits.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ModelsOptions>().BindSettings(configuration, ModelsOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => ModelSelector.IsValidName(o.DefaultModel), $"Models:DefaultModel is not a model name: {ModelSelector.NameRule}")
            .Validate(o => o.Pinned.All(pin => ModelSelector.IsValidName(pin.Key) && (string.IsNullOrWhiteSpace(pin.Value) || ModelSelector.IsValidName(pin.Value.Trim()))),
                $"Models:Pinned holds a model name or version that cannot be one: {ModelSelector.NameRule}")
            .Validate(o => string.IsNullOrWhiteSpace(o.Root) || !File.Exists(o.Root), "Models:Root is a file; it must be a folder (of model folders)")
            .ValidateOnStart();
        services.AddOptions<ClassifyOptions>().BindSettings(configuration, ClassifyOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        services.AddSingleton(sp => new SessionFactory(sp.GetRequiredService<IOptions<InferenceOptions>>().Value));
        services.AddSingleton<BundleLoader>();
        services.AddSingleton(sp =>
        {
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger<ImageDecoder>();
            var metrics = sp.GetRequiredService<ServiceMetrics>();
            return new ImageDecoder(sp.GetRequiredService<IOptions<ImageLimits>>().Value, fault =>
            {
                metrics.DecoderFaults.Add(1);
                logger.LogError(fault, "The image decoder failed on an upload, which was refused 400 image-not-decodable: a fault of the service's, " +
                    "to be mended (the exception follows)");
            });
        });
        services.AddSingleton<Classifier>();
        services.AddSingleton(SettleClock.System);
        services.AddSingleton<BundleScanner>();
        services.AddSingleton<VersionPolicy>();
        services.AddSingleton<StrategySelector>();
        services.AddSingleton<ModelRegistry>();
        services.AddSingleton<ClassificationService>();
        services.AddHostedService<OnnxRuntimeLogForwarder>();
        services.AddHostedService<ModelLoadingService>();
        return builder;
    }
}
