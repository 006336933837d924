using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Service.Models;

/// <summary>
/// Says what the service runs with (the execution provider, ONNX Runtime's telemetry, the JPEG decoder), then loads the
/// bundles before the server accepts requests; a required provider that is missing stops the start.
/// </summary>
public sealed class ModelLoadingService(ModelRegistry registry, SessionFactory sessionFactory, ILogger<ModelLoadingService> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var provider = sessionFactory.Provider;
        if (provider.FallbackReason is not null)
        {
            logger.LogWarning("Inference:ExecutionProvider is auto: the CUDA execution provider cannot be used ({Reason}); falling back to {Provider}",
                provider.FallbackReason, provider.Provider);
        }
        var telemetry = sessionFactory.TelemetrySetting;
        if (telemetry == "1") logger.LogInformation("ONNX Runtime usage telemetry is off (ORT_DISABLE_TELEMETRY={TelemetrySetting})", telemetry);
        else logger.LogWarning("ONNX Runtime usage telemetry may be on: ORT_DISABLE_TELEMETRY={TelemetrySetting}, as the operator set it (1 turns it off)", telemetry ?? "(unset)");
        if (TurboJpeg.IsAvailable) logger.LogInformation("JPEG uploads are decoded by {JpegDecoder:l}", TurboJpeg.Description);
        else logger.LogWarning("JPEG uploads are decoded by {JpegDecoder:l}: install libturbojpeg0 for the trainer's pixels", TurboJpeg.Description);
        registry.LoadAll();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
