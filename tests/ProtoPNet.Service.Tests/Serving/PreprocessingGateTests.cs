using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

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
    public async Task WithEveryTurnTakenAndTheQueueFullTheNextRequestIsRefusedAtOnce()
    {
        await using var factory = bundles.SmokeService(("Batching:MaxQueueSize", "1"), ("Batching:QueueTimeoutMs", "30000"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)));   // a free turn: served

        var (gate, turns) = await TakeEveryTurnAsync(factory);
        var waiting = client.PostAsync("/classify", Http.Image(image));
        await UntilAsync(() => gate.Waiting == 1);
        Assert.Equal(1, PrometheusText.Sum(await PrometheusText.ScrapeAsync(client), "protopnet_decode_waiting"));

        var refused = await client.PostAsync("/classify", Http.Image(image));
        var full = await Http.ProblemAsync(refused, HttpStatusCode.ServiceUnavailable, "overloaded");
        Assert.Contains("1 requests are queued for decoding", full.GetProperty("detail").GetString());
        Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        Assert.False(waiting.IsCompleted);   // refused without waiting for the queue to move

        // A turn given back is taken by the waiting request, which is served.
        turns[0].Dispose();
        await Http.JsonAsync(await waiting);
        foreach (var turn in turns) turn.Dispose();
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(1, PrometheusText.Sum(metrics, "protopnet_requests_total", "endpoint=\"Classify\"", "status=\"503\""));
        Assert.Equal(0, PrometheusText.Sum(metrics, "protopnet_decode_waiting"));
    }

    /// <summary>
    /// A batch takes a turn per image, so a request queued behind it can be decoded between its images (one turn for the
    /// whole batch let two batches of large images keep a lone request waiting 11 s, for a 503); a single image, one turn.
    /// </summary>
    [Fact]
    public async Task ABatchTakesATurnPerImage()
    {
        await using var factory = bundles.SmokeService();
        var client = factory.CreateClient();
        var gate = factory.Services.GetRequiredService<PreprocessingGate>();
        var images = Enumerable.Range(0, 3).Select(i => ("image", Http.BundleImage(bundles.SmokeBundle, i), "image/png")).ToArray();

        var before = gate.TurnsGiven;
        var results = (await Http.JsonAsync(await client.PostAsync("/classify/batch", Http.Multipart(images)))).GetProperty("results");
        Assert.Equal(3, results.GetArrayLength());
        Assert.Equal(3, gate.TurnsGiven - before);

        before = gate.TurnsGiven;
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(images[0].Item2)));
        Assert.Equal(1, gate.TurnsGiven - before);

        // Every turn taken: the batch waits for each of its images' turns in the queue, and gets them as they come back.
        var (_, turns) = await TakeEveryTurnAsync(factory);
        var batch = client.PostAsync("/classify/batch", Http.Multipart(images));
        await UntilAsync(() => gate.Waiting == 1);
        turns[0].Dispose();
        Assert.Equal(3, (await Http.JsonAsync(await batch)).GetProperty("results").GetArrayLength());
        foreach (var turn in turns.Skip(1)) turn.Dispose();
        Assert.Equal(0, gate.Waiting);
    }

    [Fact]
    public async Task AClientThatHasLeftGetsNoTurnEvenAFreeOne()
    {
        // A batch takes a turn per image: once its client is gone, the images left are not decoded for nobody.
        using var gate = new PreprocessingGate(Microsoft.Extensions.Options.Options.Create(new BatchingOptions()));
        using var left = new CancellationTokenSource();
        using (await gate.EnterAsync(left.Token)) { }
        left.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => (await gate.EnterAsync(left.Token)).Dispose());
        Assert.Equal(1, gate.TurnsGiven);
        Assert.Equal(0, gate.Waiting);
    }

    /// <summary>
    /// The turns count as stuck once every one has been held, with none given, for Batching:DecodeStuckSeconds itself,
    /// not only past it: a tick before, live; at it, not (measured from the first look that saw them so).
    /// </summary>
    [Fact]
    public async Task EveryTurnHeldForExactlyTheStuckTimeIsStuck()
    {
        using var gate = new PreprocessingGate(Microsoft.Extensions.Options.Options.Create(new BatchingOptions { DecodeStuckSeconds = 5 }));
        var turns = new List<IDisposable>();
        for (var i = 0; i < PreprocessingGate.Turns; i++) turns.Add(await gate.EnterAsync(CancellationToken.None));
        var seen = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

        Assert.Null(gate.StuckFor(seen));
        Assert.Null(gate.StuckFor(seen.AddSeconds(5).AddTicks(-1)));
        Assert.Equal(TimeSpan.FromSeconds(5), gate.StuckFor(seen.AddSeconds(5)));
        foreach (var turn in turns) turn.Dispose();
        Assert.Null(gate.StuckFor(seen.AddSeconds(6)));   // a free turn: live
    }

    [Fact]
    public async Task ARequestThatWaitsLongerThanTheQueueTimeoutGets503()
    {
        await using var factory = bundles.SmokeService(("Batching:QueueTimeoutMs", "1500"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        var (gate, turns) = await TakeEveryTurnAsync(factory);

        var started = DateTime.UtcNow;
        var expired = await Http.ProblemAsync(await client.PostAsync("/classify", Http.Image(image)), HttpStatusCode.ServiceUnavailable, "overloaded");
        Assert.Contains("waited 1500 ms in the queue", expired.GetProperty("detail").GetString());
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(1.4));
        Assert.Equal(0, gate.Waiting);
        foreach (var turn in turns) turn.Dispose();
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)));
    }

    [Fact]
    public async Task AClientThatLeavesWhileWaitingIsCounted499AndLoggedAsNoError()
    {
        await using var factory = bundles.SmokeService(("Batching:QueueTimeoutMs", "30000"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        var (gate, turns) = await TakeEveryTurnAsync(factory);

        using var leaving = new CancellationTokenSource();
        var request = client.PostAsync("/classify", Http.Image(image), leaving.Token);
        await UntilAsync(() => gate.Waiting == 1);
        await leaving.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await UntilAsync(() => gate.Waiting == 0);
        foreach (var turn in turns) turn.Dispose();

        var line = await factory.Logs.WaitForAsync(message => message.Contains("/classify", StringComparison.Ordinal)
            && message.Contains("responded", StringComparison.Ordinal));
        Assert.Contains("responded 499", line);
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(1, PrometheusText.Sum(metrics, "protopnet_requests_total", "endpoint=\"Classify\"", "status=\"499\""));
        Assert.Equal(0, PrometheusText.Sum(metrics, "protopnet_requests_total", "status=\"500\""));
        Assert.DoesNotContain(factory.Logs.Entries, entry => entry.Level >= LogLevel.Error);
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)));   // the turn it never took is free
    }

    [Fact]
    public async Task AWaitingRequestIsServedWhenATurnComesBackInTime()
    {
        await using var factory = bundles.SmokeService(("Batching:QueueTimeoutMs", "30000"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 4);
        var (gate, turns) = await TakeEveryTurnAsync(factory);

        var waiting = Enumerable.Range(0, 3).Select(_ => client.PostAsync("/classify", Http.Image(image))).ToArray();
        await UntilAsync(() => gate.Waiting == 3);
        Assert.All(waiting, request => Assert.False(request.IsCompleted));

        turns[0].Dispose();   // one turn back: the three waiting requests decode one after another and are served
        foreach (var response in await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(30))) await Http.JsonAsync(response);
        foreach (var turn in turns) turn.Dispose();
    }

    [Fact]
    public async Task UploadsWaitingToDecodeHoldNoMoreThanTheBufferBudget()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        var budget = (image.Length * 3 / 2).ToString(System.Globalization.CultureInfo.InvariantCulture);   // one upload fits, two do not
        await using var factory = bundles.SmokeService(("Images:MaxBytes", budget), ("Images:MaxBufferedBytes", budget),
            ("Batching:QueueTimeoutMs", "30000"));
        var client = factory.CreateClient();
        var uploads = factory.Services.GetRequiredService<BufferBudget>();
        var (gate, turns) = await TakeEveryTurnAsync(factory);

        var waiting = client.PostAsync("/classify", Http.Raw(image, "image/png"));
        await UntilAsync(() => gate.Waiting == 1);
        Assert.Equal(image.Length, uploads.Held);   // held while it waits for its turn
        Assert.Equal(image.Length, PrometheusText.Sum(await PrometheusText.ScrapeAsync(client), "protopnet_buffered_bytes"));

        var refused = await client.PostAsync("/classify", Http.Raw(image, "image/png"));
        var full = await Http.ProblemAsync(refused, HttpStatusCode.ServiceUnavailable, "overloaded");
        Assert.Contains($"hold {image.Length} of {budget} bytes in memory (Images:MaxBufferedBytes)", full.GetProperty("detail").GetString());
        Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        // A multipart upload is taken once its files are in, before they are copied into memory: refused then.
        await Http.ProblemAsync(await client.PostAsync("/classify", Http.Image(image)), HttpStatusCode.ServiceUnavailable, "overloaded");
        Assert.False(waiting.IsCompleted);
        Assert.Equal(image.Length, uploads.Held);   // the refused uploads gave their bytes back

        foreach (var turn in turns) turn.Dispose();
        await Http.JsonAsync(await waiting);
        Assert.Equal(0, uploads.Held);              // decoded: given back
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Raw(image, "image/png")));

        // A request whose images alone hold more than the whole budget can never be served: 413, not "retry".
        var batch = await client.PostAsync("/classify/batch", Http.Multipart(("image", image, "image/png"), ("image", image, "image/png")));
        var tooLarge = await Http.ProblemAsync(batch, HttpStatusCode.RequestEntityTooLarge, "image-too-large");
        Assert.Contains("Images:MaxBufferedBytes", tooLarge.GetProperty("detail").GetString());
        Assert.Equal(0, uploads.Held);

        // The pixels an answer keeps to draw heatmaps on are held too: a uniform 64x64 PNG is small, its pixels (3 bytes
        // each) more than the budget.
        using var uniform = new Image<Rgb24>(64, 64, new Rgb24(90, 120, 150));
        var small = Http.Encode(uniform, new PngEncoder());
        Assert.True(small.Length < image.Length && 3 * 64 * 64 > image.Length * 3 / 2);
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Raw(small, "image/png")));
        var drawing = await client.PostAsync("/classify?heatmaps=png", Http.Raw(small, "image/png"));
        Assert.Contains("Images:MaxBufferedBytes", (await Http.ProblemAsync(drawing, HttpStatusCode.RequestEntityTooLarge, "image-too-large")).GetProperty("detail").GetString());
        Assert.Equal(0, uploads.Held);
    }

    [Theory]
    [InlineData("/classify?heatmaps=png", HeatmapUse.Sent)]
    [InlineData("/classify/card", HeatmapUse.Drawn)]
    public async Task AnAnswerThatDrawsIsChargedForThePictureItDrawsBeforeItsAnswerStarts(string path, HeatmapUse use)
    {
        // A uniform PNG: a small upload whose pixels and drawing are much more.
        using var uniform = new Image<Rgb24>(64, 48, new Rgb24(90, 120, 150));
        var image = Http.Encode(uniform, new PngEncoder());
        int mapHeight;
        await using (var probe = bundles.SmokeService())
        {
            using var lease = probe.Services.GetRequiredService<ModelRegistry>().Lease(ModelSelector.Parse("smoke"));
            mapHeight = lease.Bundle.Session.MapHeight;
        }
        var drawing = DrawingMemory.DrawingBytes(use, 64, 48, mapHeight);
        Assert.True(drawing > 3 * 64 * 48);   // more than the pixels kept, which alone were charged before
        // The upload while it decodes, the pixels kept and the one picture drawn at a time.
        var needed = image.Length + 3 * 64 * 48 + drawing;

        var maxBytes = ("Images:MaxBytes", image.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await using (var tight = bundles.SmokeService(maxBytes, ("Images:MaxBufferedBytes", (needed - 1).ToString(System.Globalization.CultureInfo.InvariantCulture))))
        {
            var client = tight.CreateClient();
            var refused = await client.PostAsync(path, Http.Raw(image, "image/png"));
            // Never servable at this budget: too large, not "retry" (the request's own upload is counted as its own).
            var problem = await Http.ProblemAsync(refused, HttpStatusCode.RequestEntityTooLarge, "image-too-large");
            Assert.Contains("Images:MaxBufferedBytes", problem.GetProperty("detail").GetString());
            Assert.Equal(0, tight.Services.GetRequiredService<BufferBudget>().Held);
            await Http.JsonAsync(await client.PostAsync("/classify", Http.Raw(image, "image/png")));   // drawing nothing: served
        }
        await using (var enough = bundles.SmokeService(maxBytes, ("Images:MaxBufferedBytes", needed.ToString(System.Globalization.CultureInfo.InvariantCulture))))
        {
            var answered = await enough.CreateClient().PostAsync(path, Http.Raw(image, "image/png"));
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
            Assert.NotEmpty(await answered.Content.ReadAsByteArrayAsync());
            var budget = enough.Services.GetRequiredService<BufferBudget>();
            await UntilAsync(() => budget.Held == 0);
        }
    }

    [Fact]
    public async Task ARawUploadHoldsOnlyTheBytesItHasSent()
    {
        await using var factory = bundles.SmokeService();
        var buffers = factory.Services.GetRequiredService<BufferBudget>();
        // A slow client: it declares 4 MB, sends 100 KB and stops.
        var paused = new TaskCompletionSource();
        var content = new PausingContent(new byte[4_000_000], 100_000, paused.Task, "image/png");
        // The test server's own client: the factory's default one buffers a request body whole (to resend it on a redirect).
        var request = factory.Server.CreateClient().PostAsync("/classify", content);
        await UntilAsync(() => buffers.Held > 0 && content.Sent == 100_000);
        await Task.Delay(200);
        Assert.InRange(buffers.Held, 100_000, 2 * 128 * 1024);   // what it sent, in a buffer at most twice that: not the 4 MB declared

        paused.SetResult();   // the rest arrives (zeros: not an image)
        await Http.ProblemAsync(await request, HttpStatusCode.BadRequest, "image-not-decodable");
        Assert.Equal(0, buffers.Held);

        // Answers that drew on their pixels give them back once written (disposal runs just after the answer is sent).
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        await Http.JsonAsync(await client.PostAsync("/classify?heatmaps=png", Http.Raw(image, "image/png")));
        await UntilAsync(() => buffers.Held == 0);
        await Http.JsonAsync(await client.PostAsync("/classify/batch?heatmaps=png", Http.Multipart(("image", image, "image/png"), ("image", image, "image/png"))));
        await UntilAsync(() => buffers.Held == 0);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/classify/card", Http.Raw(image, "image/png"))).StatusCode);
        await UntilAsync(() => buffers.Held == 0);
    }

    /// <summary>
    /// A client that sends part of a body and stalls is cut off at Classify:UploadReadTimeout (408), and what it held of
    /// the buffer budget is given back: Kestrel's rate floor, averaged over the whole body, would keep it for hours.
    /// The same for a multipart upload and a v2 infer body.
    /// </summary>
    [Fact]
    public async Task ABodyThatStallsIsCutOffAtTheUploadDeadline()
    {
        await using var factory = bundles.SmokeService(("Classify:UploadReadTimeout", "00:00:02"));
        var buffers = factory.Services.GetRequiredService<BufferBudget>();
        var image = Http.BundleImage(bundles.SmokeBundle, 1);
        using var multipart = Http.Multipart(("image", image, "image/png"));
        var multipartBody = await multipart.ReadAsByteArrayAsync();
        var tensor = System.Text.Encoding.UTF8.GetBytes(
            $$"""{"inputs": [{"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [{{string.Join(", ", Enumerable.Repeat("0.5", 3 * 32 * 32))}}]}]}""");
        var never = new TaskCompletionSource();   // the rest of each body never comes
        foreach (var (path, body, type) in new[]
                 {
                     ("/classify", image, "image/png"),
                     ("/classify", multipartBody, multipart.Headers.ContentType!.ToString()),
                     ("/v2/models/smoke/infer", tensor, "application/json"),
                 })
        {
            var started = System.Diagnostics.Stopwatch.StartNew();
            var content = new PausingContent(body, body.Length / 2, never.Task, type);
            var answer = await factory.Server.CreateClient().PostAsync(path, content);
            Assert.Equal(HttpStatusCode.RequestTimeout, answer.StatusCode);
            // A problem on the service's own endpoints; the Open Inference Protocol's {"error": ...} on v2.
            var said = await answer.Content.ReadAsStringAsync();
            Assert.Contains("did not arrive within 00:00:02 (Classify:UploadReadTimeout)", said);
            Assert.InRange(started.Elapsed.TotalSeconds, 1.5, 30);
            await UntilAsync(() => buffers.Held == 0);
        }
        // A body that arrives in time is read as always.
        Assert.Equal(HttpStatusCode.OK, (await factory.CreateClient().PostAsync("/classify", Http.Raw(image, "image/png"))).StatusCode);
    }

    /// <summary>Every turn to decode taken, as by requests decoding large photos.</summary>
    /// <summary>
    /// Decodes that never return (a decoder's endless loop) hold every turn for good, and every later upload is refused:
    /// once no turn has been given for Batching:DecodeStuckSeconds, /health/live answers 500 decoding-stuck so that the
    /// orchestrator restarts the service. Turns given meanwhile, or a free one, keep it live.
    /// </summary>
    [Fact]
    public async Task WithEveryTurnHeldAndNoneGivenTheServiceIsNotLive()
    {
        await using var factory = bundles.SmokeService(("Batching:DecodeStuckSeconds", "1"));
        var client = factory.CreateClient();
        var (gate, turns) = await TakeEveryTurnAsync(factory);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);   // seen held from now
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        var stuck = await Http.ProblemAsync(await client.GetAsync("/health/live"), HttpStatusCode.InternalServerError, "decoding-stuck");
        Assert.Contains($"All {Environment.ProcessorCount} turns to decode images have been held for ", stuck.GetProperty("detail").GetString());
        Assert.Contains("(Batching:DecodeStuckSeconds 1)", stuck.GetProperty("detail").GetString());
        // The protocol's liveness says the same, in its terms (false is a 4xx with {"error": ...}), for a probe of it.
        using var v2Stuck = await client.GetAsync("/v2/health/live");
        Assert.Equal(HttpStatusCode.BadRequest, v2Stuck.StatusCode);
        Assert.Equal(stuck.GetProperty("detail").GetString(), System.Text.Json.JsonDocument.Parse(await v2Stuck.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());

        // A turn given back and taken again: progress, so live again, until none is given for the time again.
        turns[0].Dispose();
        turns[0] = await gate.EnterAsync(CancellationToken.None);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        Assert.Equal(HttpStatusCode.InternalServerError, (await client.GetAsync("/health/live")).StatusCode);
        // A free turn: live.
        turns[0].Dispose();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/health/live")).StatusCode);
        foreach (var turn in turns.Skip(1)) turn.Dispose();
        await Task.Delay(TimeSpan.FromSeconds(1.2));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
    }

    private static async Task<(PreprocessingGate Gate, List<IDisposable> Turns)> TakeEveryTurnAsync(ServiceFactory factory)
    {
        var gate = factory.Services.GetRequiredService<PreprocessingGate>();
        var turns = new List<IDisposable>();
        for (var i = 0; i < Environment.ProcessorCount; i++) turns.Add(await gate.EnterAsync(CancellationToken.None));
        return (gate, turns);
    }

    private static Task UntilAsync(Func<bool> condition) => Eventually.TrueAsync(condition, "the condition did not come true within 10 s");
}
