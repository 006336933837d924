using System.Net;
using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// A model folder that cannot be read (its permissions changed under a running service) is not a deleted one: what was
/// loaded from it serves on, the folder is reported with why, and it loads once it can be read again. The service runs
/// as a process of its own, subject to file permissions even when the tests run as root.
/// </summary>
[Collection(BundlesCollection.Name)]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class UnreadableModelFolderTests(TrainerBundles bundles)
{
    private const string AdminKey = "test-admin-key";
    private const string NewerVersion = "29991231T000000Z";

    [Fact]
    public async Task AFolderThatCannotBeReadKeepsWhatWasLoadedFromItServingAndANewVersionLoadsOnceItCanBeRead()
    {
        var version = Path.GetFileName(bundles.SmokeBundle);
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", null));
        var modelFolder = Path.Combine(root, "smoke");
        var versionFolder = Path.Combine(modelFolder, version);
        var newer = Path.Combine(modelFolder, NewerVersion);
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = root, ["Models__Watch"] = "false", ["Inference__IntraOpThreads"] = "1", ["Security__AdminApiKey"] = AdminKey,
        }, subjectToFilePermissions: true);
        await using var _ = service;
        Assert.True(ready, "the service did not become ready:\n" + string.Join('\n', service.Output));
        try
        {
            foreach (var folder in (string[])[versionFolder, modelFolder, root])
            {
                File.SetUnixFileMode(folder, UnixFileMode.None);
                for (var reload = 0; reload < 2; reload++)
                {
                    var body = await ReloadAsync(service);
                    Assert.Equal(version, body.GetProperty("servedVersion").GetString());
                    Assert.Equal(0, body.GetProperty("removed").GetArrayLength());
                    var refused = body.GetProperty("refused").EnumerateArray().ToArray();
                    if (folder == versionFolder)
                    {
                        Assert.Empty(refused);   // it is served: only the log says its folder cannot be read
                    }
                    else
                    {
                        var entry = Assert.Single(refused);
                        // Relative to the model root, in the reason too: an answer does not show where the files are.
                        Assert.Equal(folder == root ? "." : "smoke", entry.GetProperty("directory").GetString());
                        Assert.Contains("its folder cannot be read", entry.GetProperty("reason").GetString());
                        Assert.DoesNotContain(root, entry.GetProperty("reason").GetString());
                    }
                    await AssertClassifiedByAsync(service, version);
                }
                // One line for two scans (the log is written in batches: it may come a moment after the answer).
                bool Says(string line) => line.Contains("Cannot read model folder " + folder + ":", StringComparison.Ordinal);
                await Eventually.TrueAsync(() => service.Output.Any(Says), () => "no line says the folder cannot be read:\n" + string.Join('\n', service.Output));
                Assert.Single(service.Output, Says);
                File.SetUnixFileMode(folder, Readable);
            }
            Assert.DoesNotContain(service.Output, line => line.Contains("is unloaded", StringComparison.Ordinal));

            // A newer version whose folder cannot be read is refused while the loaded one serves, and loads once it can be read.
            Trainer.CopyDirectory(versionFolder, newer);
            TrainerBundles.EditManifest(newer, manifest => manifest["version"] = NewerVersion);
            File.SetUnixFileMode(newer, UnixFileMode.None);
            var refusedNewer = Assert.Single((await ReloadAsync(service)).GetProperty("refused").EnumerateArray());
            Assert.Equal($"smoke/{NewerVersion}", refusedNewer.GetProperty("directory").GetString());
            await AssertClassifiedByAsync(service, version);
            File.SetUnixFileMode(newer, Readable);
            // So is one whose graph cannot be read, though mending its permissions changes nothing a listing shows; the
            // refusal is said once, however many scans meet it.
            var graph = Path.Combine(newer, "model.onnx");
            File.SetUnixFileMode(graph, UnixFileMode.None);
            for (var reload = 0; reload < 2; reload++)
            {
                var refusedGraph = Assert.Single((await ReloadAsync(service)).GetProperty("refused").EnumerateArray());
                Assert.Contains("cannot be read", refusedGraph.GetProperty("reason").GetString());
                Assert.Contains($"'smoke/{NewerVersion}/model.onnx'", refusedGraph.GetProperty("reason").GetString());
            }
            await Eventually.TrueAsync(() => service.Output.Any(line => line.Contains("Refused model bundle " + newer, StringComparison.Ordinal)),
                () => "the refusal was not logged:\n" + string.Join('\n', service.Output));
            Assert.Single(service.Output, line => line.Contains("Refused model bundle " + newer, StringComparison.Ordinal));
            File.SetUnixFileMode(graph, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var loaded = await ReloadAsync(service);
            Assert.Equal(NewerVersion, loaded.GetProperty("servedVersion").GetString());
            Assert.Empty(loaded.GetProperty("refused").EnumerateArray());
            await AssertClassifiedByAsync(service, NewerVersion);
        }
        finally
        {
            foreach (var folder in (string[])[root, modelFolder, versionFolder, newer])
                if (Directory.Exists(folder)) File.SetUnixFileMode(folder, Readable);
        }
    }

    /// <summary>
    /// A folder the file watcher cannot watch makes it fail at every renewal (after each periodic rescan): the failure,
    /// and the folder the scan cannot read, are each said once, and the model keeps serving.
    /// </summary>
    [Fact]
    public async Task AFolderThatCannotBeWatchedIsSaidOnceAcrossPeriodicRescans()
    {
        var version = Path.GetFileName(bundles.SmokeBundle);
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", null));
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = root, ["Models__Watch"] = "true", ["Models__RescanIntervalSeconds"] = "1", ["Inference__IntraOpThreads"] = "1",
        }, subjectToFilePermissions: true);
        await using var _ = service;
        Assert.True(ready, "the service did not become ready:\n" + string.Join('\n', service.Output));
        var locked = Path.Combine(root, "locked");
        Directory.CreateDirectory(locked);
        File.SetUnixFileMode(locked, UnixFileMode.None);
        try
        {
            bool WatchFailed(string line) => line.Contains("Watching " + root + " failed", StringComparison.Ordinal);
            bool CannotRead(string line) => line.Contains("Cannot read model folder " + locked + ":", StringComparison.Ordinal);
            await Eventually.TrueAsync(() => service.Output.Any(WatchFailed) && service.Output.Any(CannotRead),
                () => "the watcher's failure and the unreadable folder were not both logged:\n" + string.Join('\n', service.Output));
            await Task.Delay(TimeSpan.FromSeconds(4));   // four periodic rescans, each watching anew
            Assert.Single(service.Output, WatchFailed);
            Assert.Single(service.Output, CannotRead);
            await AssertClassifiedByAsync(service, version);
        }
        finally
        {
            File.SetUnixFileMode(locked, Readable);
        }
    }

    /// <summary>
    /// A volume mounted as the model root (a Kubernetes claim on a block device) has the file system's lost+found,
    /// owned by root and closed to the service's user: it is no model folder, so it is neither refused (an error line,
    /// protopnet_models_refused at 1 and its alert for good) nor a reason the watcher failed; the watcher still sees
    /// a version published beside it.
    /// </summary>
    [Fact]
    public async Task TheFileSystemsLostAndFoundAtTheRootIsNoRefusedModelFolder()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", null));
        var lostAndFound = Path.Combine(root, "lost+found");
        Directory.CreateDirectory(lostAndFound);
        File.SetUnixFileMode(lostAndFound, UnixFileMode.None);
        try
        {
            var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
            {
                ["Models__Root"] = root, ["Models__Watch"] = "true", ["Models__RescanIntervalSeconds"] = "0", ["Models__SettleSeconds"] = "0",
                ["Inference__IntraOpThreads"] = "1", ["Security__AdminApiKey"] = AdminKey,
            }, subjectToFilePermissions: true);
            await using var _ = service;
            Assert.True(ready, "the service did not become ready:\n" + string.Join('\n', service.Output));
            Assert.Empty((await ReloadAsync(service)).GetProperty("refused").EnumerateArray());
            Assert.Empty(JsonDocument.Parse(await service.Client.GetStringAsync("/models")).RootElement.GetProperty("refused").EnumerateArray());
            Assert.Contains("\nprotopnet_models_refused 0\n", await service.Client.GetStringAsync("/metrics"));

            // Watched still: a bundle folder written beside it is seen (and refused, its manifest being empty) without a rescan.
            var staging = Path.Combine(bundles.NewRoot(), "20990101T000000Z");
            Directory.CreateDirectory(staging);
            await File.WriteAllTextAsync(Path.Combine(staging, "model.json"), "{}");
            Directory.CreateDirectory(Path.Combine(root, "other"));
            Directory.Move(staging, Path.Combine(root, "other", "20990101T000000Z"));
            await Eventually.TrueAsync(() => service.Output.Any(line => line.Contains("Refused model bundle " + Path.Combine(root, "other"), StringComparison.Ordinal)),
                () => "the watcher did not see the new folder:\n" + string.Join('\n', service.Output));
            Assert.DoesNotContain(service.Output, line => line.Contains("lost+found", StringComparison.Ordinal));
            Assert.DoesNotContain(service.Output, line => line.Contains("Watching " + root + " failed", StringComparison.Ordinal));
        }
        finally
        {
            File.SetUnixFileMode(lostAndFound, Readable);
        }
    }

    private const UnixFileMode Readable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static async Task<JsonElement> ReloadAsync(ServiceProcess service)
    {
        using var reload = new HttpRequestMessage(HttpMethod.Post, "/models/smoke/reload");
        reload.Headers.Add("X-Api-Key", AdminKey);
        var answer = await service.Client.SendAsync(reload);
        Assert.True(answer.StatusCode == HttpStatusCode.OK, $"reload answered {(int)answer.StatusCode}: {await answer.Content.ReadAsStringAsync()}");
        return await Http.JsonAsync(answer);
    }

    private async Task AssertClassifiedByAsync(ServiceProcess service, string version)
    {
        var answer = await service.Client.PostAsync("/classify?model=smoke", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        Assert.True(answer.StatusCode == HttpStatusCode.OK, $"classify answered {(int)answer.StatusCode}: {await answer.Content.ReadAsStringAsync()}");
        Assert.Equal(version, (await Http.JsonAsync(answer)).GetProperty("model").GetProperty("version").GetString());
    }
}
