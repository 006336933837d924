using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// Decoding is admitted one request per core: beyond that requests wait in a bounded queue, and an overload is answered
/// 503 (queue full at once, or after Batching:QueueTimeoutMs) instead of every request decoding at once and all of
/// them getting slow.
/// </summary>
[Collection(BundlesCollection.Name)]
public class PreprocessingGateTests(TrainerBundles bundles)
{
    [Fact]
    public async Task WithEveryTurnTakenOneRequestWaitsTheNextIsRefusedAtOnceAndTheWaitEndsIn503()
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ("Batching:MaxQueueSize", "1"), ("Batching:QueueTimeoutMs", "1500"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)));   // a free turn: served

        // Every turn taken, as by requests decoding large photos.
        var gate = factory.Services.GetRequiredService<PreprocessingGate>();
        var turns = new List<IDisposable>();
        for (var i = 0; i < Environment.ProcessorCount; i++) turns.Add(await gate.EnterAsync(CancellationToken.None));

        var started = DateTime.UtcNow;
        var waiting = client.PostAsync("/classify", Http.Image(image));
        await UntilAsync(() => gate.Waiting == 1);
        Assert.Equal(1, PrometheusText.Sum(await PrometheusText.ScrapeAsync(client), "protopnet_decode_waiting"));
        var refused = await client.PostAsync("/classify", Http.Image(image));
        var full = await Http.ProblemAsync(refused, HttpStatusCode.ServiceUnavailable, "overloaded");
        Assert.Contains("queued for decoding", full.GetProperty("detail").GetString());
        Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(1.5), "the request beyond the queue was not refused at once");

        var expired = await Http.ProblemAsync(await waiting, HttpStatusCode.ServiceUnavailable, "overloaded");
        Assert.Contains("waited 1500 ms in the queue", expired.GetProperty("detail").GetString());
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(1.4));

        // A turn given back is taken by the next request, which is served.
        turns[0].Dispose();
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)));
        foreach (var turn in turns) turn.Dispose();
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(2, PrometheusText.Sum(metrics, "protopnet_requests_total", "endpoint=\"Classify\"", "status=\"503\""));
        Assert.Equal(0, gate.Waiting);
    }

    [Fact]
    public async Task AWaitingRequestIsServedWhenATurnComesBackInTime()
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ("Batching:QueueTimeoutMs", "30000"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 4);
        var gate = factory.Services.GetRequiredService<PreprocessingGate>();
        var turns = new List<IDisposable>();
        for (var i = 0; i < Environment.ProcessorCount; i++) turns.Add(await gate.EnterAsync(CancellationToken.None));

        var waiting = Enumerable.Range(0, 3).Select(_ => client.PostAsync("/classify", Http.Image(image))).ToArray();
        await UntilAsync(() => gate.Waiting == 3);
        Assert.All(waiting, request => Assert.False(request.IsCompleted));

        turns[0].Dispose();   // one turn back: the three waiting requests decode one after another and are served
        foreach (var response in await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(30))) await Http.JsonAsync(response);
        foreach (var turn in turns) turn.Dispose();
    }

    private static async Task UntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "no request came to wait for a turn to decode");
            await Task.Delay(10);
        }
    }
}
