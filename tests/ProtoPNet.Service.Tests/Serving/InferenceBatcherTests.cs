using System.Diagnostics.Metrics;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// The batcher on its own, with the real smoke bundle: what it coalesces, and what it drops before the network. (A full
/// queue is shown through HTTP in <see cref="BatchingTests"/>.)
/// </summary>
[Collection(BundlesCollection.Name)]
public class InferenceBatcherTests(TrainerBundles bundles)
{
    [Fact]
    public async Task ACallerThatLeftIsDroppedBeforeTheRunAndTheOthersShareOneRun()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var metrics = NewMetrics();
        // A long queue delay: the batch forms for three seconds, long enough to cancel one caller meanwhile.
        using var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(8, 1, 1, "configured"),
            new BatchingOptions { MaxBatchSize = 8, MaxQueueDelayMs = 3000 }, metrics, InProgress(3));
        var inputs = Enumerable.Range(0, 3).Select(i => Pattern(bundle, shift: 31 * i)).ToArray();

        Assert.True(double.IsNaN(batcher.RunMsPerImage), "no run yet, no run time");
        using var leaving = new CancellationTokenSource();
        var first = batcher.RunAsync(inputs[0], 1, CancellationToken.None);
        var gone = batcher.RunAsync(inputs[1], 1, leaving.Token);
        var third = batcher.RunAsync(inputs[2], 1, CancellationToken.None);
        await Task.Delay(100);
        await leaving.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => gone);
        using var a = await first;
        using var c = await third;
        // One run of the two remaining images, rows in arrival order, outputs equal to running each alone.
        Assert.Equal(2, a.BatchSize);
        Assert.Equal(2, c.BatchSize);
        Assert.Same(a.Outputs, c.Outputs);
        Assert.Equal(0, a.FirstRow);
        Assert.Equal(1, c.FirstRow);
        Assert.Equal(a.InferenceMs / 2, batcher.RunMsPerImage, 9);   // the first run's time per image
        foreach (var (run, input) in new[] { (a, inputs[0]), (c, inputs[2]) })
        {
            using var alone = bundle.Session.Run(input, 1);
            var expected = alone.LogitsOf(0).ToArray();
            var actual = run.Outputs.LogitsOf(run.FirstRow).ToArray();
            for (var k = 0; k < expected.Length; k++) Assert.True(BundleLoader.WithinTolerance(actual[k], expected[k]), $"logit {k}: {actual[k]} vs {expected[k]}");
        }
        Assert.Equal(0, batcher.QueueDepth);
    }

    /// <summary>
    /// A request of several images (a /classify/batch, a v2 tensor of N rows) shares a run with others at its own rows:
    /// the next request's rows begin after all of them. One larger than the whole queue is served when nothing else is queued.
    /// </summary>
    [Fact]
    public async Task RequestsOfSeveralImagesShareARunEachAtItsOwnRows()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var metrics = NewMetrics();
        var images = Enumerable.Range(0, 4).Select(i => Pattern(bundle, shift: 31 * i)).ToArray();
        void AssertRowIsAlone(BatchRun run, int row, float[] image)
        {
            using var alone = bundle.Session.Run(image, 1);
            var expected = alone.LogitsOf(0).ToArray();
            var actual = run.Outputs.LogitsOf(run.FirstRow + row).ToArray();
            for (var k = 0; k < expected.Length; k++) Assert.True(BundleLoader.WithinTolerance(actual[k], expected[k]), $"row {row}, logit {k}: {actual[k]} vs {expected[k]}");
        }

        using (var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(8, 1, 1, "configured"),
                   new BatchingOptions { MaxBatchSize = 8, MaxQueueDelayMs = 300 }, metrics, InProgress(2)))
        {
            var pair = batcher.RunAsync([.. images[0], .. images[1]], 2, CancellationToken.None);
            var single = batcher.RunAsync(images[2], 1, CancellationToken.None);
            using var a = await pair;
            using var b = await single;
            Assert.Same(a.Outputs, b.Outputs);
            Assert.Equal((3, 0, 2), (a.BatchSize, a.FirstRow, b.FirstRow));
            AssertRowIsAlone(a, 0, images[0]);
            AssertRowIsAlone(a, 1, images[1]);
            AssertRowIsAlone(b, 0, images[2]);
        }

        using (var small = new InferenceBatcher(bundle, new ExecutionStrategy(8, 1, 1, "configured"),
                   new BatchingOptions { MaxBatchSize = 8, MaxQueueSize = 2 }, metrics, InProgress(2)))
        {
            using var four = await small.RunAsync([.. images[0], .. images[1], .. images[2], .. images[3]], 4, CancellationToken.None);
            Assert.Equal(4, four.BatchSize);
            AssertRowIsAlone(four, 3, images[3]);
        }
    }

    /// <summary>
    /// A request runs at once on its caller's thread only while there are no more inference requests in progress than
    /// runs; beyond that it is queued, so that requests arriving while the runs are busy share the next run.
    /// </summary>
    [Fact]
    public async Task ARequestRunsAtOnceOnlyWhileEveryRequestInProgressCouldHaveARun()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var metrics = NewMetrics();
        var requests = InProgress(2);
        using var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(8, 2, 1, "configured"),
            new BatchingOptions { MaxBatchSize = 8 }, metrics, requests);
        var input = new float[bundle.Session.ImageElementCount];
        Array.Fill(input, 0.5f);

        // Two requests in progress, two runs: at once (the task is complete when RunAsync returns), no time queued.
        var atOnce = batcher.RunAsync(input, 1, CancellationToken.None);
        Assert.True(atOnce.IsCompletedSuccessfully);
        using (var run = await atOnce) Assert.Equal(0, run.QueueMs);

        // Three: queued, and run by a worker.
        requests.Enter();
        using var queued = await batcher.RunAsync(input, 1, CancellationToken.None);
        Assert.True(queued.QueueMs > 0, $"queued for {queued.QueueMs} ms");
        requests.Leave();

        // A request of exactly the strategy's batch size runs at once as well; a larger one is queued (a worker runs it whole).
        var batchOfEight = Enumerable.Repeat(input, 8).SelectMany(i => i).ToArray();
        var eight = batcher.RunAsync(batchOfEight, 8, CancellationToken.None);
        var eightAtOnce = eight.IsCompletedSuccessfully;
        using (var run = await eight) Assert.Equal((8, 0.0), (run.BatchSize, run.QueueMs));
        Assert.True(eightAtOnce, "a request of the batch size was queued");
        using var nine = await batcher.RunAsync([.. batchOfEight, .. input], 9, CancellationToken.None);
        Assert.Equal(9, nine.BatchSize);
        Assert.True(nine.QueueMs > 0, $"queued for {nine.QueueMs} ms");
    }

    /// <summary>
    /// A batch that is full runs at once, without waiting out the queue delay for more: here ten minutes, which only a
    /// batch of fewer images waits. Two single images that fill a batch of two exactly share one run, in their rows.
    /// </summary>
    [Fact]
    public async Task ABatchThatIsFullRunsWithoutWaitingOutTheQueueDelay()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var metrics = NewMetrics();
        using var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(2, 1, 1, "configured"),
            new BatchingOptions { MaxBatchSize = 2, MaxQueueDelayMs = 600_000 }, metrics, InProgress(2));
        var inputs = Enumerable.Range(0, 2).Select(i => Pattern(bundle, shift: 31 * i)).ToArray();

        var first = batcher.RunAsync(inputs[0], 1, CancellationToken.None);
        var second = batcher.RunAsync(inputs[1], 1, CancellationToken.None);
        // Far less than the delay: a batch that waited for it would not be done.
        var runs = await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(60));
        try
        {
            Assert.Same(runs[0].Outputs, runs[1].Outputs);
            Assert.Equal((2, 2), (runs[0].BatchSize, runs[1].BatchSize));
            Assert.Equal((0, 1), (runs[0].FirstRow, runs[1].FirstRow));
        }
        finally
        {
            foreach (var run in runs) run.Dispose();
        }
    }

    /// <summary>
    /// The queue takes images up to Batching:MaxQueueSize, the limit itself included; the next request is refused at
    /// once, saying how many images wait before it. A request of many images (larger than the queue, so taken only
    /// with the queue empty) keeps the one run busy while the others arrive; should it end before they are all queued
    /// (a run is not long), the round is made again with a larger one.
    /// </summary>
    [Fact]
    public async Task TheQueueTakesImagesUpToItsLimitAndRefusesTheNextSayingHowManyWait()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var metrics = NewMetrics();
        // One run at a time and more requests in progress than runs: every request goes through the queue.
        using var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(1, 1, 1, "configured"),
            new BatchingOptions { MaxBatchSize = 1, MaxQueueSize = 2 }, metrics, InProgress(4));
        var image = Pattern(bundle);
        var refused = false;
        for (var rows = 256; rows <= 4096 && !refused; rows *= 2)
        {
            var large = new float[rows * bundle.Session.ImageElementCount];
            Array.Fill(large, 0.5f);
            var busy = batcher.RunAsync(large, rows, CancellationToken.None);
            var taken = SpinWait.SpinUntil(() => batcher.QueueDepth == 0, TimeSpan.FromSeconds(30));
            var queued = new[] { batcher.RunAsync(image, 1, CancellationToken.None), batcher.RunAsync(image, 1, CancellationToken.None) };
            var third = batcher.RunAsync(image, 1, CancellationToken.None);
            // Every run ends before anything is judged: the bundle is not disposed under one.
            var accepted = new[] { busy, queued[0], queued[1], third }.Where(t => !t.IsFaulted).ToArray();
            foreach (var run in await Task.WhenAll(accepted).WaitAsync(TimeSpan.FromSeconds(120))) run.Dispose();
            Assert.True(taken, "the worker never took the large request");
            // Whether or not the run was still busy, two images are within the limit of two.
            Assert.All(queued, q => Assert.False(q.IsFaulted, q.Exception?.InnerException?.Message));
            if (third.IsFaulted)
            {
                var full = Assert.IsType<QueueFullException>(third.Exception!.InnerException);
                Assert.Contains("2 images are queued (limit 2)", full.Message);
                refused = true;
            }
            Assert.Equal(0, batcher.QueueDepth);
        }
        Assert.True(refused, "every large run ended before three images were queued behind it");
    }

    /// <summary>
    /// A request that does not need the similarity maps (the evidence check's masked copies) is run without them when its
    /// batch holds only such requests: the same logits and similarities, no maps fetched; beside one that needs them, the
    /// batch fetches them for both.
    /// </summary>
    [Fact]
    public async Task ABatchOfRequestsThatNeedNoMapsIsRunWithoutThem()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var metrics = NewMetrics();
        using var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(8, 1, 1, "configured"),
            new BatchingOptions { MaxBatchSize = 8, MaxQueueDelayMs = 300 }, metrics, InProgress(2));
        var input = Pattern(bundle);
        using var expected = bundle.Session.Run(input, 1);

        using (var onlyLogits = await batcher.RunAsync(input, 1, CancellationToken.None, withMaps: false))
        {
            Assert.False(onlyLogits.Outputs.HasMaps);
            Assert.Throws<InvalidOperationException>(() => onlyLogits.Outputs.MapOf(0, 0).ToArray());
            // One image alone, with or without the maps: the same numbers exactly.
            Assert.Equal(expected.LogitsOf(0).ToArray(), onlyLogits.Outputs.LogitsOf(onlyLogits.FirstRow).ToArray());
            Assert.Equal(expected.SimilaritiesOf(0).ToArray(), onlyLogits.Outputs.SimilaritiesOf(onlyLogits.FirstRow).ToArray());
        }

        var withoutMaps = batcher.RunAsync(input, 1, CancellationToken.None, withMaps: false);
        var withMaps = batcher.RunAsync(input, 1, CancellationToken.None);
        using var a = await withoutMaps;
        using var b = await withMaps;
        Assert.Same(a.Outputs, b.Outputs);
        Assert.True(b.Outputs.HasMaps);
        // A batch of two computes each row as one alone does, to float rounding (the load check's tolerance).
        AssertClose(expected.MapOf(0, 3), b.Outputs.MapOf(b.FirstRow, 3), "a similarity map");
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(BundleLoader.WithinTolerance(actual[i], expected[i]), $"{what}[{i}]: {actual[i]} vs {expected[i]}");
        }
    }

    /// <summary>
    /// The only inference request in progress runs on the bundle's session for lone runs (two threads here), with the
    /// same outputs; with another request in progress, within the quiet period after two were, or without a lone
    /// session, on the serving session.
    /// </summary>
    [Fact]
    public async Task ALoneRequestRunsOnTheLoneSessionAndOneBesideAnotherOrSoonAfterDoesNot()
    {
        var loader = new BundleLoader(new SessionFactory(new InferenceOptions { ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 1 }));
        using var bundle = loader.Load(bundles.SmokeBundle);
        bundle.ServeWith(bundle.Session, loader.LoadSession(bundle, 2));
        using var metrics = NewMetrics();
        var requests = InProgress(1, loneQuiet: TimeSpan.FromHours(1));
        using var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(8, 2, 1, "measured") { LoneIntraOpThreads = 2 },
            new BatchingOptions { MaxBatchSize = 8 }, metrics, requests);
        var input = Pattern(bundle);

        using (var lone = await batcher.RunAsync(input, 1, CancellationToken.None))
        {
            Assert.True(lone.Alone);
            using var served = bundle.Session.Run(input, 1);
            var expected = served.LogitsOf(0).ToArray();
            var actual = lone.Outputs.LogitsOf(0).ToArray();
            for (var k = 0; k < expected.Length; k++) Assert.True(BundleLoader.WithinTolerance(actual[k], expected[k]), $"logit {k}: {actual[k]} vs {expected[k]}");
        }

        // Another request in progress (reading, decoding or explaining): the lone session's threads would take its cores.
        requests.Enter();
        using (var beside = await batcher.RunAsync(input, 1, CancellationToken.None)) Assert.False(beside.Alone);

        // The only one again, but an hour has not passed since two were in progress: under a load of a few callers the
        // next request is on its way, and its reading and decoding need the core.
        requests.Leave();
        using (var soonAfter = await batcher.RunAsync(input, 1, CancellationToken.None)) Assert.False(soonAfter.Alone);

        // With no quiet period, the only one is alone at once.
        var noQuiet = InProgress(2, loneQuiet: TimeSpan.Zero);
        noQuiet.Leave();
        using var quietBatcher = new InferenceBatcher(bundle, new ExecutionStrategy(8, 2, 1, "measured") { LoneIntraOpThreads = 2 },
            new BatchingOptions { MaxBatchSize = 8 }, metrics, noQuiet);
        using (var afterTwo = await quietBatcher.RunAsync(input, 1, CancellationToken.None)) Assert.True(afterTwo.Alone);

        // Without a lone session, a lone request runs on the serving session.
        using var plain = loader.Load(bundles.SmokeBundle);
        using var plainBatcher = new InferenceBatcher(plain, new ExecutionStrategy(8, 2, 1, "measured"), new BatchingOptions { MaxBatchSize = 8 }, metrics,
            InProgress(1));
        using var run = await plainBatcher.RunAsync(input, 1, CancellationToken.None);
        Assert.False(run.Alone);
    }

    /// <summary>A count of <paramref name="count"/> inference requests in progress (by default quiet for the service's period after two were).</summary>
    internal static InferenceRequests InProgress(int count, TimeSpan? loneQuiet = null)
    {
        var requests = new InferenceRequests(loneQuiet ?? TimeSpan.FromMilliseconds(new BatchingOptions().LoneQuietMs));
        for (var i = 0; i < count; i++) requests.Enter();
        return requests;
    }

    /// <summary>The service's instruments on a meter of the test's own (disposing them disposes it).</summary>
    internal static ServiceMetrics NewMetrics() => new(new OwnMeters());

    private sealed class OwnMeters : IMeterFactory
    {
        public Meter Create(MeterOptions options) => new(options);

        public void Dispose()
        {
        }
    }

    /// <summary>One image of varied pixels (the probe's ramp, shifted by <paramref name="shift"/> to make another).</summary>
    internal static float[] Pattern(ModelBundle bundle, int shift = 0)
    {
        var input = new float[bundle.Session.ImageElementCount];
        for (var e = 0; e < input.Length; e++) input[e] = ((e + shift) * 7919 % 1000) / 999f;
        return input;
    }
}
