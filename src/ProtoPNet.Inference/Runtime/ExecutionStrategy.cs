using System.Diagnostics;

namespace ProtoPNet.Inference.Runtime;

/// <summary>How a model version's network runs are shaped: at most <paramref name="MaxBatchSize"/> images per run,
/// <paramref name="ConcurrentRuns"/> runs in flight, each run's operators on up to <paramref name="IntraOpThreads"/>
/// threads (ONNX Runtime's pool, shared by concurrent runs). <paramref name="Source"/> says how it was chosen:
/// <c>measured</c> (on the CPU at load), <c>cuda</c> (batches on the GPU) or <c>configured</c>.</summary>
public sealed record ExecutionStrategy(int MaxBatchSize, int ConcurrentRuns, int IntraOpThreads, string Source)
{
    /// <summary>What was measured to choose it (empty unless measured).</summary>
    public IReadOnlyList<StrategyMeasurement> Measurements { get; init; } = [];

    public override string ToString() =>
        $"batches of up to {MaxBatchSize}, {ConcurrentRuns} concurrent run(s), {IntraOpThreads} intra-op thread(s) ({Source})";
}

/// <summary>
/// Images per second of <paramref name="ConcurrentRuns"/> callers each running batches of <paramref name="BatchSize"/>,
/// and the process's CPU milliseconds per image meanwhile.
/// </summary>
public sealed record StrategyMeasurement(int BatchSize, int ConcurrentRuns, double ImagesPerSecond, double CpuMsPerImage);

/// <summary>
/// Chooses the execution strategy of a session on the CPU by measuring it. On a CPU the best batch size depends on the
/// model: a small network is dominated by the fixed cost of a run, which batching spreads, while a ResNet's convolutions
/// cost about the same per image in any batch and a large batch only leaves cores idle (ONNX Runtime parallelises one
/// run's operators poorly when its threads do not spin). So: with as many concurrent runs as cores (the cores stay busy
/// whenever there is work), the batch size that costs the least CPU per image is taken; CPU time per image also hardly
/// changes when other work shares the machine, where images per second do. With fewer runs than cores, the batch size
/// with the most images per second is taken.
/// </summary>
public static class ExecutionStrategyTuner
{
    /// <summary>Batch sizes tried (up to the configured largest, which is always tried).</summary>
    private static readonly int[] BatchSizes = [1, 4, 16];

    /// <summary>Turns each batch size gets; its best is kept.</summary>
    private const int Rounds = 3;

    /// <summary>A larger batch must beat a smaller one by this much to be taken (latency and memory grow with it).</summary>
    private const double RequiredGain = 1.08;

    /// <param name="session">The session to measure (a freshly loaded one, not yet serving).</param>
    /// <param name="maxBatchSize">The largest batch to try.</param>
    /// <param name="concurrentRuns">The runs in flight.</param>
    /// <param name="intraOpThreads">The session's intra-op threads, reported with the choice.</param>
    /// <param name="slice">How long each batch size runs per round (at least one run per caller).</param>
    public static ExecutionStrategy Measure(BundleSession session, int maxBatchSize, int concurrentRuns, int intraOpThreads, TimeSpan slice)
    {
        var batches = BatchSizes.Where(b => b < maxBatchSize).Append(maxBatchSize).ToArray();
        var saturating = concurrentRuns >= Environment.ProcessorCount;
        // One mid-grey input for the largest batch; a network's run time does not depend on the pixel values.
        var input = session.RentBuffer(maxBatchSize);
        try
        {
            Array.Fill(input, 0.5f, 0, maxBatchSize * session.ImageElementCount);
            // The first run of a batch size sizes ONNX Runtime's buffers: not timed.
            foreach (var batch in batches) Run(session, input, batch, concurrentRuns, TimeSpan.Zero);
            // The batch sizes take turns, several rounds, and each keeps its best round: other work on the machine only
            // ever slows a measurement down, and taking turns spreads it over all of them.
            var best = batches.ToDictionary(b => b, _ => (ImagesPerSecond: 0.0, CpuMsPerImage: double.PositiveInfinity));
            for (var round = 0; round < Rounds; round++)
            {
                foreach (var batch in batches)
                {
                    var (rate, cpu) = Run(session, input, batch, concurrentRuns, slice);
                    best[batch] = (Math.Max(best[batch].ImagesPerSecond, rate), Math.Min(best[batch].CpuMsPerImage, cpu));
                }
            }

            // The smallest batch within RequiredGain of the best.
            double Score(int batch) => saturating ? 1 / best[batch].CpuMsPerImage : best[batch].ImagesPerSecond;
            var top = batches.Max(Score);
            var chosen = batches.First(b => Score(b) * RequiredGain >= top);
            return new ExecutionStrategy(chosen, concurrentRuns, intraOpThreads, "measured")
            {
                Measurements = batches.Select(b => new StrategyMeasurement(b, concurrentRuns, Math.Round(best[b].ImagesPerSecond, 1),
                    Math.Round(best[b].CpuMsPerImage, 3))).ToArray(),
            };
        }
        finally
        {
            BundleSession.ReturnBuffer(input);
        }
    }

    /// <summary>
    /// Images per second of <paramref name="runs"/> callers each running batches of <paramref name="batch"/> for about
    /// <paramref name="slice"/> (at least once), and the process's CPU milliseconds per image.
    /// </summary>
    private static (double ImagesPerSecond, double CpuMsPerImage) Run(BundleSession session, float[] input, int batch, int runs, TimeSpan slice)
    {
        var images = 0L;
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, runs).Select(_ => new Thread(() =>
        {
            do
            {
                session.Run(input, batch).Dispose();
                Interlocked.Add(ref images, batch);
            }
            while (clock.Elapsed < slice);
        }) { IsBackground = true }).ToArray();
        foreach (var caller in callers) caller.Start();
        foreach (var caller in callers) caller.Join();
        var elapsed = clock.Elapsed.TotalSeconds;
        process.Refresh();
        return (images / elapsed, (process.TotalProcessorTime - cpuBefore).TotalMilliseconds / images);
    }
}
