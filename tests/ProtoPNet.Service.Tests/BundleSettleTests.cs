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
    /// writing when the settle time since it was first seen has passed is not refused.
    /// </summary>
    [Fact]
    public async Task TheSettleTimeStartsAgainWhenTheFilesChange()
    {
        for (var attempt = 1; ; attempt++)
        {
            // First seen at 0 s; changed at about 4 s; looked at after 10 s: 10 s after its first sight, 6 s after its change.
            var (factory, registry, version, graph) = StartWithHalfCopiedBundle(settleSeconds: 10);
            var firstSeen = System.Diagnostics.Stopwatch.StartNew();   // a moment after its first sight
            await using var owned = factory;
            await Task.Delay(TimeSpan.FromSeconds(4));
            await using (var onnx = new FileStream(Path.Combine(version, "model.onnx"), FileMode.Append))
            {
                onnx.Write(graph.AsSpan(graph.Length / 2, 1000));
            }
            var changed = firstSeen.Elapsed;
            registry.Rescan();
            await Task.Delay(TimeSpan.FromSeconds(10) - firstSeen.Elapsed + TimeSpan.FromMilliseconds(500));
            registry.Rescan();
            var lookedAt = firstSeen.Elapsed - changed;
            if (lookedAt >= TimeSpan.FromSeconds(9.5))
            {
                // A busy machine held this test up until the files had been still for nearly the settle time, when
                // refusing them is right: the run tells nothing. Again, a few times.
                Assert.True(attempt < 3, $"in 3 attempts the test was held up each time: the last looked at {lookedAt} after the change");
                continue;
            }
            Assert.Empty(registry.Catalog.Refused);
            Assert.DoesNotContain(factory.Logs.Entries, e => e.Message.Contains("Refused model bundle", StringComparison.Ordinal));
            return;
        }
    }

    /// <summary>
    /// A service (settling for <paramref name="settleSeconds"/>) that has scanned a copy of the smoke bundle so far: its
    /// model.json, and half of its model.onnx. With its registry, the copy's folder and the whole graph.
    /// </summary>
    private (ServiceFactory Factory, ModelRegistry Registry, string Version, byte[] Graph) StartWithHalfCopiedBundle(int settleSeconds)
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "other", null));
        var factory = ServiceFactory.ForRoot(root, ("Models:SettleSeconds", $"{settleSeconds}"));
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
