using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Service.Models;

/// <summary>
/// Says what the service runs with (the execution provider, ONNX Runtime's telemetry, the JPEG decoder) before the server
/// listens, so a required provider that is missing stops the start; then, once the server listens, loads the bundles.
/// Loading after the server has taken its address means an address in use stops the start at once, not after seconds
/// of loading (a large bundle's execution strategy is measured as it loads), and that /health/live answers meanwhile
/// while /health/ready and /classify answer 503 no-model-ready, "loading". The host's start (and so a test's
/// WebApplicationFactory) still ends only once the bundles are loaded.
/// </summary>
public sealed class ModelLoadingService(ModelRegistry registry, SessionFactory sessionFactory, IHostApplicationLifetime lifetime,
    ILogger<ModelLoadingService> logger) : IHostedLifecycleService
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
        if (LibWebp.IsAvailable) logger.LogInformation("WebP uploads are decoded by {WebpDecoder:l}", LibWebp.Description);
        else logger.LogWarning("WebP uploads are decoded by {WebpDecoder:l}: install libwebp7 for the trainer's pixels", LibWebp.Description);
        if (LibWebpDemux.IsAvailable) logger.LogInformation("WebP containers are judged by {WebpDemuxer:l}", LibWebpDemux.Description);
        else logger.LogWarning("WebP containers are judged by {WebpDemuxer:l}: install libwebpdemux2 to refuse the ones Pillow refuses", LibWebpDemux.Description);
        if (LibDeflate.IsAvailable) logger.LogInformation("TIFF deflate strips are judged by {TiffInflater:l}", LibDeflate.Description);
        else logger.LogWarning("TIFF deflate strips are judged by {TiffInflater:l}: install libdeflate0 to refuse the damaged ones Pillow refuses", LibDeflate.Description);
        return Task.CompletedTask;
    }

    /// <summary>After every hosted service has started, the server included; a shutdown meanwhile stops the loading.</summary>
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        registry.LoadAll(lifetime.ApplicationStopping);
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
