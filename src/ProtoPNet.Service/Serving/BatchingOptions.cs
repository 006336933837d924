using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Service.Serving;

/// <summary>How the batch size and the number of concurrent runs of a model version are chosen.</summary>
public enum StrategyChoice
{
    /// <summary>
    /// On the CPU, measured when the version loads: with <see cref="BatchingOptions.MaxConcurrentRuns"/> runs in flight,
    /// batch sizes 1, 4 and 16 up to <see cref="BatchingOptions.MaxBatchSize"/>, each on a session whose runs use a
    /// thread per core and (unless Inference:IntraOpThreads is set) on one whose runs use one thread; the shape with the
    /// least CPU per image is taken (a smaller batch, or the thread-per-core session, when within 3 % of it; a session with
    /// more threads per run must also cost 20 % less). On CUDA:
    /// batches of <see cref="BatchingOptions.MaxBatchSize"/>, one run at a time.
    /// </summary>
    Auto,

    /// <summary>Exactly <see cref="BatchingOptions.MaxBatchSize"/> and <see cref="BatchingOptions.MaxConcurrentRuns"/>.</summary>
    Fixed,
}

/// <summary>Whether each session of a model version runs one batch size (<see cref="BatchingOptions.PadBatches"/>).</summary>
public enum PadBatchesChoice
{
    /// <summary>On CUDA, where a change of batch size costs about as much as a first run; not on the CPU.</summary>
    Auto,

    /// <summary>Always: batches of exactly the strategy's batch size (fewer images padded up to it), single images on a session of their own.</summary>
    Always,

    /// <summary>Never: every batch runs at its own size on the version's session.</summary>
    Never,
}

/// <summary>
/// Configuration section <c>Batching</c> (environment <c>Batching__MaxBatchSize</c>, ...): the dynamic batcher each served
/// model version has. Concurrent requests are coalesced into one ONNX Runtime run of at most the strategy's batch size,
/// waiting at most <see cref="MaxQueueDelayMs"/> for more once a first image is queued.
/// </summary>
public sealed class BatchingOptions
{
    public const string SectionName = "Batching";

    /// <summary><c>auto</c> (default): measured per model version at load on the CPU, batched on CUDA; <c>fixed</c>: as configured.</summary>
    [EnumDataType(typeof(StrategyChoice))]   // the binder takes any number for an enum
    public StrategyChoice Strategy { get; set; } = StrategyChoice.Auto;

    /// <summary>
    /// <c>auto</c> (default): on CUDA every batch of more than one image runs at exactly the strategy's batch size (fewer
    /// images padded up to it, the padding's outputs dropped) and single images on a second session, since there a run
    /// whose batch size differs from the previous run's costs about as much as the first run of that size; not on the CPU.
    /// <c>always</c>, <c>never</c>: on any provider.
    /// </summary>
    [EnumDataType(typeof(PadBatchesChoice))]
    public PadBatchesChoice PadBatches { get; set; } = PadBatchesChoice.Auto;

    /// <summary>Most images in one network run (default 16): the largest batch <c>auto</c> tries, the batch size on CUDA and with <c>fixed</c>. 1 turns batching off.</summary>
    [Range(1, 1024)]
    public int MaxBatchSize { get; set; } = 16;

    /// <summary>
    /// Milliseconds a run may wait for more images once it has one (default 0, as in Triton). Requests that arrive while a
    /// run is busy are batched without any wait; a delay only helps requests that arrive a little apart, and costs every
    /// lone request that much latency.
    /// </summary>
    [Range(0, 10_000)]
    public int MaxQueueDelayMs { get; set; }

    /// <summary>
    /// Most images waiting per model version (default 256). Beyond it a request is answered 503 with Retry-After at once.
    /// Also the most requests waiting for a turn to decode (<see cref="PreprocessingGate"/>) and the most answers waiting
    /// for a turn to draw (<see cref="DrawingTurns"/>): the three queues in front of the cores share one bound.
    /// </summary>
    [Range(1, 1_000_000)]
    public int MaxQueueSize { get; set; } = 256;

    /// <summary>
    /// Network runs in flight per model version on the CPU (with <c>auto</c> too; on CUDA <c>auto</c> runs one at a time).
    /// Default 0: one per core, which keeps every core busy with whole runs.
    /// </summary>
    [Range(0, 64)]
    public int MaxConcurrentRuns { get; set; }

    /// <summary><see cref="MaxConcurrentRuns"/> with 0 resolved to one per core.</summary>
    public int ConcurrentRunsLimit => MaxConcurrentRuns > 0 ? MaxConcurrentRuns : Environment.ProcessorCount;

    /// <summary>
    /// With <c>auto</c> on the CPU (default true): where the other session measured (another number of threads per run)
    /// answered one image after a short pause at least 5 % sooner than the serving one, keep a session with its threads
    /// for a single image of a request alone (the only inference request in progress, and no two together for
    /// <see cref="LoneQuietMs"/>). Costs a second copy of the model in memory; false never keeps one.
    /// </summary>
    public bool LoneRuns { get; set; } = true;

    /// <summary>
    /// Milliseconds after two inference requests were last in progress together during which the only one is not run
    /// on the session for lone runs (default 100; 0: whenever it is the only one). Under a load of a few callers there
    /// are moments with one request in progress while the next is on its way, and a lone run's second thread takes the
    /// core that the next request is read and decoded on: the default model at 2 callers, p50 1.39 against 0.95 ms,
    /// and at 4, 3.09 against 1.90 ms, with lone runs and without.
    /// </summary>
    [Range(0, 600_000)]
    public int LoneQuietMs { get; set; } = 100;

    /// <summary>
    /// Milliseconds an image may wait in the model's queue, or a request for its turn to decode or to draw, before it is
    /// answered 503 (default 10000).
    /// </summary>
    [Range(1, 600_000)]
    public int QueueTimeoutMs { get; set; } = 10_000;

    /// <summary>
    /// Seconds every turn to decode may stay held with none given meanwhile before the service is not live (default
    /// 120): decodes that never return (a decoder's endless loop) hold the turns for good, and every later request is
    /// refused 503; /health/live then answers 500 (decoding-stuck) so that the orchestrator restarts the service.
    /// </summary>
    [Range(1, 86_400)]
    public int DecodeStuckSeconds { get; set; } = 120;
}
