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

    /// <summary>
    /// Threads per run for a request that runs while no other does: other than <see cref="IntraOpThreads"/> where a
    /// session with another number was measured answering one image after a short pause at least 5 % sooner (it is then
    /// kept beside the serving one), else the same.
    /// </summary>
    public int LoneIntraOpThreads { get; init; } = IntraOpThreads;

    /// <summary>
    /// Whether every batch of more than one image runs at exactly <see cref="MaxBatchSize"/> (fewer padded) and single
    /// images on a session of their own (<see cref="BundleSession.FixedBatchSize"/>).
    /// </summary>
    public bool PaddedBatches { get; init; }

    /// <summary>One image after a short pause, on each session measured (empty unless there were several).</summary>
    public IReadOnlyList<LoneMeasurement> LoneMeasurements { get; init; } = [];

    public override string ToString() =>
        $"batches of up to {MaxBatchSize}, {ConcurrentRuns} concurrent run(s), {IntraOpThreads} intra-op thread(s) ({Source})";
}

/// <summary>
/// Images per second of <paramref name="ConcurrentRuns"/> callers each running batches of <paramref name="BatchSize"/>
/// on a session whose runs use <paramref name="IntraOpThreads"/> threads, and the process's CPU milliseconds per image meanwhile.
/// </summary>
public sealed record StrategyMeasurement(int BatchSize, int ConcurrentRuns, int IntraOpThreads, double ImagesPerSecond, double CpuMsPerImage);

/// <summary>
/// The median milliseconds of one image run after a short pause (as a caller sending images in sequence comes back) on
/// a session whose runs use <paramref name="IntraOpThreads"/> threads, in the best of the rounds, each of <paramref name="Runs"/> runs.
/// </summary>
public sealed record LoneMeasurement(int IntraOpThreads, double P50Ms, int Runs);

/// <summary>One session the tuner may choose: the same graph, its runs on <paramref name="IntraOpThreads"/> threads.</summary>
public sealed record SessionCandidate(BundleSession Session, int IntraOpThreads);

/// <summary>
/// Chooses the execution strategy on the CPU by measuring it. On a CPU the best shape depends on the model: a small
/// network is dominated by the fixed cost of a run, which batching spreads, while a ResNet's convolutions cost about the
/// same per image in any batch; and one run's operators spread over several threads (intra-op) cost synchronisation
/// that one thread per run avoids. So: with as many concurrent runs as cores (the cores stay busy whenever there is
/// work), each candidate session (intra-op threads) and batch size is measured, and the shape that costs the least CPU
/// per image is taken (<see cref="ChooseShape"/>); CPU time per image also hardly changes when other work shares the
/// machine, where images per second do. With fewer runs than cores, the shape with the most images per second is taken.
/// </summary>
public static class ExecutionStrategyTuner
{
    /// <summary>Batch sizes tried (up to the configured largest, which is always tried).</summary>
    private static readonly int[] BatchSizes = [1, 4, 16];

    /// <summary>Turns each shape gets; its best is kept.</summary>
    private const int Rounds = 3;

    /// <summary>
    /// A shape later in the order of preference (the first session before the others, smaller batches before larger)
    /// must beat the preferred one by this much to be taken: less is measurement noise. A larger batch only adds latency
    /// when requests queue, since a lone request runs at once whatever the batch size.
    /// </summary>
    private const double RequiredGain = 1.03;

    /// <summary>
    /// A session other than the serving one is kept for requests that run alone only if it answers one image at least
    /// this much sooner: keeping it costs a second copy of the model in memory. The same for a session with more threads
    /// per run, whose runs wake a second thread for each operator (more CPU per request): a request runs alone only when
    /// no two have been in progress together for a while (the service's Batching:LoneQuietMs): that CPU is idle then.
    /// </summary>
    private const double LoneRequiredGain = 1.05;

    /// <summary>
    /// What a session with more threads per run than the fewest must gain in CPU per image to serve with a run per
    /// core: the runs already keep every core busy, and a second thread per run is woken for each operator, which costs
    /// more in the service, whose own threads share the cores, than in this measurement (the default model at
    /// concurrency 32, in one paired run: 0.56 ms of the service's CPU per image and 3,190 images/s with two threads per
    /// run, 0.46 ms and 3,746 with one; the measurement at load had put the two-thread session within 3 % and chosen it).
    /// </summary>
    private const double MoreThreadsGain = 1.2;

    /// <summary>
    /// How long the measuring thread works (spins, not sleeps) before each lone run: about what the service does between
    /// the runs of a caller sending images in sequence, while ONNX Runtime's other threads sleep. After a millisecond's
    /// sleep a virtual machine halts its idle CPU, and waking it for a run's second thread made two threads measure
    /// slower than one for the default model (0.60 against 0.56 ms), where a caller in sequence finds them quicker
    /// (0.43 against 0.55; docs/PERFORMANCE.md, thirty-third session).
    /// </summary>
    private static readonly TimeSpan LonePause = TimeSpan.FromMilliseconds(0.3);

    /// <param name="candidates">Sessions of the same graph to measure (freshly loaded, not yet serving), the preferred first.</param>
    /// <param name="maxBatchSize">The largest batch to try.</param>
    /// <param name="concurrentRuns">The runs in flight.</param>
    /// <param name="slice">How long each shape runs per round (at least one run per caller).</param>
    /// <param name="loneRuns">Whether to measure the sessions one image at a time for requests that run alone (<see cref="ExecutionStrategy.LoneIntraOpThreads"/>).</param>
    /// <param name="cancel">Stops the measurement after the runs in progress (<see cref="OperationCanceledException"/>): a
    /// large model's takes seconds, which a shutdown should not wait for.</param>
    /// <param name="betweenRuns">Called on the calling thread before each run of a shape (every slice, or every run of
    /// the largest batch where that takes longer), outside the time and CPU measured: what the caller must not leave
    /// waiting for seconds (taking a deleted version off).</param>
    public static ExecutionStrategy Measure(IReadOnlyList<SessionCandidate> candidates, int maxBatchSize, int concurrentRuns, TimeSpan slice,
        bool loneRuns = true, CancellationToken cancel = default, Action? betweenRuns = null)
    {
        var batches = BatchSizes.Where(b => b < maxBatchSize).Append(maxBatchSize).ToArray();
        var shapes = candidates.SelectMany(c => batches.Select(b => (Candidate: c, Batch: b))).ToArray();
        var saturating = concurrentRuns >= Environment.ProcessorCount;
        // One mid-grey input for the largest batch; a network's run time does not depend on the pixel values.
        var session = candidates[0].Session;
        var input = session.RentBuffer(maxBatchSize);
        try
        {
            Array.Fill(input, 0.5f, 0, maxBatchSize * session.ImageElementCount);
            // The first run of a shape sizes ONNX Runtime's buffers: not timed.
            foreach (var (candidate, batch) in shapes)
            {
                betweenRuns?.Invoke();
                Run(candidate.Session, input, batch, concurrentRuns, TimeSpan.Zero, cancel);
            }
            // The shapes take turns, several rounds, and each keeps its best round: other work on the machine only ever
            // slows a measurement down, and taking turns spreads it over all of them.
            var best = new (double ImagesPerSecond, double CpuMsPerImage)[shapes.Length];
            Array.Fill(best, (0.0, double.PositiveInfinity));
            for (var round = 0; round < Rounds; round++)
            {
                for (var i = 0; i < shapes.Length; i++)
                {
                    betweenRuns?.Invoke();
                    var (rate, cpu) = Run(shapes[i].Candidate.Session, input, shapes[i].Batch, concurrentRuns, slice, cancel);
                    best[i] = (Math.Max(best[i].ImagesPerSecond, rate), Math.Min(best[i].CpuMsPerImage, cpu));
                }
            }

            var measured = shapes.Select((shape, i) => new StrategyMeasurement(shape.Batch, concurrentRuns, shape.Candidate.IntraOpThreads,
                Math.Round(best[i].ImagesPerSecond, 1), Math.Round(best[i].CpuMsPerImage, 3))).ToArray();
            var chosen = shapes[ChooseShape(measured, saturating)];
            var (loneThreads, loneMeasurements) = loneRuns ? MeasureLone(candidates, chosen.Candidate, input, slice, cancel, betweenRuns) : (chosen.Candidate.IntraOpThreads, []);
            return new ExecutionStrategy(chosen.Batch, concurrentRuns, chosen.Candidate.IntraOpThreads, "measured")
            {
                Measurements = measured,
                LoneIntraOpThreads = loneThreads,
                LoneMeasurements = loneMeasurements,
            };
        }
        finally
        {
            BundleSession.ReturnBuffer(input);
        }
    }

    /// <summary>
    /// The shape to serve with, of <paramref name="measured"/> (in the order of preference: the first session before
    /// the others, smaller batches before larger): the first within <see cref="RequiredGain"/> of the best, by CPU per
    /// image with a run per core (<paramref name="saturating"/>), else by images per second. With a run per core, a
    /// session with more threads per run than the fewest measured must also gain <see cref="MoreThreadsGain"/>.
    /// </summary>
    public static int ChooseShape(IReadOnlyList<StrategyMeasurement> measured, bool saturating)
    {
        var fewestThreads = measured.Min(m => m.IntraOpThreads);
        double Score(StrategyMeasurement m) => saturating
            ? 1 / m.CpuMsPerImage / (m.IntraOpThreads > fewestThreads ? MoreThreadsGain : 1)
            : m.ImagesPerSecond;
        var top = measured.Max(Score);
        return measured.Select((m, i) => (Score: Score(m), Index: i)).First(shape => shape.Score * RequiredGain >= top).Index;
    }

    /// <summary>
    /// A request that runs while no other does has the cores to itself, and a session whose runs use another number of
    /// threads may answer it sooner than the one chosen for load: more threads for a large network, one thread for a
    /// small one, whose runs are too short to repay waking another thread. Each session runs one image at a time after
    /// a short pause (<see cref="LonePause"/>: the measuring thread works while ONNX Runtime's threads sleep), in turns,
    /// and keeps its best round's median (<see cref="LoneThreadsFor"/> chooses).
    /// </summary>
    private static (int Threads, LoneMeasurement[] Measurements) MeasureLone(IReadOnlyList<SessionCandidate> candidates,
        SessionCandidate chosen, float[] input, TimeSpan slice, CancellationToken cancel, Action? betweenRuns)
    {
        if (candidates.Count < 2) return (chosen.IntraOpThreads, []);
        var best = new (double P50Ms, int Runs)[candidates.Count];
        Array.Fill(best, (double.PositiveInfinity, 0));
        for (var round = 0; round < Rounds; round++)
        {
            for (var i = 0; i < candidates.Count; i++)
            {
                betweenRuns?.Invoke();
                var (p50, runs) = RunAfterPauses(candidates[i].Session, input, slice, cancel);
                if (p50 < best[i].P50Ms) best[i] = (p50, runs);
            }
        }
        var measurements = candidates.Select((c, i) => new LoneMeasurement(c.IntraOpThreads, Math.Round(best[i].P50Ms, 3), best[i].Runs)).ToArray();
        return (LoneThreadsFor(measurements, chosen.IntraOpThreads), measurements);
    }

    /// <summary>
    /// The threads per run for requests that run alone, from each session's median for one image after a short pause:
    /// the quickest session that beats the serving one (<paramref name="servingThreads"/>) by <see cref="LoneRequiredGain"/>;
    /// else the serving one.
    /// </summary>
    public static int LoneThreadsFor(IReadOnlyList<LoneMeasurement> measurements, int servingThreads)
    {
        var servingMs = measurements.Single(m => m.IntraOpThreads == servingThreads).P50Ms;
        var better = measurements
            .Where(m => m.P50Ms * LoneRequiredGain <= servingMs)
            .MinBy(m => m.P50Ms);
        return better?.IntraOpThreads ?? servingThreads;
    }

    /// <summary>
    /// The median milliseconds of single-image runs, each after <see cref="LonePause"/>, for about
    /// <paramref name="slice"/>, pauses included (at least three runs), and how many ran.
    /// </summary>
    private static (double P50Ms, int Runs) RunAfterPauses(BundleSession session, float[] input, TimeSpan slice, CancellationToken cancel)
    {
        var times = new List<double>();
        var clock = Stopwatch.StartNew();
        while (times.Count < 3 || clock.Elapsed < slice)
        {
            cancel.ThrowIfCancellationRequested();
            var paused = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(paused) < LonePause) Thread.SpinWait(20);
            var start = Stopwatch.GetTimestamp();
            session.Run(input, 1).Dispose();
            times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        times.Sort();
        return (times[times.Count / 2], times.Count);
    }

    /// <summary>
    /// Images per second of <paramref name="runs"/> callers each running batches of <paramref name="batch"/> for about
    /// <paramref name="slice"/> (at least once), and the process's CPU milliseconds per image. A run that fails is
    /// thrown here, on the caller's thread (an exception left on a thread of its own would end the process), and so is
    /// <paramref name="cancel"/> once the runs in progress end.
    /// </summary>
    private static (double ImagesPerSecond, double CpuMsPerImage) Run(BundleSession session, float[] input, int batch, int runs, TimeSpan slice,
        CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        var images = 0L;
        Exception? failure = null;
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, runs).Select(_ => new Thread(() =>
        {
            try
            {
                do
                {
                    session.Run(input, batch).Dispose();
                    Interlocked.Add(ref images, batch);
                }
                while (clock.Elapsed < slice && Volatile.Read(ref failure) is null && !cancel.IsCancellationRequested);
            }
            catch (Exception exception)
            {
                Interlocked.CompareExchange(ref failure, exception, null);
            }
        }) { IsBackground = true }).ToArray();
        foreach (var caller in callers) caller.Start();
        foreach (var caller in callers) caller.Join();
        cancel.ThrowIfCancellationRequested();
        if (failure is not null)
        {
            throw new InvalidOperationException($"a batch of {batch} images failed to run: {failure.Message.Split('\n')[0]}", failure);
        }
        var elapsed = clock.Elapsed.TotalSeconds;
        process.Refresh();
        return (images / elapsed, (process.TotalProcessorTime - cpuBefore).TotalMilliseconds / images);
    }
}
