using System.Net;
using System.Text.Json.Nodes;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>Dynamic batching and backpressure through the real HTTP pipeline.</summary>
[Collection(BundlesCollection.Name)]
public class BatchingTests(TrainerBundles bundles)
{
    [Fact]
    public async Task ConcurrentAnswersEqualSequentialOnesAndBatchesAreFormed()
    {
        // Eight different images (several prototypes' source pictures, at several sizes), each asked for twice.
        var images = Enumerable.Range(0, 8).Select(i => Http.BundleImage(bundles.SmokeBundle, i % 8, 32 + 8 * i, 40 + 4 * i)).ToArray();
        const string query = "/classify?model=smoke&topPrototypes=4&topClasses=4";
        var sequential = new string[images.Length];
        await using (var alone = bundles.SmokeService())
        {
            var aloneClient = alone.CreateClient();
            for (var i = 0; i < images.Length; i++) sequential[i] = WithoutTimings(await Http.JsonAsync(await aloneClient.PostAsync(query, Http.Image(images[i]))));
        }

        // A first image waits up to 2 s for seven more: the batches form by their size, not by requests arriving within
        // a few ms of each other, which a busy test process's thread pool does not promise.
        await using var factory = bundles.SmokeService(("Batching:MaxBatchSize", "8"), ("Batching:MaxQueueDelayMs", "2000"));
        var client = factory.CreateClient();
        var before = await PrometheusText.ScrapeAsync(client);

        // 16 clients at once, each with its own image (two per image).
        using var start = new SemaphoreSlim(0);
        var concurrent = Enumerable.Range(0, 16).Select(async c =>
        {
            await start.WaitAsync();
            var response = await client.PostAsync(query, Http.Image(images[c % images.Length]));
            return (Image: c % images.Length, Body: WithoutTimings(await Http.JsonAsync(response)));
        }).ToArray();
        start.Release(16);
        var answers = await Task.WhenAll(concurrent).WaitAsync(TimeSpan.FromSeconds(60));
        foreach (var (image, body) in answers) AssertSameAnswer(sequential[image], body);

        var after = await PrometheusText.ScrapeAsync(client);
        string[] labels = ["model=\"smoke\""];
        var runs = PrometheusText.Sum(after, "protopnet_batch_size_count", labels) - PrometheusText.Sum(before, "protopnet_batch_size_count", labels);
        var singles = PrometheusText.Sum(after, "protopnet_batch_size_bucket", [.. labels, "le=\"1\""])
                      - PrometheusText.Sum(before, "protopnet_batch_size_bucket", [.. labels, "le=\"1\""]);
        var images16 = PrometheusText.Sum(after, "protopnet_batch_size_sum", labels) - PrometheusText.Sum(before, "protopnet_batch_size_sum", labels);
        Assert.Equal(16, images16);
        Assert.True(runs < 16 && runs > singles, $"16 concurrent requests ran in {runs} network runs, {singles} of them with one image: no batch was formed");
        Assert.Equal(16, PrometheusText.Sum(after, "protopnet_requests_total", "endpoint=\"Classify\"", "status=\"200\"", "model=\"smoke\""));
        Assert.Equal(0, PrometheusText.Sum(after, "protopnet_queue_depth", labels));
        foreach (var histogram in (string[])["protopnet_queue_duration_seconds", "protopnet_inference_duration_seconds",
                     "protopnet_explanation_duration_seconds", "protopnet_request_duration_seconds"])
        {
            Assert.True(PrometheusText.Sum(after, histogram + "_count", labels) > 0, histogram);
            Assert.Contains($"# TYPE {histogram} histogram", after);
        }
        Assert.Equal(1, PrometheusText.Sum(after, "protopnet_execution_provider_info", "provider=\"CPUExecutionProvider\""));
        Assert.Equal(1, PrometheusText.Sum(after, "protopnet_model_loads_total", "model=\"smoke\"", "result=\"loaded\""));
    }

    [Fact]
    public async Task OverloadAnswers503WithRetryAfterAtOnceAndServesNormallyAfterwards()
    {
        await using var factory = bundles.SmokeService(("Batching:MaxBatchSize", "1"), ("Batching:MaxQueueSize", "1"),
            ("Batching:MaxQueueDelayMs", "0"), ("Batching:MaxConcurrentRuns", "1"));
        var client = factory.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(30);
        var image = Http.BundleImage(bundles.SmokeBundle, 2, 64, 64);

        var statuses = new List<HttpStatusCode>();
        var details = new List<string>();
        // Rounds of 48 simultaneous requests against a queue of one image, until the model's queue has overflowed (the
        // decode gate, whose queue is as long, refuses most of them before they reach it).
        for (var round = 0; round < 10 && !details.Any(d => d.Contains("images are queued", StringComparison.Ordinal)); round++)
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 48).Select(_ => client.PostAsync("/classify?heatmaps=png", Http.Image(image))))
                .WaitAsync(TimeSpan.FromSeconds(60));
            foreach (var response in responses)
            {
                statuses.Add(response.StatusCode);
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    Assert.Equal("1", response.Headers.GetValues("Retry-After").Single());
                    var problem = await Http.ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "overloaded");
                    details.Add(problem.GetProperty("detail").GetString()!);
                }
                else
                {
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                }
            }
        }
        Assert.Contains(HttpStatusCode.ServiceUnavailable, statuses);
        Assert.Contains(HttpStatusCode.OK, statuses);
        Assert.Contains(details, d => d.Contains("images are queued (limit 1)", StringComparison.Ordinal));      // the model's queue

        // Afterwards: the queue is empty and every request is served.
        for (var i = 0; i < 5; i++) await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)));
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(0, PrometheusText.Sum(metrics, "protopnet_queue_depth", "model=\"smoke\""));
        Assert.Equal(statuses.Count(s => s == HttpStatusCode.ServiceUnavailable),
            PrometheusText.Sum(metrics, "protopnet_requests_total", "endpoint=\"Classify\"", "status=\"503\""));
        Assert.Equal(0, PrometheusText.Sum(metrics, "protopnet_requests_total", "status=\"500\""));
    }

    [Fact]
    public async Task ARequestThatWaitedPastItsDeadlineGets503()
    {
        // A deadline of 1 ms: requests queued behind a running batch expire before their turn. A queue delay above 0
        // sends every request through the queue (with none, a request that finds a run free runs at once, and on a
        // fast machine too few would ever wait).
        await using var factory = bundles.SmokeService(("Batching:MaxBatchSize", "1"), ("Batching:QueueTimeoutMs", "1"),
            ("Batching:MaxQueueDelayMs", "1"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 1, 48, 48);
        var details = new List<string>();
        // Where a request expires depends on timing: waiting to decode (the same deadline) or in the model's queue. On a
        // busy machine a whole burst may expire before decoding, so bursts are sent until one expired in the queue.
        for (var burst = 0; burst < 10 && !details.Any(ExpiredInTheQueue); burst++)
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => client.PostAsync("/classify", Http.Image(image))))
                .WaitAsync(TimeSpan.FromSeconds(60));
            Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, r.StatusCode.ToString()));
            // A burst may also find the runs free and all be served (seen in CI on a busy machine): the next burst follows.
            foreach (var response in responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable))
            {
                var problem = await Http.ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "overloaded");
                details.Add(problem.GetProperty("detail").GetString()!);
                Assert.Contains("queue", details[^1]);
                Assert.True(response.Headers.RetryAfter is not null);
            }
        }
        Assert.Contains(details, ExpiredInTheQueue);
    }

    private static bool ExpiredInTheQueue(string detail) => detail.Contains("in the queue without being run", StringComparison.Ordinal);

    /// <summary>
    /// A request run at once on its own thread (nothing queued, a run free) records its time in the queue too, 0 s: the
    /// queue-time histogram has a sample for every request of every run, not only for those a worker ran.
    /// </summary>
    [Fact]
    public async Task ARequestRunAtOnceRecordsItsTimeInTheQueueAsNone()
    {
        // More runs than requests ever in progress here (one at a time, and the previous one's count may not yet have
        // ended): every request runs at once.
        await using var factory = bundles.SmokeService(("Batching:Strategy", "fixed"), ("Batching:MaxConcurrentRuns", "4"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        for (var i = 0; i < 3; i++) await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)));

        var metrics = await PrometheusText.ScrapeAsync(client);
        string[] labels = ["model=\"smoke\""];
        var runs = PrometheusText.Sum(metrics, "protopnet_batch_size_count", labels);
        Assert.True(runs >= 3, $"{runs} runs");
        Assert.Equal(runs, PrometheusText.Sum(metrics, "protopnet_queue_duration_seconds_count", labels));
        Assert.Equal(0, PrometheusText.Sum(metrics, "protopnet_queue_duration_seconds_sum", labels));
    }

    [Fact]
    public async Task BatchEndpointAndCardGoThroughTheBatcher()
    {
        await using var factory = bundles.SmokeService();
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 3);
        var batch = await Http.JsonAsync(await client.PostAsync("/classify/batch",
            Http.Multipart(("image", image, "image/png"), ("image", image, "image/png"), ("image", image, "image/png"))));
        Assert.Equal(3, batch.GetProperty("results").GetArrayLength());
        var card = await client.PostAsync("/classify/card", Http.Image(image));
        Assert.Equal(HttpStatusCode.OK, card.StatusCode);

        var metrics = await PrometheusText.ScrapeAsync(client);
        // One run of three images for the batch request, one run of one for the card.
        Assert.Equal(1, PrometheusText.Sum(metrics, "protopnet_batch_size_bucket", "model=\"smoke\"", "le=\"1\""));
        Assert.Equal(2, PrometheusText.Sum(metrics, "protopnet_batch_size_count", "model=\"smoke\""));
        Assert.Equal(4, PrometheusText.Sum(metrics, "protopnet_batch_size_sum", "model=\"smoke\""));
        Assert.Equal(1, PrometheusText.Sum(metrics, "protopnet_requests_total", "endpoint=\"ClassifyCard\"", "status=\"200\""));
    }

    /// <summary>
    /// The same answer: every class, label, prototype, rank, box and cell identical; every score equal within the bundle
    /// contract's tolerance for "the same graph on the same input" (1e-3 + 1e-3 |expected|, MODEL_BUNDLE.md). ONNX Runtime's
    /// kernels sum in a different order for one image than for several, and the log similarity amplifies those float32
    /// rounding differences (seen: 1.4e-5 relative on a probability), so a batched run is not bit-identical to a lone one.
    /// </summary>
    private static void AssertSameAnswer(string expected, string actual) => AssertSame(JsonNode.Parse(expected), JsonNode.Parse(actual), "$");

    private static void AssertSame(JsonNode? expected, JsonNode? actual, string path)
    {
        switch (expected)
        {
            case JsonObject obj:
                var other = Assert.IsType<JsonObject>(actual);
                Assert.Equal(obj.Select(p => p.Key).Order(), other.Select(p => p.Key).Order());
                foreach (var (key, value) in obj) AssertSame(value, other[key], $"{path}.{key}");
                break;
            case JsonArray array:
                var otherArray = Assert.IsType<JsonArray>(actual);
                Assert.Equal(array.Count, otherArray.Count);
                for (var i = 0; i < array.Count; i++) AssertSame(array[i], otherArray[i], $"{path}[{i}]");
                break;
            case JsonValue value when value.GetValueKind() == System.Text.Json.JsonValueKind.Number:
                var raw = value.ToJsonString();
                var a = value.GetValue<double>();
                var b = actual!.GetValue<double>();
                if (!raw.Contains('.') && !raw.Contains('e') && !raw.Contains('E')) Assert.True(a == b, $"{path}: {a} != {b}");
                else Assert.True(ProtoPNet.Inference.Bundles.BundleLoader.WithinTolerance(b, a), $"{path}: {a} vs {b}");
                break;
            default:
                Assert.Equal(expected?.ToJsonString(), actual?.ToJsonString());
                break;
        }
    }

    private static string WithoutTimings(System.Text.Json.JsonElement body)
    {
        var node = JsonNode.Parse(body.GetRawText())!.AsObject();
        node.Remove("timingsMs");
        return node.ToJsonString();
    }
}
