using System.Diagnostics;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Models;

/// <summary>
/// Chooses how a newly loaded version runs (Batching:Strategy): batch size, concurrent runs and intra-op threads,
/// measured on the CPU before the version serves (<see cref="ExecutionStrategyTuner"/>), batches on CUDA, or as configured;
/// and whether its batches are padded to one size (Batching:PadBatches, on CUDA by default).
/// </summary>
public sealed class StrategySelector(BundleLoader loader, SessionFactory sessionFactory, IOptions<BatchingOptions> batching, ILogger<StrategySelector> logger)
{
    /// <summary>How long each candidate shape runs per round when the strategy is measured (three rounds, a handful of shapes).</summary>
    private static readonly TimeSpan MeasureSlice = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// The version's execution strategy (Batching:Strategy): measured on the CPU before the version is served, batches
    /// of Batching:MaxBatchSize on CUDA (where a run's fixed cost is the GPU launch and copies, which batching spreads),
    /// or as configured. <paramref name="stopping"/> (the shutdown) stops a measurement with <see cref="OperationCanceledException"/>;
    /// <paramref name="whileMeasuring"/> is called between its runs, on this thread (see <see cref="ExecutionStrategyTuner.Measure"/>).
    /// </summary>
    public ExecutionStrategy Choose(ModelBundle bundle, CancellationToken stopping = default, Action? whileMeasuring = null)
    {
        var options = batching.Value;
        var threads = sessionFactory.IntraOpThreads;
        var cuda = bundle.Provider.Provider == SessionFactory.CudaProvider;
        var stopwatch = Stopwatch.StartNew();
        ExecutionStrategy strategy;
        try
        {
            strategy = options.Strategy == StrategyChoice.Fixed
                ? new ExecutionStrategy(options.MaxBatchSize, options.ConcurrentRunsLimit, threads, "configured")
                : cuda
                    ? new ExecutionStrategy(options.MaxBatchSize, 1, threads, "cuda")
                    : MeasureStrategy(bundle, threads, stopping, whileMeasuring);
            if (options.PadBatches == PadBatchesChoice.Always || (options.PadBatches == PadBatchesChoice.Auto && cuda))
            {
                ServeWithPaddedBatches(bundle, strategy.MaxBatchSize, threads, stopping);
                strategy = strategy with { PaddedBatches = true };
            }
        }
        catch (Exception exception) when (exception is not (BundleRefusedException or OutOfMemoryException)
            && !(exception is OperationCanceledException && stopping.IsCancellationRequested))
        {
            // E.g. a graph that runs the load checks' batches but not the larger ones measured (or warmed up) here.
            throw new BundleRefusedException(bundle.Directory, $"its execution strategy cannot be measured: {exception.Message.Split('\n')[0]}", exception);
        }
        if (strategy.Measurements.Count == 0)
        {
            logger.LogInformation("Model {Model}@{Version} runs batches of up to {MaxBatchSize} images, {ConcurrentRuns} concurrent runs, {IntraOpThreads} intra-op threads ({StrategySource})",
                bundle.Name, bundle.Version, strategy.MaxBatchSize, strategy.ConcurrentRuns, strategy.IntraOpThreads, strategy.Source);
        }
        else
        {
            logger.LogInformation("Model {Model}@{Version} runs batches of up to {MaxBatchSize} images, {ConcurrentRuns} concurrent runs, {IntraOpThreads} intra-op threads, a request alone on {LoneIntraOpThreads} ({StrategySource} in {MeasureMs:0} ms, images/s and CPU ms per image: {Measurements}; one image alone, median ms: {LoneMeasurements})",
                bundle.Name, bundle.Version, strategy.MaxBatchSize, strategy.ConcurrentRuns, strategy.IntraOpThreads, strategy.LoneIntraOpThreads, strategy.Source,
                stopwatch.Elapsed.TotalMilliseconds,
                string.Join(", ", strategy.Measurements.Select(m => $"b={m.BatchSize} x{m.ConcurrentRuns} t={m.IntraOpThreads} {m.ImagesPerSecond:0.#} {m.CpuMsPerImage:0.###}")),
                strategy.LoneMeasurements.Count == 0 ? "not measured" : string.Join(", ", strategy.LoneMeasurements.Select(m => $"t={m.IntraOpThreads} {m.P50Ms:0.###}")));
        }
        return strategy;
    }

    /// <summary>
    /// Makes each session run one batch size (<see cref="BundleSession.FixedBatchSize"/>; on CUDA a change of size costs
    /// about as much as a first run): the bundle's own session runs batches of exactly <paramref name="maxBatchSize"/>
    /// (fewer images padded up to it), the one for lone requests (loaded for it where there is none) single images.
    /// Each runs once before the version serves, so that no request waits for cuDNN's first choice of algorithms.
    /// </summary>
    private void ServeWithPaddedBatches(ModelBundle bundle, int maxBatchSize, int threads, CancellationToken stopping)
    {
        var loaded = bundle.LoneSession is null && maxBatchSize > 1 ? loader.LoadSession(bundle, threads) : null;
        try
        {
            var single = bundle.LoneSession ?? loaded;
            bundle.Session.FixBatchSize(maxBatchSize);
            single?.FixBatchSize(1);
            stopping.ThrowIfCancellationRequested();
            var batchMs = bundle.Session.WarmUp();
            stopping.ThrowIfCancellationRequested();
            var singleMs = single?.WarmUp() ?? 0;
            bundle.ServeWith(bundle.Session, single);
            logger.LogInformation("Model {Model}@{Version} runs batches of exactly {MaxBatchSize} images (fewer are padded) and single images on a session of their own (Batching:PadBatches); their first runs took {BatchWarmUpMs:0} and {SingleWarmUpMs:0} ms",
                bundle.Name, bundle.Version, maxBatchSize, batchMs, singleMs);
        }
        catch
        {
            loaded?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Measures the CPU strategy. Unless Inference:IntraOpThreads is set, a second session whose runs each use one
    /// thread is measured beside the loaded one (one thread per core): the leaner serves; the other is kept for requests
    /// that run alone if it answers one image enough sooner (<see cref="ExecutionStrategy.LoneIntraOpThreads"/>), else disposed.
    /// </summary>
    private ExecutionStrategy MeasureStrategy(ModelBundle bundle, int threads, CancellationToken stopping, Action? whileMeasuring)
    {
        var options = batching.Value;
        // Seconds for a large model: said, so that a start that seems to hang can be told from one that measures.
        logger.LogInformation("Measuring how {Model}@{Version} runs fastest on the CPU (Batching:Strategy auto): batches of up to {MaxBatchSize} images, {ConcurrentRuns} concurrent runs",
            bundle.Name, bundle.Version, options.MaxBatchSize, options.ConcurrentRunsLimit);
        List<SessionCandidate> candidates = [new(bundle.Session, threads)];
        if (!sessionFactory.IntraOpThreadsConfigured && threads > 1) candidates.Add(new(loader.LoadSession(bundle, 1), 1));
        try
        {
            var strategy = ExecutionStrategyTuner.Measure(candidates, options.MaxBatchSize, options.ConcurrentRunsLimit, MeasureSlice, options.LoneRuns, stopping, whileMeasuring);
            var chosen = candidates.First(c => c.IntraOpThreads == strategy.IntraOpThreads).Session;
            // Loaded afresh: a measured session's memory arena has grown to the largest batch tried, and lone runs are of
            // one image (for ResNet-18, 245 MiB more resident memory kept against about 100).
            stopping.ThrowIfCancellationRequested();
            var lone = strategy.LoneIntraOpThreads != strategy.IntraOpThreads ? loader.LoadSession(bundle, strategy.LoneIntraOpThreads) : null;
            bundle.ServeWith(chosen, lone);
            return strategy;
        }
        finally
        {
            // The sessions loaded to be measured that do not serve (ServeWith has disposed the bundle's own if unused).
            foreach (var candidate in candidates.Skip(1).Where(c => c.Session != bundle.Session)) candidate.Session.Dispose();
        }
    }
}
