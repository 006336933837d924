using ProtoPNet.Service.Models;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

/// <summary>The gauges /metrics reads at each scrape, from the parts of the service that hold the state.</summary>
internal static class ServiceGauges
{
    /// <summary>Queue depth per served version, requests waiting to decode, answers waiting to draw, the request bytes held in memory and spooled, Kestrel's connection buffers, the execution provider, the versions served and refused.</summary>
    public static void Register(IServiceProvider services)
    {
        var metrics = services.GetRequiredService<ServiceMetrics>();
        var registry = services.GetRequiredService<ModelRegistry>();
        var preprocessing = services.GetRequiredService<PreprocessingGate>();
        var drawing = services.GetRequiredService<DrawingTurns>();
        var buffers = services.GetRequiredService<BufferBudget>();
        var spool = services.GetRequiredService<SpoolBudget>();
        var connectionBuffers = services.GetRequiredService<ConnectionBufferPoolFactory>();
        metrics.ObserveGauge("protopnet.queue.depth", "{image}", "Images waiting for a network run, per model version.", () =>
            registry.Catalog.Served.Values.Select(s => new System.Diagnostics.Metrics.Measurement<long>(s.Batcher.QueueDepth,
                ServiceMetrics.Tag("model", s.Bundle.Name), ServiceMetrics.Tag("version", s.Bundle.Version))));
        metrics.ObserveGauge("protopnet.decode.waiting", "{request}", "Requests waiting for their turn to decode their images.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(preprocessing.Waiting)]);
        metrics.ObserveGauge("protopnet.drawing.waiting", "{answer}", "Answers waiting for their turn to draw their heatmaps or card.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(drawing.Waiting)]);
        metrics.ObserveGauge("protopnet.buffered_bytes", "By", "Request bytes held in memory (uploads until decoded, pixels kept to draw on and the pictures being drawn, v2 bodies), of Images:MaxBufferedBytes.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(buffers.Held)]);
        metrics.ObserveGauge("protopnet.spooled_bytes", "By", "Bytes of multipart image parts being spooled to disk by the uploads in progress, of Images:MaxSpooledBytes (0: no limit).", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(spool.Spooled)]);
        metrics.ObserveGauge("protopnet.connection_buffer_bytes", "By", "Bytes in the blocks Kestrel reads requests into and writes answers from: in use, and kept free for reuse.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(connectionBuffers.BytesHeld)]);
        metrics.ObserveGauge("protopnet.model.ready", "{version}", "1 for each loaded model version, with whether it is the one served by default.", () =>
            registry.Catalog.Families.Values.SelectMany(f => f.Versions.Select(v => new System.Diagnostics.Metrics.Measurement<long>(1,
                ServiceMetrics.Tag("model", v.Name), ServiceMetrics.Tag("version", v.Version),
                ServiceMetrics.Tag("default", ReferenceEquals(v, f.Served) ? "true" : "false")))));
        metrics.ObserveGauge("protopnet.execution_provider.info", "", "1, labelled with the ONNX Runtime execution provider the sessions run on.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(1, ServiceMetrics.Tag("provider", registry.Provider.Provider))]);
        metrics.ObserveGauge("protopnet.models.refused", "{bundle}", "Bundle folders under the model root that failed a load check.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(registry.Catalog.Refused.Count)]);
    }
}
