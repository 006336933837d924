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

/// <summary>Images per second of <paramref name="ConcurrentRuns"/> callers each running batches of <paramref name="BatchSize"/>.</summary>
public sealed record StrategyMeasurement(int BatchSize, int ConcurrentRuns, double ImagesPerSecond);

/// <summary>
/// Chooses the execution strategy of a session on the CPU by measuring it: which batch size and how many concurrent
/// runs give the most images per second. On a CPU this depends on the model: a small network is dominated by the
/// fixed cost of a run, which batching spreads, while a ResNet's convolutions run slower per image in a large batch
/// (its activations leave the caches) and faster as independent runs on ONNX Runtime's shared thread pool.
/// </summary>
public static class ExecutionStrategyTuner
{
    /// <summary>Batch sizes tried (up to the configured largest, which is always tried).</summary>
    private static readonly int[] BatchSizes = [1, 4, 16];

    /// <summary>Turns each shape gets; its best is kept.</summary>
    private const int Rounds = 3;

    /// <summary>A larger batch or more runs must beat the smaller choice by this much to be taken (latency and memory grow with them).</summary>
    private const double RequiredGain = 1.08;

    /// <param name="session">The session to measure (a freshly loaded one, not yet serving).</param>
    /// <param name="maxBatchSize">The largest batch to try.</param>
    /// <param name="maxConcurrentRuns">The most concurrent runs to try (1 and this).</param>
    /// <param name="intraOpThreads">The session's intra-op threads, reported with the choice.</param>
    /// <param name="slice">How long each candidate runs per round (at least one run per caller).</param>
    public static ExecutionStrategy Measure(BundleSession session, int maxBatchSize, int maxConcurrentRuns, int intraOpThreads, TimeSpan slice)
    {
        var batches = BatchSizes.Where(b => b < maxBatchSize).Append(maxBatchSize).ToArray();
        int[] runs = maxConcurrentRuns > 1 ? [1, maxConcurrentRuns] : [1];
        (int Batch, int Runs)[] shapes = [.. runs.SelectMany(r => batches.Select(b => (b, r)))];
        // One mid-grey input for the largest batch; a network's run time does not depend on the pixel values.
        var input = session.RentBuffer(maxBatchSize);
        try
        {
            Array.Fill(input, 0.5f, 0, maxBatchSize * session.ImageElementCount);
            // The first run of a shape sizes ONNX Runtime's buffers: not timed.
            foreach (var (batch, callers) in shapes) Run(session, input, batch, callers, TimeSpan.Zero);
            // The shapes take turns, several rounds, and each keeps its best round: other work on the machine only ever
            // slows a measurement down, and taking turns spreads it over all of them.
            var best = shapes.ToDictionary(s => s, _ => 0.0);
            for (var round = 0; round < Rounds; round++)
            {
                foreach (var shape in shapes) best[shape] = Math.Max(best[shape], Run(session, input, shape.Batch, shape.Runs, slice));
            }

            // The smallest batch, then the fewest runs, that comes within RequiredGain of the fastest.
            var fastest = best.Values.Max();
            var chosen = shapes.OrderBy(s => s.Batch).ThenBy(s => s.Runs).First(s => best[s] * RequiredGain >= fastest);
            return new ExecutionStrategy(chosen.Batch, chosen.Runs, intraOpThreads, "measured")
            {
                Measurements = shapes.Select(s => new StrategyMeasurement(s.Batch, s.Runs, Math.Round(best[s], 1))).ToArray(),
            };
        }
        finally
        {
            BundleSession.ReturnBuffer(input);
        }
    }

    /// <summary>
    /// Images per second of <paramref name="runs"/> callers each running batches of <paramref name="batch"/> for about
    /// <paramref name="slice"/>, and at least once.
    /// </summary>
    private static double Run(BundleSession session, float[] input, int batch, int runs, TimeSpan slice)
    {
        var images = 0L;
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
        return images / clock.Elapsed.TotalSeconds;
    }
}
