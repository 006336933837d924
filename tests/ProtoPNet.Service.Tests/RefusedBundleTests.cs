using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>Each load check refuses a bundle with one clear error line, while a good bundle next to it keeps serving.</summary>
[Collection(BundlesCollection.Name)]
public class RefusedBundleTests(TrainerBundles bundles)
{
    private static byte[] Replace(byte[] bytes, string from, string to)
    {
        var pattern = Encoding.ASCII.GetBytes(from);
        var replacement = Encoding.ASCII.GetBytes(to);
        var result = (byte[])bytes.Clone();
        var count = 0;
        for (var i = 0; i <= result.Length - pattern.Length; i++)
        {
            if (!result.AsSpan(i, pattern.Length).SequenceEqual(pattern)) continue;
            replacement.CopyTo(result, i);
            count++;
        }
        Assert.True(count > 0, $"'{from}' not found in the graph");
        return result;
    }

    public static TheoryData<string, string> Cases => new()
    {
        { "bad-sha", "sha256 mismatch" },
        { "bad-outputs", "missing [similarities]" },
        { "bad-probe", "probe mismatch" },
        { "bad-invariant", "broken invariant" },
        { "bad-version", "but its folder is named '20000101T000000Z'" },
        { "bad-name", "model.json says name 'good' but its model folder is named 'bad-name'" },
        { "fixed-batch", "its batch size is fixed at 1, but the first dimension must be dynamic (N)" },
        { "one-row-inside", "running a batch of two images failed" },
        { "null-input", "model.json is not a valid manifest: 'input' is null, where a value is required (at $.input," },
        { "null-class", "model.json is not a valid manifest: classes[0] is null." },
        { "class-index-past-the-last", "prototypes[0].classIndex 4 is not a class" },
        { "null-example", "model.json is not a valid manifest: examples[0] is null." },
        { "no-classes", "model.json is not a valid manifest: it has no 'classes'" },
        { "text-class-index", "model.json is not a valid manifest: a value is not a 32-bit integer (at $.prototypes[0].classIndex," },
        { "object-weights", "model.json is not a valid manifest: a value is not an array (at $.lastLayer.weights," },
        { "array-input", "model.json is not a valid manifest: a value is not an object (at $.input," },
        { "text-box-height", "model.json is not a valid manifest: a value is not a 32-bit integer (at $.prototypes[0].source.box.height," },
        { "broken-json", "model.json is not a valid manifest: ',' is an invalid start of a value (line 3, byte 17)" },
        { "fifo-manifest", "model.json is empty or not a regular file" },
        { "fifo-graph", "model.onnx is empty or not a regular file" },
        { "huge-manifest", "model.json holds 67108865 bytes, more than the 67108864 a manifest may have" },
        { "nan-probe", "model.json is not a valid manifest: a value is not a number (at $.probe.logits[0]," },
        { "huge-probe", "model.json is not a valid manifest: a number beyond a double's range (at $.probe.similarities[1]," },
        { "nul-graph-name", "onnx.file holds a NUL character: it must name a file in the bundle folder" },
        { "linked-graph", "model.onnx is a link to no file" },
    };

    /// <summary>A named pipe in place of a bundle file: reading it would wait for a writer that never comes.</summary>
    private static void MakeFifo(string path)
    {
        File.Delete(path);
        using var mkfifo = System.Diagnostics.Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
    }

    private string RootWithBrokenBundles() => bundles.NewRoot(
        (bundles.SmokeBundle, "good", null),
        // One flipped byte in the graph: the manifest's sha256 no longer matches.
        (bundles.SmokeBundle, "bad-sha", dir => File.WriteAllBytes(Path.Combine(dir, "model.onnx"),
            Replace(File.ReadAllBytes(Path.Combine(dir, "model.onnx")), "logits", "logitz"))),
        // Output 'similarities' renamed inside the graph (sha256 updated, so only the names check can fail).
        (bundles.SmokeBundle, "bad-outputs", dir => TrainerBundles.RewriteGraph(dir, bytes => Replace(bytes, "similarities", "similaritiez"))),
        // The manifest's probe no longer describes what the graph computes.
        (bundles.SmokeBundle, "bad-probe", dir => TrainerBundles.EditManifest(dir, manifest =>
        {
            var logits = manifest["probe"]!["logits"]!.AsArray();
            logits[0] = logits[0]!.GetValue<double>() + 0.5;
        })),
        // The manifest's last layer differs from the graph's: logits != W x similarities.
        (bundles.SmokeBundle, "bad-invariant", dir => TrainerBundles.EditManifest(dir, manifest =>
        {
            var row = manifest["lastLayer"]!["weights"]!.AsArray()[0]!.AsArray();
            row[0] = row[0]!.GetValue<double>() + 0.25;
        })),
        // A real bundle copied into a folder named as another version: its model.json still says its own.
        (bundles.SmokeBundle, "bad-version", dir => Directory.Move(dir, Path.Combine(Path.GetDirectoryName(dir)!, "20000101T000000Z"))),
        // A real bundle in the folder of another model: its model.json names the model 'good'.
        (bundles.SmokeBundle, "bad-name", dir => TrainerBundles.EditManifest(dir, manifest => manifest["name"] = "good")),
        // A graph exported with a batch of 1: the batcher runs many images at once.
        (bundles.SmokeBundle, "fixed-batch", dir => TrainerBundles.FixBatchSize(dir, 1)),
        // A graph that says N but computes on its first image only: the probe passes, a batch of two does not.
        (bundles.SmokeBundle, "one-row-inside", dir => TrainerBundles.KeepFirstRowsOnly(dir, 1)),
        // Nulls where the manifest needs a value: refused when read (they once escaped as null references that stopped
        // every scan, or loaded and made /models answer 500).
        (bundles.SmokeBundle, "null-input", dir => TrainerBundles.EditManifest(dir, manifest => manifest["input"] = null)),
        (bundles.SmokeBundle, "null-class", dir => TrainerBundles.EditManifest(dir, manifest => manifest["classes"]!.AsArray()[0] = null)),
        // The smoke model has 4 classes: index 4 is one past the last.
        (bundles.SmokeBundle, "class-index-past-the-last", dir => TrainerBundles.EditManifest(dir, manifest => manifest["prototypes"]![0]!["classIndex"] = 4)),
        (bundles.SmokeBundle, "null-example", dir => TrainerBundles.EditManifest(dir, manifest => manifest["examples"] = new JsonArray((JsonNode?)null))),
        // A required member missing altogether: the refusal names it.
        (bundles.SmokeBundle, "no-classes", dir => TrainerBundles.EditManifest(dir, manifest => manifest.AsObject().Remove("classes"))),
        // A field of the wrong JSON type: the refusal says what JSON it wanted, and where (not which .NET type).
        (bundles.SmokeBundle, "text-class-index", dir => TrainerBundles.EditManifest(dir, manifest => manifest["prototypes"]!.AsArray()[0]!["classIndex"] = "one")),
        (bundles.SmokeBundle, "object-weights", dir => TrainerBundles.EditManifest(dir, manifest => manifest["lastLayer"]!["weights"] = new JsonObject())),
        (bundles.SmokeBundle, "array-input", dir => TrainerBundles.EditManifest(dir, manifest => manifest["input"] = new JsonArray())),
        // A box is made through its constructor, whose parameter System.Text.Json reports as the box itself.
        (bundles.SmokeBundle, "text-box-height", dir => TrainerBundles.EditManifest(dir, manifest => manifest["prototypes"]!.AsArray()[0]!["source"]!["box"]!["height"] = "tall")),
        // Not JSON: the refusal says where, counting lines and bytes from 1 as an editor does.
        (bundles.SmokeBundle, "broken-json", dir => File.WriteAllText(Path.Combine(dir, "model.json"), "{\n  \"format\": \"protopnet-bundle\",\n  \"classes\": [1,,2]\n}\n")),
        // Files that would block or exhaust the scan: a FIFO in place of the manifest or the graph (the scan waited on it
        // for good), a manifest past 64 MiB (a 1 GB one ran the service out of memory at every rescan). The huge one
        // also holds a link to '/': the scan's look at its files does not walk the file system through it.
        (bundles.SmokeBundle, "fifo-manifest", dir => MakeFifo(Path.Combine(dir, "model.json"))),
        (bundles.SmokeBundle, "fifo-graph", dir => MakeFifo(Path.Combine(dir, "model.onnx"))),
        (bundles.SmokeBundle, "huge-manifest", dir =>
        {
            var manifest = Path.Combine(dir, "model.json");
            var text = File.ReadAllText(manifest);
            File.WriteAllText(manifest, text + new string(' ', (64 << 20) + 1 - Encoding.UTF8.GetByteCount(text)));
            Directory.CreateSymbolicLink(Path.Combine(dir, "root-link"), "/");
        }),
        // A probe value that is not a number compared as "no mismatch" with anything: "NaN" in a string, and 1e400, which
        // a double holds as infinity.
        (bundles.SmokeBundle, "nan-probe", dir => TrainerBundles.EditManifest(dir, manifest => manifest["probe"]!["logits"]!.AsArray()[0] = "NaN")),
        (bundles.SmokeBundle, "huge-probe", dir => TrainerBundles.EditManifest(dir, manifest => manifest["probe"]!["similarities"]!.AsArray()[1] = TrainerBundles.RawJson, "1e400")),
        // A NUL in a file name: no file has one, and the path functions throw on it.
        (bundles.SmokeBundle, "nul-graph-name", dir => TrainerBundles.EditManifest(dir, manifest => manifest["onnx"]!["file"] = "model\0.onnx")),
        (bundles.SmokeBundle, "linked-graph", dir =>
        {
            File.Delete(Path.Combine(dir, "model.onnx"));
            File.CreateSymbolicLink(Path.Combine(dir, "model.onnx"), Path.Combine(dir, "gone.onnx"));
        }));

    /// <summary>A model folder no request could name (a space; once, a trailing newline that a training job let through) is refused.</summary>
    [Fact]
    public async Task AModelFolderNamedSoThatNoRequestCanAddressItIsRefused()
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "good", null), (bundles.SmokeBundle, "my model", null),
            (bundles.SmokeBundle, "line\nbreak", null)));
        var models = await Http.JsonAsync(await factory.CreateClient().GetAsync("/models"));
        Assert.Equal(["good"], models.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("name").GetString()!).ToArray());
        var reasons = models.GetProperty("refused").EnumerateArray().Select(r => r.GetProperty("reason").GetString()!).ToArray();
        Assert.Equal(2, reasons.Length);
        Assert.Contains(reasons, r => r.Contains("its folder name 'my model' cannot be used in a request"));
        Assert.Contains(reasons, r => r.Contains("its folder name 'line\nbreak' cannot be used in a request"));
        Assert.Single(factory.Logs.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("'my model' cannot be used"));
        // The name's line break is escaped in the log: its refusal stays one line.
        var line = Assert.Single(factory.Logs.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("break' cannot be used"));
        Assert.DoesNotContain('\n', line.Message);
    }

    [Fact]
    public async Task BrokenBundlesAreRefusedAndTheGoodOneKeepsServing()
    {
        await using var factory = ServiceFactory.ForRoot(RootWithBrokenBundles(), ("Models:DefaultModel", "good"), ("Security:AdminApiKey", "admin"));
        var client = factory.CreateClient();

        var models = await Http.JsonAsync(await client.GetAsync("/models"));
        Assert.Equal(["good"], models.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("name").GetString()!).ToArray());
        var refused = models.GetProperty("refused").EnumerateArray()
            .ToDictionary(r => Path.GetFileName(Path.GetDirectoryName(r.GetProperty("directory").GetString()!))!, r => r.GetProperty("reason").GetString()!);
        foreach (var (name, reason) in Cases.Select(c => ((string)c[0], (string)c[1])))
        {
            Assert.Contains(reason, refused[name]);
            // One error line per refused bundle, naming the folder and the reason.
            var lines = factory.Logs.Entries.Where(e => e.Level == LogLevel.Error && e.Message.Contains($"{Path.DirectorySeparatorChar}{name}{Path.DirectorySeparatorChar}")).ToArray();
            Assert.Single(lines);
            Assert.Contains(reason, lines[0].Message);
            Assert.DoesNotContain('\n', lines[0].Message);
        }

        var ready = await Http.JsonAsync(await client.GetAsync("/health/ready"));
        Assert.Equal("ready", ready.GetProperty("status").GetString());
        var answer = await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
        Assert.Equal("good", answer.GetProperty("model").GetProperty("name").GetString());
        foreach (var name in refused.Keys)
        {
            await Http.ProblemAsync(await client.PostAsync($"/classify?model={name}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))),
                HttpStatusCode.NotFound, "model-not-found");
        }
        // An operator who reloads a model none of whose versions loaded is told why.
        using var reload = new HttpRequestMessage(HttpMethod.Post, "/models/bad-sha/reload");
        reload.Headers.Add("X-Api-Key", "admin");
        var notLoaded = await Http.ProblemAsync(await client.SendAsync(reload), HttpStatusCode.NotFound, "model-not-found");
        Assert.Contains("every version of it was refused", notLoaded.GetProperty("detail").GetString());
        Assert.Contains("sha256 mismatch", notLoaded.GetProperty("detail").GetString());
        // A reason that is a sentence of its own keeps its full stop out of the parentheses: ")." ends the detail, not ".).".
        var sentence = refused["no-classes"];
        Assert.EndsWith(".", sentence);
        using var reloadSentence = new HttpRequestMessage(HttpMethod.Post, "/models/no-classes/reload");
        reloadSentence.Headers.Add("X-Api-Key", "admin");
        var detail = (await Http.ProblemAsync(await client.SendAsync(reloadSentence), HttpStatusCode.NotFound, "model-not-found")).GetProperty("detail").GetString();
        Assert.EndsWith($": {sentence.TrimEnd('.')}).", detail);
    }

    [Fact]
    public async Task HighestVersionIsServedUnlessPinned()
    {
        var version = Path.GetFileName(bundles.SmokeBundle);
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", null));
        var newer = Path.Combine(root, "smoke", "29991231T000000Z");
        CopyDirectory(Path.Combine(root, "smoke", version), newer);
        TrainerBundles.EditManifest(newer, m => m["version"] = "29991231T000000Z");
        Directory.CreateDirectory(Path.Combine(root, "smoke", ".staging-30000101T000000Z"));

        await using (var factory = ServiceFactory.ForRoot(root))
        {
            var model = await Http.JsonAsync(await factory.CreateClient().GetAsync("/models/smoke"));
            Assert.Equal("29991231T000000Z", model.GetProperty("defaultVersion").GetString());
            Assert.Equal(2, model.GetProperty("versions").GetArrayLength());
            var answer = await Http.JsonAsync(await factory.CreateClient().PostAsync($"/classify?model=smoke@{version}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
            Assert.Equal(version, answer.GetProperty("model").GetProperty("version").GetString());
            Assert.False(await IsDefaultVersionAsync(factory, version));
            Assert.True(await IsDefaultVersionAsync(factory, "29991231T000000Z"));
        }
        await using (var pinned = ServiceFactory.ForRoot(root, ("Models:Pinned:smoke", version)))
        {
            var answer = await Http.JsonAsync(await pinned.CreateClient().PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
            Assert.Equal(version, answer.GetProperty("model").GetProperty("version").GetString());
        }
        // A pinned version is loaded even where Models:LoadedVersions leaves it out: the newest one, and the pin.
        await using (var pinnedOlder = ServiceFactory.ForRoot(root, ("Models:Pinned:smoke", version), ("Models:LoadedVersions", "1")))
        {
            var answer = await Http.JsonAsync(await pinnedOlder.CreateClient().PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
            Assert.Equal(version, answer.GetProperty("model").GetProperty("version").GetString());
            var model = await Http.JsonAsync(await pinnedOlder.CreateClient().GetAsync("/models/smoke"));
            Assert.Equal(version, model.GetProperty("defaultVersion").GetString());
            Assert.Equal(["29991231T000000Z", version], model.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
            Assert.True(await IsDefaultVersionAsync(pinnedOlder, version));
            Assert.False(await IsDefaultVersionAsync(pinnedOlder, "29991231T000000Z"));
        }
    }

    private static async Task<bool> IsDefaultVersionAsync(ServiceFactory factory, string version) =>
        (await Http.JsonAsync(await factory.CreateClient().GetAsync($"/models/smoke/versions/{version}"))).GetProperty("isDefaultVersion").GetBoolean();

    [Fact]
    public async Task BundleInAFolderNamedAsAnotherVersionIsRefusedAndTheServedOneStays()
    {
        const string adminKey = "test-admin-key";
        const string wrongName = "29991231T000000Z";
        var version = Path.GetFileName(bundles.SmokeBundle);
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", null));
        await using var factory = ServiceFactory.ForRoot(root, ("Security:AdminApiKey", adminKey));
        var client = factory.CreateClient();
        Assert.Equal(version, (await Http.JsonAsync(await client.GetAsync("/models/smoke"))).GetProperty("defaultVersion").GetString());

        // The same trainer bundle copied under a newer version's name (its model.json says the old version).
        CopyDirectory(Path.Combine(root, "smoke", version), Path.Combine(root, "smoke", wrongName));
        using var reload = new HttpRequestMessage(HttpMethod.Post, "/models/smoke/reload");
        reload.Headers.Add("X-Api-Key", adminKey);
        var body = await Http.JsonAsync(await client.SendAsync(reload));

        Assert.Equal(version, body.GetProperty("servedVersion").GetString());
        Assert.Equal(1, body.GetProperty("versions").GetArrayLength());
        var refused = Assert.Single(body.GetProperty("refused").EnumerateArray());
        Assert.Contains(wrongName, refused.GetProperty("directory").GetString());
        var line = Assert.Single(factory.Logs.Entries, e => e.Level == LogLevel.Error && e.Message.Contains(wrongName));
        Assert.Contains($"model.json says version '{version}' but its folder is named '{wrongName}'", line.Message);
        Assert.DoesNotContain('\n', line.Message);
        var answer = await Http.JsonAsync(await client.PostAsync("/classify?model=smoke", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
        Assert.Equal(version, answer.GetProperty("model").GetProperty("version").GetString());
        await Http.ProblemAsync(await client.PostAsync($"/classify?model=smoke@{wrongName}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))),
            HttpStatusCode.NotFound, "model-not-found");

        // Asked again with nothing changed (or after the file watcher refused it first), the answer still says why.
        using var again = new HttpRequestMessage(HttpMethod.Post, "/models/smoke/reload");
        again.Headers.Add("X-Api-Key", adminKey);
        var second = await Http.JsonAsync(await client.SendAsync(again));
        var stillRefused = Assert.Single(second.GetProperty("refused").EnumerateArray());
        Assert.Contains(wrongName, stillRefused.GetProperty("directory").GetString());
        Assert.Contains("but its folder is named", stillRefused.GetProperty("reason").GetString());
        Assert.Equal(0, second.GetProperty("loaded").GetArrayLength());
    }

    private static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        foreach (var directory in Directory.GetDirectories(source)) CopyDirectory(directory, Path.Combine(target, Path.GetFileName(directory)));
    }

    /// <summary>
    /// What a refusal remembers of a folder counts its files and subfolders' files, but never goes into a linked folder:
    /// a link to '/' in a bundle made one scan walk the whole file system.
    /// </summary>
    [Fact]
    public void AFoldersRememberedStateDoesNotGoIntoLinkedFolders()
    {
        var folder = Directory.CreateTempSubdirectory("protopnet-folder-state-").FullName;
        var elsewhere = Directory.CreateTempSubdirectory("protopnet-elsewhere-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "model.json"), "abc");
            Directory.CreateDirectory(Path.Combine(folder, "prototypes"));
            File.WriteAllText(Path.Combine(folder, "prototypes", "patch.png"), "de");
            File.WriteAllText(Path.Combine(elsewhere, "big.bin"), new string('x', 1000));
            Directory.CreateSymbolicLink(Path.Combine(folder, "linked"), elsewhere);

            var state = Models.BundleScanner.FolderState.Of(folder);

            Assert.Equal((2, 5L), (state.Files, state.Bytes));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            Directory.Delete(elsewhere, recursive: true);
        }
    }
}
