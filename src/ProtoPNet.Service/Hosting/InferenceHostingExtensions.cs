using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Models;

namespace ProtoPNet.Service.Hosting;

public static class InferenceHostingExtensions
{
    /// <summary>Options (validated at start), ONNX Runtime sessions, image decoding, the classifier and the model registry.</summary>
    public static IHostApplicationBuilder AddInference(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        services.AddOptions<InferenceOptions>().Bind(configuration.GetSection(InferenceOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ImageLimits>().Bind(configuration.GetSection(ImageLimits.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ModelsOptions>().Bind(configuration.GetSection(ModelsOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ClassifyOptions>().Bind(configuration.GetSection(ClassifyOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();

        services.AddSingleton(sp => new SessionFactory(sp.GetRequiredService<IOptions<InferenceOptions>>().Value));
        services.AddSingleton<BundleLoader>();
        services.AddSingleton(sp => new ImageDecoder(sp.GetRequiredService<IOptions<ImageLimits>>().Value));
        services.AddSingleton<Classifier>();
        services.AddSingleton<ModelRegistry>();
        services.AddHostedService<ModelLoadingService>();

        // Kestrel's own body limit: a full batch of images at the per-image limit, plus room for multipart headers.
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<ImageLimits>, IOptions<ClassifyOptions>>((kestrel, limits, classify) =>
            kestrel.Limits.MaxRequestBodySize = limits.Value.MaxBytes * classify.Value.MaxBatchImages + 1024 * 1024);
        return builder;
    }
}
