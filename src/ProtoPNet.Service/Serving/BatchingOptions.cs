using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Configuration section <c>Batching</c> (environment <c>Batching__MaxBatchSize</c>, ...): the dynamic batcher each served
/// model version has. Concurrent requests are coalesced into one ONNX Runtime run of at most <see cref="MaxBatchSize"/>
/// images, waiting at most <see cref="MaxQueueDelayMs"/> for more once a first image is queued.
/// </summary>
public sealed class BatchingOptions
{
    public const string SectionName = "Batching";

    /// <summary>Most images in one network run (default 16). 1 turns batching off.</summary>
    [Range(1, 1024)]
    public int MaxBatchSize { get; set; } = 16;

    /// <summary>
    /// Milliseconds a run may wait for more images once it has one (default 0, as in Triton). Requests that arrive while a
    /// run is busy are batched without any wait; a delay only helps requests that arrive a little apart, and costs every
    /// lone request that much latency.
    /// </summary>
    [Range(0, 10_000)]
    public int MaxQueueDelayMs { get; set; }

    /// <summary>Most images waiting per model version (default 256). Beyond it a request is answered 503 with Retry-After at once.</summary>
    [Range(1, 1_000_000)]
    public int MaxQueueSize { get; set; } = 256;

    /// <summary>Network runs in flight per model version (default 1: on a CPU one run already uses every core).</summary>
    [Range(1, 64)]
    public int MaxConcurrentRuns { get; set; } = 1;

    /// <summary>Milliseconds an image may wait in the queue before its request is answered 503 (default 10000).</summary>
    [Range(1, 600_000)]
    public int QueueTimeoutMs { get; set; } = 10_000;
}
