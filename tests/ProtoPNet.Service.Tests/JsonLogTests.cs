using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// Logging:Format=json (as the compose file and the Kubernetes manifests run the service): every line one JSON object
/// with the compact layout, its message as the console writes it, text values unquoted, so that a line the docs quote
/// is found as they quote it (it was "ORT_DISABLE_TELEMETRY=\"1\"", "Model \"smoke\"@...").
/// </summary>
[Collection(BundlesCollection.Name)]
public class JsonLogTests(TrainerBundles bundles)
{
    [Fact]
    public async Task EveryLineIsOneJsonObjectWhoseMessageReadsAsTheConsolesDoes()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Logging__Format", "json"), ("Inference__ExecutionProvider", "cpu"),
            ("Models__Pinned__ghost", "20260101T000000Z"));   // a pin of no model: a warning
        using (var answer = await service.Client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))))
        {
            Assert.True(answer.IsSuccessStatusCode);
        }
        using (await service.Client.GetAsync("/classify?topClasses=abc")) { }
        await service.WaitForLineAsync("HTTP GET /classify responded 405");
        service.Terminate();
        Assert.Equal(0, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));

        var events = service.JsonEvents();
        Assert.All(events, e => Assert.True(e.TryGetProperty("@t", out _) && e.TryGetProperty("@m", out _) && e.TryGetProperty("@i", out _)));
        string[] messages = [.. events.Select(e => e.GetProperty("@m").GetString()!)];
        Assert.Contains("ONNX Runtime usage telemetry is off (ORT_DISABLE_TELEMETRY=1)", messages);
        var request = Assert.Single(messages, m => m.StartsWith("HTTP POST /classify responded 200 in ", StringComparison.Ordinal));
        Assert.Contains($"(model smoke@{Path.GetFileName(bundles.SmokeBundle)}, predicted ", request);
        Assert.DoesNotContain(messages, m => m.Contains("\"smoke\"", StringComparison.Ordinal));
        // The properties are still there as values; the level is written only when it is not Information.
        var loaded = Assert.Single(events, e => e.GetProperty("@m").GetString()!.StartsWith("Loaded model smoke@", StringComparison.Ordinal));
        Assert.Equal("smoke", loaded.GetProperty("Model").GetString());
        var refused = Assert.Single(events, e => e.GetProperty("@m").GetString()!.StartsWith("HTTP GET /classify responded 405", StringComparison.Ordinal));
        Assert.Equal(405, refused.GetProperty("StatusCode").GetInt32());
        Assert.False(refused.TryGetProperty("@l", out _));   // a 4xx is Information, which the layout leaves out
        var warning = Assert.Single(events, e => e.GetProperty("@m").GetString()!.StartsWith("Models:Pinned:ghost pins a model that is not loaded", StringComparison.Ordinal));
        Assert.Equal("Warning", warning.GetProperty("@l").GetString());
    }
}
