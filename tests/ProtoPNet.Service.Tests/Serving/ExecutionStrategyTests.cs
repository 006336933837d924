using System.Net;
using System.Text.Json;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// Batching:Strategy: by default (auto) the batch size and intra-op threads are measured on the CPU at load, reported in
/// the version's description and a log line, and used by the batcher; fixed takes them as configured; bad values stop the start.
/// </summary>
[Collection(BundlesCollection.Name)]
public class ExecutionStrategyTests(TrainerBundles bundles)
{
    /// <summary>
    /// With Inference:IntraOpThreads set (the tests' 1) only the batch size is measured; left to the service (null), a
    /// session whose runs use one thread is measured beside one with a thread per core, and the leaner serves.
    /// </summary>
    [Theory]
    [InlineData("1")]
    [InlineData(null)]
    public async Task AutoMeasuresAtLoadReportsTheLeanestShapeAndServesWithIt(string? intraOpThreads)
    {
        await using var factory = bundles.SmokeService(("Batching:Strategy", null), ("Batching:MaxConcurrentRuns", null),
            ("Inference:IntraOpThreads", intraOpThreads));
        var client = factory.CreateClient();
        var strategy = await StrategyAsync(client);

        Assert.Equal("measured", strategy.GetProperty("source").GetString());
        var batch = strategy.GetProperty("maxBatchSize").GetInt32();
        var runs = strategy.GetProperty("concurrentRuns").GetInt32();
        var threads = strategy.GetProperty("intraOpThreads").GetInt32();
        Assert.Contains(batch, new[] { 1, 4, 16 });
        Assert.Equal(Environment.ProcessorCount, runs); // Batching:MaxConcurrentRuns 0: one per core
        // Every batch size tried for every session, each with a throughput and a CPU cost; with a run per core the
        // cheapest per image is taken, or a shape earlier in the order of preference within 3 % of it.
        var measurements = strategy.GetProperty("measurements").EnumerateArray()
            .Select(m => (Batch: m.GetProperty("batchSize").GetInt32(), Runs: m.GetProperty("concurrentRuns").GetInt32(),
                Threads: m.GetProperty("intraOpThreads").GetInt32(), Rate: m.GetProperty("imagesPerSecond").GetDouble(),
                Cpu: m.GetProperty("cpuMsPerImage").GetDouble())).ToArray();
        int[] sessions = intraOpThreads is null && Environment.ProcessorCount > 1 ? [Environment.ProcessorCount, 1] : [1];
        Assert.Equal(sessions.SelectMany(t => new[] { (t, 1), (t, 4), (t, 16) }).ToArray(), measurements.Select(m => (m.Threads, m.Batch)).ToArray());
        Assert.Contains(threads, sessions);
        Assert.All(measurements, m => Assert.True(m.Runs == runs && m.Rate > 0 && m.Cpu > 0, $"b={m.Batch} x{m.Runs} t={m.Threads}: {m.Rate} img/s, {m.Cpu} ms"));
        var chosen = Array.FindIndex(measurements, m => m.Batch == batch && m.Threads == threads);
        Assert.True(chosen >= 0);
        // The rule itself: TheShapeServedIsTheLeanestWithTheSessionOfMoreThreadsHeldToAGain.
        Assert.Equal(ExecutionStrategyTuner.ChooseShape(measurements.Select(m => new StrategyMeasurement(m.Batch, m.Runs, m.Threads, m.Rate, m.Cpu)).ToArray(),
            saturating: runs >= Environment.ProcessorCount), chosen);

        var line = await factory.Logs.WaitForAsync(m => m.Contains("runs batches of up to"),
            onTimeout: () => string.Join(" | ", factory.Logs.Entries.Select(e => e.Message).Where(m => m.Contains("smoke"))));
        var loneThreads = strategy.GetProperty("loneIntraOpThreads").GetInt32();
        Assert.Contains($"runs batches of up to {batch} images, {runs} concurrent runs, {threads} intra-op threads, a request alone on {loneThreads} (\"measured\" in ", line);

        // A request alone: each session measured one image at a time after a short pause, and the session for it chosen
        // from those medians as reported (the rule itself: ALoneRequestTakesAnotherSessionOnlyIfItIsClearlyQuicker).
        var lone = strategy.GetProperty("loneMeasurements").EnumerateArray()
            .Select(m => new LoneMeasurement(m.GetProperty("intraOpThreads").GetInt32(), m.GetProperty("p50Ms").GetDouble(),
                m.GetProperty("runs").GetInt32())).ToArray();
        if (sessions.Length == 1)
        {
            Assert.Empty(lone);
            Assert.Equal(threads, loneThreads);
            Assert.Contains("one image alone, median ms: \"not measured\")", line);
        }
        else
        {
            Assert.Equal(sessions, lone.Select(m => m.IntraOpThreads));
            Assert.All(lone, m => Assert.True(m.P50Ms > 0 && m.Runs >= 3, $"t={m.IntraOpThreads}: {m.P50Ms} ms in {m.Runs} runs"));
            Assert.Equal(ExecutionStrategyTuner.LoneThreadsFor(lone, threads), loneThreads);
            Assert.Contains($"one image alone, median ms: \"{string.Join(", ", lone.Select(m => $"t={m.IntraOpThreads} {m.P50Ms:0.###}"))}\")", line);
        }

        // The batcher runs with it: never more images per run than the chosen batch size.
        var image = Http.BundleImage(bundles.SmokeBundle, 1, 40, 40);
        var responses = await Task.WhenAll(Enumerable.Range(0, 24).Select(_ => client.PostAsync("/classify?model=smoke", Http.Image(image))));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(24, PrometheusText.Sum(metrics, "protopnet_batch_size_sum", "model=\"smoke\""));
        var runsAtOrBelow = PrometheusText.Sum(metrics, "protopnet_batch_size_bucket", "model=\"smoke\"", $"le=\"{batch}\"");
        Assert.Equal(PrometheusText.Sum(metrics, "protopnet_batch_size_count", "model=\"smoke\""), runsAtOrBelow);
    }

    /// <summary>
    /// With a run per core the leanest shape serves, a smaller batch or the first session within 3 % of it; a session
    /// with more threads per run must cost 20 % less than the one-thread session's best (its second threads cost more
    /// in the service than measured). With fewer runs than cores, the most images per second.
    /// </summary>
    [Theory]
    [InlineData(true, 0.300, 0.295, 0.310, 0.305, 2)]   // two threads within 3 % of the leanest, not 20 % leaner: one thread, b=1 (within 3 %)
    [InlineData(true, 0.240, 0.300, 0.320, 0.305, 0)]   // two threads 21 % leaner than one thread's best
    [InlineData(true, 0.310, 0.300, 0.298, 0.290, 2)]   // one thread b=16 the leanest; b=1 within 3 % and preferred
    [InlineData(true, 0.310, 0.300, 0.330, 0.290, 3)]   // one thread b=16 leaner than b=1 by more than 3 %
    [InlineData(false, 0.300, 0.295, 0.310, 0.305, 0)]  // fewer runs than cores: the most images per second, no gain asked
    public void TheShapeServedIsTheLeanestWithTheSessionOfMoreThreadsHeldToAGain(bool saturating, double twoThreadsB1, double twoThreadsB16,
        double oneThreadB1, double oneThreadB16, int expected)
    {
        // In the order the tuner measures them: the thread-per-core session first, smaller batches first; images per
        // second in proportion to the CPU per image.
        static StrategyMeasurement Shape(int batch, int threads, double cpuMs) => new(batch, 2, threads, 1000 / cpuMs, cpuMs);
        StrategyMeasurement[] measured = [Shape(1, 2, twoThreadsB1), Shape(16, 2, twoThreadsB16), Shape(1, 1, oneThreadB1), Shape(16, 1, oneThreadB16)];
        Assert.Equal(expected, ExecutionStrategyTuner.ChooseShape(measured, saturating));
    }

    /// <summary>
    /// Requests alone get another session than the serving one only if it answered one image at least 5 % sooner, with
    /// more threads per run or fewer.
    /// </summary>
    [Theory]
    [InlineData(1, 0.41, 0.424, 1)]   // two threads 3 % quicker: noise
    [InlineData(1, 0.60, 0.64, 2)]    // 7 % quicker
    [InlineData(1, 0.50, 0.61, 2)]    // 22 % quicker
    [InlineData(1, 20.0, 34.5, 2)]    // ResNet-18
    [InlineData(2, 0.70, 0.61, 1)]    // one thread 15 % quicker than the two serving
    [InlineData(2, 0.62, 0.60, 2)]    // 3 %: the serving session
    public void ALoneRequestTakesAnotherSessionOnlyIfItIsClearlyQuicker(int servingThreads, double twoThreadsMs, double oneThreadMs, int expected)
    {
        LoneMeasurement[] measured = [new(2, twoThreadsMs, 50), new(1, oneThreadMs, 50)];
        Assert.Equal(expected, ExecutionStrategyTuner.LoneThreadsFor(measured, servingThreads));
        Assert.Equal(expected, ExecutionStrategyTuner.LoneThreadsFor(measured.Reverse().ToArray(), servingThreads));
    }

    /// <summary>
    /// The gains asked are limits that count as met: a shape exactly 3 % better is measurement noise, and yields to the
    /// preferred one; a lone session exactly 5 % quicker is clearly quicker, and is taken. (100 * 1.03 and 20 * 1.05 are
    /// exactly 103 and 21 in doubles: the limits themselves, not a rounding either side.)
    /// </summary>
    [Fact]
    public void AShapeOrSessionExactlyAtItsRequiredGainIsJudgedByTheLimitItself()
    {
        StrategyMeasurement[] shapes = [new(1, 2, 1, 100, 10), new(16, 2, 1, 103, 9.7)];
        Assert.Equal(0, ExecutionStrategyTuner.ChooseShape(shapes, saturating: false));
        LoneMeasurement[] lone = [new(2, 20, 50), new(1, 21, 50)];
        Assert.Equal(2, ExecutionStrategyTuner.LoneThreadsFor(lone, servingThreads: 1));
    }

    /// <summary>Batching:LoneRuns false: the sessions are still measured for load, but none is kept for lone requests.</summary>
    [Fact]
    public async Task LoneRunsOffKeepsNoSessionForLoneRequests()
    {
        await using var factory = bundles.SmokeService(("Batching:Strategy", null), ("Batching:MaxConcurrentRuns", null),
            ("Inference:IntraOpThreads", null), ("Batching:LoneRuns", "false"));
        var strategy = await StrategyAsync(factory.CreateClient());
        Assert.Equal("measured", strategy.GetProperty("source").GetString());
        Assert.Equal(Environment.ProcessorCount > 1 ? 6 : 3, strategy.GetProperty("measurements").GetArrayLength());
        Assert.Equal(0, strategy.GetProperty("loneMeasurements").GetArrayLength());
        Assert.Equal(strategy.GetProperty("intraOpThreads").GetInt32(), strategy.GetProperty("loneIntraOpThreads").GetInt32());
    }

    [Fact]
    public async Task FixedIsTakenAsConfigured()
    {
        await using var factory = bundles.SmokeService(("Batching:Strategy", "Fixed"), ("Batching:MaxBatchSize", "3"),
            ("Batching:MaxConcurrentRuns", "2"), ("Inference:IntraOpThreads", "1"));
        var strategy = await StrategyAsync(factory.CreateClient());
        Assert.Equal("configured", strategy.GetProperty("source").GetString());
        Assert.Equal(3, strategy.GetProperty("maxBatchSize").GetInt32());
        Assert.Equal(2, strategy.GetProperty("concurrentRuns").GetInt32());
        Assert.Equal(1, strategy.GetProperty("intraOpThreads").GetInt32());
        Assert.Equal(0, strategy.GetProperty("measurements").GetArrayLength());

        // Batching:MaxConcurrentRuns 0 (the service's default): one run per core, with fixed too.
        await using var perCore = bundles.SmokeService(("Batching:Strategy", "fixed"), ("Batching:MaxConcurrentRuns", "0"), ("Inference:IntraOpThreads", "1"));
        Assert.Equal(Environment.ProcessorCount, (await StrategyAsync(perCore.CreateClient())).GetProperty("concurrentRuns").GetInt32());
    }

    /// <summary>
    /// Batching:PadBatches always (on CUDA the default): every batch runs at exactly the batch size, single images on a
    /// session of their own; said in the strategy and the log, and every answer is the one a service without it gives,
    /// one request alone or eight at once. Off by default on the CPU.
    /// </summary>
    [Fact]
    public async Task PaddedBatchesAnswerAsUnpaddedOnes()
    {
        await using var plain = bundles.SmokeService(("Batching:Strategy", "Fixed"), ("Batching:MaxBatchSize", "4"), ("Batching:MaxConcurrentRuns", "1"));
        await using var padded = bundles.SmokeService(("Batching:Strategy", "Fixed"), ("Batching:MaxBatchSize", "4"), ("Batching:MaxConcurrentRuns", "1"),
            ("Batching:PadBatches", "always"), ("Batching:MaxQueueDelayMs", "20"));
        var plainClient = plain.CreateClient();
        var paddedClient = padded.CreateClient();
        Assert.False((await StrategyAsync(plainClient)).GetProperty("paddedBatches").GetBoolean());
        Assert.True((await StrategyAsync(paddedClient)).GetProperty("paddedBatches").GetBoolean());
        Assert.Contains(padded.Logs.Entries, e => e.Message.Contains("runs batches of exactly 4 images (fewer are padded) and single images on a session of their own"));

        // Resized, not the prototypes' own source images: those sit at distance ~0 from their prototype, where the log
        // similarity magnifies rounding, and a batch of 4 already differs there from a batch of 1 by ~1e-3 of a logit
        // (measured on the CPU without padding); a resized image differs by ~1e-4.
        var images = Enumerable.Range(0, 8).Select(i => Http.BundleImage(bundles.SmokeBundle, i % 4, 37, 41)).ToArray();
        var expected = new List<double[]>();
        foreach (var image in images) expected.Add(TopClasses(await Http.JsonAsync(await plainClient.PostAsync("/classify", Http.Image(image)))));
        var alone = TopClasses(await Http.JsonAsync(await paddedClient.PostAsync("/classify", Http.Image(images[0]))));
        var together = await Task.WhenAll(images.Select(async image => TopClasses(await Http.JsonAsync(await paddedClient.PostAsync("/classify", Http.Image(image))))));

        AssertClose(expected[0], alone);
        for (var i = 0; i < images.Length; i++) AssertClose(expected[i], together[i]);
    }

    /// <summary>The top classes' indexes and logits, in the answer's order.</summary>
    private static double[] TopClasses(JsonElement answer) => answer.GetProperty("topClasses").EnumerateArray()
        .SelectMany(c => new[] { c.GetProperty("classIndex").GetInt32(), c.GetProperty("logit").GetDouble() }).ToArray();

    private static void AssertClose(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var k = 0; k < expected.Length; k++)
        {
            Assert.True(Math.Abs(expected[k] - actual[k]) <= 1e-3 * Math.Max(1, Math.Abs(expected[k])), $"value {k}: {actual[k]} vs {expected[k]}");
        }
    }

    /// <summary>
    /// A version whose graph runs the load checks' batches (1 and 2 images) but not the larger ones measured at load is
    /// refused with one line, and the service goes on serving the good one: the failed run is not left to end the process.
    /// </summary>
    [Fact]
    public async Task AVersionWhoseLargerBatchesFailIsRefusedWhileTheStrategyIsMeasured()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "good", null),
            (bundles.SmokeBundle, "two-rows", dir => TrainerBundles.KeepFirstRowsOnly(dir, 2)));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:DefaultModel", "good"), ("Batching:Strategy", null));
        var client = factory.CreateClient();

        var models = await Http.JsonAsync(await client.GetAsync("/models"));
        Assert.Equal(["good"], models.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("name").GetString()!).ToArray());
        var reason = models.GetProperty("refused").EnumerateArray().Single().GetProperty("reason").GetString()!;
        Assert.Contains("its execution strategy cannot be measured: a batch of 4 images failed to run", reason);
        Assert.Single(factory.Logs.Entries, e => e.Level == Microsoft.Extensions.Logging.LogLevel.Error && e.Message.Contains("two-rows"));
        Assert.Equal("measured", (await StrategyAsync(client, "good")).GetProperty("source").GetString());
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
    }

    [Theory]
    [InlineData("Batching:Strategy", "fastest", "Strategy")]
    [InlineData("Batching:MaxConcurrentRuns", "-1", "MaxConcurrentRuns")]
    [InlineData("Batching:MaxBatchSize", "0", "MaxBatchSize")]
    // Each bound of the batcher's settings is refused just past it: an empty queue, no time to wait, more runs than allowed.
    [InlineData("Batching:MaxBatchSize", "1025", "MaxBatchSize")]
    [InlineData("Batching:MaxQueueSize", "0", "MaxQueueSize")]
    [InlineData("Batching:QueueTimeoutMs", "0", "QueueTimeoutMs")]
    [InlineData("Batching:MaxConcurrentRuns", "65", "MaxConcurrentRuns")]
    [InlineData("Batching:MaxQueueDelayMs", "10001", "MaxQueueDelayMs")]
    [InlineData("Images:MaxBufferedBytes", "1000", "MaxBufferedBytes")]
    [InlineData("Logging:Format", "xml", "Logging:Format")]
    public void BadValuesStopTheStartNamingTheKey(string key, string value, string named)
    {
        var factory = bundles.SmokeService((key, value));
        var error = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        var messages = string.Join(" | ", Chain(error).Select(e => e.Message));
        Assert.True(messages.Contains(named, StringComparison.Ordinal), $"the start failed without naming {named}: {error}");
        factory.Dispose();
    }

    private async Task<JsonElement> StrategyAsync(HttpClient client, string model = "smoke")
    {
        var version = (await Http.JsonAsync(await client.GetAsync($"/models/{model}"))).GetProperty("defaultVersion").GetString();
        return (await Http.JsonAsync(await client.GetAsync($"/models/{model}/versions/{version}"))).GetProperty("executionStrategy");
    }

    private static IEnumerable<Exception> Chain(Exception error)
    {
        for (Exception? e = error; e is not null; e = e.InnerException)
        {
            yield return e;
            if (e is AggregateException aggregate) foreach (var inner in aggregate.InnerExceptions) yield return inner;
        }
    }
}
