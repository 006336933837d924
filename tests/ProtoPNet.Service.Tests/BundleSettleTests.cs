using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// A version folder copied into the model root file by file (cp, rsync, a network drive) rather than published by a
/// rename: a bundle that does not load is not refused until its files have stayed the same for Models:SettleSeconds
/// (by the service's clock: a copy may keep its source's file times); meanwhile it is said once, and neither listed
/// among the refused (GET /models, protopnet_models_refused) nor counted in protopnet_model_loads_total{result="refused"}.
/// It loads once whole; one that stays broken is refused then. (A slow copy was refused at every scan.)
/// </summary>
[Collection(BundlesCollection.Name)]
public class BundleSettleTests(TrainerBundles bundles)
{
    [Fact]
    public async Task ABundleStillBeingCopiedIsNotRefusedAndLoadsOnceWhole()
    {
        var (factory, registry, version, graph) = StartWithHalfCopiedBundle(settleSeconds: 3);
        await using var owned = factory;
        var client = factory.CreateClient();
        Assert.Empty(registry.Catalog.Refused);
        Assert.DoesNotContain(registry.Catalog.Families.Keys, name => name == "smoke");
        // A copy that keeps its source's file times (cp -p, rsync -a, tar): as much a copy in progress.
        foreach (var file in Directory.EnumerateFiles(version, "*", SearchOption.AllDirectories)) File.SetLastWriteTimeUtc(file, new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        registry.Rescan();   // the copy goes on: said once
        Assert.Empty(registry.Catalog.Refused);
        var settling = await PrometheusText.ScrapeAsync(client);
        Assert.Contains("\nprotopnet_models_refused ", settling);
        Assert.Equal(0, PrometheusText.Sum(settling, "protopnet_models_refused"));
        Assert.Single(factory.Logs.Entries, e => e.Level == LogLevel.Information && e.Message.Contains("does not load yet") && e.Message.Contains("once its files have stayed the same for 3 s") && e.Message.Contains("smoke"));
        Assert.DoesNotContain(factory.Logs.Entries, e => e.Level >= LogLevel.Warning && e.Message.Contains("smoke"));

        File.WriteAllBytes(Path.Combine(version, "model.onnx"), graph);
        registry.Rescan();
        Assert.Empty(registry.Catalog.Refused);
        Assert.Contains(registry.Catalog.Families.Keys, name => name == "smoke");
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(0, PrometheusText.Sum(metrics, "protopnet_model_loads_total", "model=\"smoke\"", "result=\"refused\""));
        Assert.Equal(1, PrometheusText.Sum(metrics, "protopnet_model_loads_total", "model=\"smoke\"", "result=\"loaded\""));
    }

    [Fact]
    public async Task ABundleThatStaysBrokenIsRefusedOnceItsFilesHaveBeenStill()
    {
        var (factory, registry, _, _) = StartWithHalfCopiedBundle(settleSeconds: 2);
        await using var owned = factory;
        var client = factory.CreateClient();
        Assert.Empty(registry.Catalog.Refused);

        // No watcher and no periodic rescan here: the service looks again by itself once the files have settled.
        await Eventually.TrueAsync(() => factory.Logs.Entries.Any(e => e.Level == LogLevel.Error && e.Message.Contains("Refused model bundle") && e.Message.Contains("smoke")),
            () => string.Join('\n', factory.Logs.Entries.Select(e => e.Message)));
        Assert.Contains("sha256 mismatch", Assert.Single(registry.Catalog.Refused).Reason);
        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal(1, PrometheusText.Sum(metrics, "protopnet_model_loads_total", "model=\"smoke\"", "result=\"refused\""));
    }

    /// <summary>
    /// The settle time counts from the files' last change, not from the folder's first sight: a copy that is still
    /// writing when the settle time since it was first seen has passed is not refused. The scanner's clock is moved by
    /// hand, so the test waits for nothing and a slow machine cannot stretch its steps.
    /// </summary>
    [Fact]
    public async Task TheSettleTimeStartsAgainWhenTheFilesChange()
    {
        var clock = new MovableClock();
        var (factory, registry, version, graph) = StartWithHalfCopiedBundle(settleSeconds: 10, clock);
        await using var owned = factory;

        clock.MoveOn(TimeSpan.FromSeconds(6));   // first seen 6 s ago: the copy goes on
        await using (var onnx = new FileStream(Path.Combine(version, "model.onnx"), FileMode.Append))
        {
            onnx.Write(graph.AsSpan(graph.Length / 2, 1000));
        }
        registry.Rescan();
        clock.MoveOn(TimeSpan.FromSeconds(6));   // first seen 12 s ago, changed 6 s ago
        registry.Rescan();
        Assert.Empty(registry.Catalog.Refused);
        Assert.DoesNotContain(factory.Logs.Entries, e => e.Message.Contains("Refused model bundle", StringComparison.Ordinal));

        clock.MoveOn(TimeSpan.FromSeconds(5));   // changed 11 s ago: still broken, so refused now
        registry.Rescan();
        Assert.Contains("sha256 mismatch", Assert.Single(registry.Catalog.Refused).Reason);
    }

    /// <summary>
    /// A reload right after a version was copied in half: both reload answers list it under settling, with why it did
    /// not load and when it is looked at again, and the reload of its model, of which no version loads yet, says so in
    /// its 404 (it said only that no such model is loaded). Once refused, it is listed as refused, no longer as settling.
    /// </summary>
    [Fact]
    public async Task AReloadTellsOfAFolderThatDoesNotLoadYet()
    {
        var clock = new MovableClock();
        var (factory, _, version, _) = StartWithHalfCopiedBundle(settleSeconds: 10, clock);
        await using var owned = factory;
        var client = factory.CreateClient();
        async Task<HttpResponseMessage> ReloadAsync(string path)
        {
            using var reload = new HttpRequestMessage(HttpMethod.Post, path);
            reload.Headers.Add("X-Api-Key", "admin");
            return await client.SendAsync(reload);
        }
        clock.MoveOn(TimeSpan.FromSeconds(3));

        var all = await Http.JsonAsync(await ReloadAsync("/models/reload"));
        var settling = Assert.Single(all.GetProperty("settling").EnumerateArray());
        Assert.Equal($"smoke/{Path.GetFileName(version)}", settling.GetProperty("directory").GetString());
        Assert.StartsWith("sha256 mismatch for model.onnx", settling.GetProperty("reason").GetString());
        Assert.Equal(7, settling.GetProperty("settlesInSeconds").GetInt32());
        Assert.Empty(all.GetProperty("refused").EnumerateArray());
        var detail = (await Http.ProblemAsync(await ReloadAsync("/models/smoke/reload"), HttpStatusCode.NotFound, "model-not-found")).GetProperty("detail").GetString();
        Assert.StartsWith($"No model named 'smoke' is loaded: no version of it loads yet ({Path.GetFileName(version)}: does not load yet (sha256 mismatch", detail);
        Assert.EndsWith("it is looked at again in about 7 s).", detail);
        Assert.Empty((await Http.JsonAsync(await ReloadAsync("/models/other/reload"))).GetProperty("settling").EnumerateArray());

        clock.MoveOn(TimeSpan.FromSeconds(7));   // still for exactly Models:SettleSeconds (10 s): refused
        all = await Http.JsonAsync(await ReloadAsync("/models/reload"));
        Assert.Empty(all.GetProperty("settling").EnumerateArray());
        Assert.Equal($"smoke/{Path.GetFileName(version)}", Assert.Single(all.GetProperty("refused").EnumerateArray()).GetProperty("directory").GetString());

        // A second version copied in half: the 404 tells of both, the refused one and the one that does not load yet.
        var second = Path.Combine(Path.GetDirectoryName(version)!, "29991231T000000Z");
        CopyFolder(bundles.SmokeBundle, second);
        TrainerBundles.EditManifest(second, manifest => manifest["version"] = "29991231T000000Z");
        var graph = File.ReadAllBytes(Path.Combine(second, "model.onnx"));
        File.WriteAllBytes(Path.Combine(second, "model.onnx"), graph[..(graph.Length / 2)]);
        detail = (await Http.ProblemAsync(await ReloadAsync("/models/smoke/reload"), HttpStatusCode.NotFound, "model-not-found")).GetProperty("detail").GetString();
        Assert.StartsWith($"No model named 'smoke' is loaded: no version of it loads ({Path.GetFileName(version)}: sha256 mismatch", detail);
        Assert.Contains("; 29991231T000000Z: does not load yet (sha256 mismatch", detail);
        // Once whole it loads, and is settling no more.
        File.WriteAllBytes(Path.Combine(second, "model.onnx"), graph);
        var one = await Http.JsonAsync(await ReloadAsync("/models/smoke/reload"));
        Assert.Equal(["smoke@29991231T000000Z"], one.GetProperty("loaded").EnumerateArray().Select(v => v.GetString()));
        Assert.Empty(one.GetProperty("settling").EnumerateArray());
        Assert.Equal($"smoke/{Path.GetFileName(version)}", Assert.Single(one.GetProperty("refused").EnumerateArray()).GetProperty("directory").GetString());
    }

    /// <summary>
    /// A folder that no scan tries any more, because as many newer versions as Models:LoadedVersions have loaded, is
    /// no longer listed as settling (it stayed listed for good, "looked at again in about 0 s").
    /// </summary>
    [Fact]
    public async Task AFolderNoLongerTriedIsNoLongerListedAsSettling()
    {
        var (factory, _, version, _) = StartWithHalfCopiedBundle(settleSeconds: 10, new MovableClock(), ("Models:LoadedVersions", "1"));
        await using var owned = factory;
        var client = factory.CreateClient();
        async Task<JsonElement> ReloadAllAsync()
        {
            using var reload = new HttpRequestMessage(HttpMethod.Post, "/models/reload");
            reload.Headers.Add("X-Api-Key", "admin");
            return await Http.JsonAsync(await client.SendAsync(reload));
        }
        Assert.Single((await ReloadAllAsync()).GetProperty("settling").EnumerateArray());

        var newer = Path.Combine(Path.GetDirectoryName(version)!, "29991231T000000Z");
        CopyFolder(bundles.SmokeBundle, newer);
        TrainerBundles.EditManifest(newer, manifest => manifest["version"] = "29991231T000000Z");
        var all = await ReloadAllAsync();
        Assert.Contains("smoke@29991231T000000Z", all.GetProperty("loaded").EnumerateArray().Select(v => v.GetString()));
        Assert.Empty(all.GetProperty("settling").EnumerateArray());
    }

    /// <summary>
    /// Two folders still being copied, first seen 6 s apart: the watcher is woken for the earlier one's moment, and then
    /// for the later one's (it was given the later one only, and the earlier folder waited for it).
    /// </summary>
    [Fact]
    public async Task TheWatcherIsWokenForTheFirstFolderToSettle()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "other", null));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:SettleSeconds", "10"));
        var clock = new MovableClock();
        factory.Replacing = services =>
        {
            services.AddSingleton(new SettleClock(clock));
            // The watcher takes the moment once a second; here the test takes it.
            services.Remove(services.Single(service => service.ImplementationType == typeof(ModelWatcherService)));
        };
        _ = factory.CreateClient();
        var registry = factory.Services.GetRequiredService<ModelRegistry>();
        void HalfCopied(string model)
        {
            var version = Path.Combine(root, model, Path.GetFileName(bundles.SmokeBundle));
            CopyFolder(bundles.SmokeBundle, version);
            var graph = File.ReadAllBytes(Path.Combine(version, "model.onnx"));
            File.WriteAllBytes(Path.Combine(version, "model.onnx"), graph[..(graph.Length / 2)]);
        }
        var firstSight = clock.GetUtcNow().UtcDateTime;

        HalfCopied("early");
        registry.Rescan();
        clock.MoveOn(TimeSpan.FromSeconds(6));
        HalfCopied("late");
        registry.Rescan();
        Assert.Equal(firstSight.AddSeconds(10), registry.TakeSettleDeadline());

        clock.MoveOn(TimeSpan.FromSeconds(5));   // the early one refused, the late one still settling
        registry.Rescan();
        Assert.Equal(firstSight.AddSeconds(16), registry.TakeSettleDeadline());
        Assert.EndsWith("early", Path.GetDirectoryName(Assert.Single(registry.Catalog.Refused).Directory));
    }

    /// <summary>A clock that stands still until moved on by hand (read from the scanner's, the watcher's and the requests' threads).</summary>
    private sealed class MovableClock : TimeProvider
    {
        private long _ticks = DateTimeOffset.UtcNow.UtcTicks;

        public void MoveOn(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);

        public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
    }

    /// <summary>
    /// A service (settling for <paramref name="settleSeconds"/>, by <paramref name="settleClock"/> if given) that has scanned a copy of the smoke bundle so far: its
    /// model.json, and half of its model.onnx. With its registry, the copy's folder and the whole graph.
    /// </summary>
    private (ServiceFactory Factory, ModelRegistry Registry, string Version, byte[] Graph) StartWithHalfCopiedBundle(int settleSeconds, TimeProvider? settleClock = null,
        params (string Key, string? Value)[] settings)
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "other", null));
        var factory = ServiceFactory.ForRoot(root, [("Models:SettleSeconds", $"{settleSeconds}"), ("Security:AdminApiKey", "admin"), .. settings]);
        if (settleClock is not null) factory.Replacing = services => services.AddSingleton(new SettleClock(settleClock));
        _ = factory.CreateClient();   // started: the models loaded
        var version = Path.Combine(root, "smoke", Path.GetFileName(bundles.SmokeBundle));
        CopyFolder(bundles.SmokeBundle, version);
        var graph = File.ReadAllBytes(Path.Combine(bundles.SmokeBundle, "model.onnx"));
        File.WriteAllBytes(Path.Combine(version, "model.onnx"), graph[..(graph.Length / 2)]);
        var registry = factory.Services.GetRequiredService<ModelRegistry>();
        registry.Rescan();
        return (factory, registry, version, graph);
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (var directory in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, directory)));
        }
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }
}
