using System.Net;
using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// Batching:Strategy: by default (auto) the batch size and concurrent runs are measured on the CPU at load, reported in
/// the version's description and a log line, and used by the batcher; fixed takes them as configured; bad values stop the start.
/// </summary>
[Collection(BundlesCollection.Name)]
public class ExecutionStrategyTests(TrainerBundles bundles)
{
    [Fact]
    public async Task AutoMeasuresAtLoadReportsTheFastestShapeAndServesWithIt()
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ("Batching:Strategy", null), ("Batching:MaxConcurrentRuns", null));
        var client = factory.CreateClient();
        var strategy = await StrategyAsync(client);

        Assert.Equal("measured", strategy.GetProperty("source").GetString());
        var batch = strategy.GetProperty("maxBatchSize").GetInt32();
        var runs = strategy.GetProperty("concurrentRuns").GetInt32();
        Assert.Contains(batch, new[] { 1, 4, 16 });
        Assert.Equal(Environment.ProcessorCount, runs); // Batching:MaxConcurrentRuns 0: one per core
        Assert.Equal(1, strategy.GetProperty("intraOpThreads").GetInt32()); // the tests' Inference:IntraOpThreads
        // Every batch size tried, each with a throughput and a CPU cost; with a run per core the cheapest per image is
        // taken, or a smaller batch within 8 % of it.
        var measurements = strategy.GetProperty("measurements").EnumerateArray()
            .Select(m => (Batch: m.GetProperty("batchSize").GetInt32(), Runs: m.GetProperty("concurrentRuns").GetInt32(),
                Rate: m.GetProperty("imagesPerSecond").GetDouble(), Cpu: m.GetProperty("cpuMsPerImage").GetDouble())).ToArray();
        Assert.Equal([1, 4, 16], measurements.Select(m => m.Batch).ToArray());
        Assert.All(measurements, m => Assert.True(m.Runs == runs && m.Rate > 0 && m.Cpu > 0, $"b={m.Batch} x{m.Runs}: {m.Rate} img/s, {m.Cpu} ms"));
        var chosen = Assert.Single(measurements, m => m.Batch == batch);
        if (runs > 1)
        {
            Assert.True(chosen.Cpu <= measurements.Min(m => m.Cpu) * 1.08 + 0.002, $"chose b={batch} at {chosen.Cpu} CPU ms/img of {measurements.Min(m => m.Cpu)}");
            Assert.All(measurements.Where(m => m.Batch < batch), m => Assert.True(m.Cpu > measurements.Min(n => n.Cpu) * 1.08 - 0.002));
        }

        var line = await factory.Logs.WaitForAsync(m => m.Contains("runs batches of up to"),
            onTimeout: () => string.Join(" | ", factory.Logs.Entries.Select(e => e.Message).Where(m => m.Contains("smoke"))));
        Assert.Contains($"runs batches of up to {batch} images, {runs} concurrent runs, 1 intra-op threads (\"measured\" in ", line);

        // The batcher runs with it: never more images per run than the chosen batch size.
        var image = Http.BundleImage(bundles.SmokeBundle, 1, 40, 40);
        var responses = await Task.WhenAll(Enumerable.Range(0, 24).Select(_ => client.PostAsync("/classify?model=smoke", Http.Image(image))));
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(24, PrometheusText.Sum(metrics, "protopnet_batch_size_sum", "model=\"smoke\""));
        var runsAtOrBelow = PrometheusText.Sum(metrics, "protopnet_batch_size_bucket", "model=\"smoke\"", $"le=\"{batch}\"");
        Assert.Equal(PrometheusText.Sum(metrics, "protopnet_batch_size_count", "model=\"smoke\""), runsAtOrBelow);
    }

    [Fact]
    public async Task FixedIsTakenAsConfigured()
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ("Batching:Strategy", "Fixed"), ("Batching:MaxBatchSize", "3"), ("Batching:MaxConcurrentRuns", "2"), ("Inference:IntraOpThreads", "1"));
        var strategy = await StrategyAsync(factory.CreateClient());
        Assert.Equal("configured", strategy.GetProperty("source").GetString());
        Assert.Equal(3, strategy.GetProperty("maxBatchSize").GetInt32());
        Assert.Equal(2, strategy.GetProperty("concurrentRuns").GetInt32());
        Assert.Equal(1, strategy.GetProperty("intraOpThreads").GetInt32());
        Assert.Equal(0, strategy.GetProperty("measurements").GetArrayLength());
    }

    [Theory]
    [InlineData("Batching:Strategy", "fastest", "Strategy")]
    [InlineData("Batching:MaxConcurrentRuns", "-1", "MaxConcurrentRuns")]
    [InlineData("Batching:MaxBatchSize", "0", "MaxBatchSize")]
    public void BadValuesStopTheStartNamingTheKey(string key, string value, string named)
    {
        var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)), (key, value));
        var error = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        var messages = string.Join(" | ", Chain(error).Select(e => e.Message));
        Assert.Contains(named, messages);
        factory.Dispose();
    }

    private async Task<JsonElement> StrategyAsync(HttpClient client)
    {
        var version = (await Http.JsonAsync(await client.GetAsync("/models/smoke"))).GetProperty("defaultVersion").GetString();
        return (await Http.JsonAsync(await client.GetAsync($"/models/smoke/versions/{version}"))).GetProperty("executionStrategy");
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
