using System.Security.Cryptography;
using System.Text.Json.Nodes;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>
/// Real bundles made by the real trainer, once per test run. The RGB smoke bundle comes from PROTOPNET_TEST_MODELS
/// (scripts/test.sh trains it) or, when that is not set, from running the trainer's smoke preset here. A small grey
/// bundle (1 x 28 x 28, like the default Fashion-MNIST model) is always trained here by the smoke preset with one
/// channel (a few seconds).
/// </summary>
public sealed class TrainerBundles : IDisposable
{
    public const string EnvironmentVariable = Trainer.ModelsEnvironmentVariable;

    public TrainerBundles()
    {
        RepositoryRoot = Trainer.RepositoryRoot;
        WorkDirectory = Directory.CreateTempSubdirectory("protopnet-service-tests-").FullName;
        SmokeBundle = Trainer.FindBundle(Trainer.SmokeModels(WorkDirectory), "smoke");
        var gray = Path.Combine(WorkDirectory, "gray");
        Trainer.Run("train", "--preset", "smoke", "--synthetic-channels", "1", "--image-size", "28", "--synthetic-classes", "3",
            // 100 per class with the last 40 per class held out for the unfamiliarity calibration: it trains on 60 per class.
            "--synthetic-train-per-class", "100", "--calibration-holdout", "120", "--synthetic-test-per-class", "10", "--epochs", "11", "--no-baseline",
            "--no-progress", "--models", gray, "--name", "gray", "--seed", "1");
        GrayBundle = Trainer.FindBundle(gray, "gray");
        _service = new Lazy<ServiceFactory>(() =>
            ServiceFactory.ForRoot(NewRoot((SmokeBundle, "smoke", null), (GrayBundle, "gray", null)), ("Models:DefaultModel", "smoke")));
        _wideBundle = new Lazy<string>(() =>
        {
            var wide = Path.Combine(WorkDirectory, "wide");
            Trainer.Run("export", "--untrained", "--backbone", "small-cnn", "--num-classes", "4", "--prototypes-per-class", "2",
                "--image-size", $"{WideInput.Width}x{WideInput.Height}", "--models", wide, "--name", "wide", "--no-progress");
            return Trainer.FindBundle(wide, "wide");
        });
        _wideService = new Lazy<ServiceFactory>(() => ServiceFactory.ForRoot(NewRoot((WideBundle, "wide", null))));
    }

    private readonly Lazy<ServiceFactory> _service;
    private readonly Lazy<string> _wideBundle;
    private readonly Lazy<ServiceFactory> _wideService;

    /// <summary>The wide bundle's input: wider than tall, so a height and a width taken for each other show.</summary>
    public static readonly (int Width, int Height) WideInput = (40, 24);

    /// <summary>
    /// A bundle whose input is not square (3 x 24 x 40; the smoke bundle's 4 classes, 2 prototypes each): an untrained small CNN from the
    /// trainer's <c>export --untrained --image-size 40x24</c>, made on first use (a few seconds).
    /// </summary>
    public string WideBundle => _wideBundle.Value;

    /// <summary>A service of its own serving only the wide bundle, as 'wide'.</summary>
    public ServiceFactory WideService => _wideService.Value;

    /// <summary>One service shared by the read-only tests: 'smoke' (default) and 'gray' loaded.</summary>
    public ServiceFactory Service => _service.Value;

    public string RepositoryRoot { get; }
    public string WorkDirectory { get; }

    /// <summary>The version folder of the RGB smoke bundle (3 x 32 x 32, 4 classes).</summary>
    public string SmokeBundle { get; }

    /// <summary>The version folder of the grey bundle (1 x 28 x 28, 3 classes).</summary>
    public string GrayBundle { get; }

    /// <summary>A service of its own serving only the smoke bundle, with these settings.</summary>
    public ServiceFactory SmokeService(params (string Key, string? Value)[] settings) =>
        ServiceFactory.ForRoot(NewRoot((SmokeBundle, "smoke", null)), settings);

    /// <summary>
    /// The service as a user starts it (<see cref="ServiceProcess"/>) serving only the smoke bundle, one intra-op thread,
    /// no file watching, plus these settings (environment variables, Section__Key); whether it became ready.
    /// </summary>
    public Task<(ServiceProcess Service, bool Ready)> StartSmokeProcessAsync(params (string Key, string Value)[] settings)
    {
        var environment = new Dictionary<string, string>
        {
            ["Models__Root"] = NewRoot((SmokeBundle, "smoke", null)),
            ["Models__Watch"] = "false",
            ["Inference__IntraOpThreads"] = "1",
        };
        foreach (var (key, value) in settings) environment[key] = value;
        return ServiceProcess.StartAsync(environment);
    }

    /// <summary><see cref="StartSmokeProcessAsync"/> for a test that needs it ready: stopped again, and the test failed with its output, when it is not.</summary>
    public async Task<ServiceProcess> StartReadySmokeProcessAsync(params (string Key, string Value)[] settings)
    {
        var (service, ready) = await StartSmokeProcessAsync(settings);
        if (!ready)
        {
            var output = string.Join('\n', service.Output);
            await service.DisposeAsync();
            Assert.Fail("the service did not become ready:\n" + output);
        }
        return service;
    }

    /// <summary>A fresh model root holding copies of bundles: (source version folder, model name, optional corruption).</summary>
    public string NewRoot(params (string Source, string Name, Action<string>? Corrupt)[] bundles)
    {
        var root = Path.Combine(WorkDirectory, "root-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        foreach (var (source, name, corrupt) in bundles)
        {
            var target = Path.Combine(root, name, Path.GetFileName(source));
            Trainer.CopyDirectory(source, target);
            var manifestPath = Path.Combine(target, "model.json");
            var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
            manifest["name"] = name;
            File.WriteAllText(manifestPath, manifest.ToJsonString());
            corrupt?.Invoke(target);
        }
        return root;
    }

    /// <summary>Edits a bundle's model.json.</summary>
    public static void EditManifest(string bundle, Action<JsonNode> edit) =>
        EditManifestWithRawJson(bundle, manifest =>
        {
            edit(manifest);
            return [];
        });

    /// <summary>What <see cref="EditManifest(string, Action{JsonNode}, string)"/> writes its raw JSON in place of.</summary>
    public const string RawJson = "raw-json";

    /// <summary>
    /// Edits the manifest, writing <paramref name="rawJson"/> as it is where <paramref name="edit"/> puts
    /// <see cref="RawJson"/>: a JSON number no double holds (1e400) cannot be written through JsonNode.
    /// </summary>
    public static void EditManifest(string bundle, Action<JsonNode> edit, string rawJson) =>
        EditManifestWithRawJson(bundle, manifest =>
        {
            edit(manifest);
            return [(RawJson, rawJson)];
        });

    /// <summary>
    /// Edits the manifest; <paramref name="edit"/> answers the raw JSON to write as it is in place of each string it set
    /// to a mark (a mark of its own per value).
    /// </summary>
    public static void EditManifestWithRawJson(string bundle, Func<JsonNode, IEnumerable<(string Mark, string Json)>> edit)
    {
        var path = Path.Combine(bundle, "model.json");
        var manifest = JsonNode.Parse(File.ReadAllText(path))!;
        var raw = edit(manifest).ToList();
        var text = new System.Text.StringBuilder(manifest.ToJsonString());
        foreach (var (mark, json) in raw) text.Replace($"\"{mark}\"", json);
        File.WriteAllText(path, text.ToString());
    }

    /// <summary>
    /// Feeds the graph's input through an ONNX Slice that keeps only its first <paramref name="rows"/> images (sha256
    /// updated): a graph whose batch is, in effect, fixed inside while its input says N.
    /// </summary>
    public static void KeepFirstRowsOnly(string bundle, int rows) => EditGraphInPython(bundle, """
        import sys
        import numpy as np
        import onnx
        from onnx import helper, numpy_helper
        path, rows = sys.argv[1], int(sys.argv[2])
        model = onnx.load(path)
        graph = model.graph
        name = graph.input[0].name
        for node in graph.node:
            node.input[:] = [name + "_rows" if x == name else x for x in node.input]
        graph.initializer.extend([numpy_helper.from_array(np.array([v], np.int64), n)
                                  for n, v in (("rows_start", 0), ("rows_end", rows), ("rows_axis", 0))])
        graph.node.insert(0, helper.make_node("Slice", [name, "rows_start", "rows_end", "rows_axis"], [name + "_rows"]))
        onnx.save(model, path)
        """, rows);

    /// <summary>Declares the graph's input and outputs with a fixed batch size of <paramref name="batch"/> instead of N (sha256 updated).</summary>
    public static void FixBatchSize(string bundle, int batch) => EditGraphInPython(bundle, """
        import sys
        import onnx
        path, batch = sys.argv[1], int(sys.argv[2])
        model = onnx.load(path)
        for value in list(model.graph.input) + list(model.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = batch
        onnx.save(model, path)
        """, batch);

    /// <summary>Edits model.onnx in place with a Python program of the onnx package (argv: the file, then <paramref name="argument"/>) and records its new sha256.</summary>
    private static void EditGraphInPython(string bundle, string program, int argument)
    {
        ProtoPNet.Tests.Shared.Pillow.RunPython(program, Path.Combine(bundle, "model.onnx"), argument.ToString(System.Globalization.CultureInfo.InvariantCulture));
        RewriteGraph(bundle, bytes => bytes);
    }

    /// <summary>Rewrites model.onnx and records its new sha256, so that only the intended check fails.</summary>
    public static void RewriteGraph(string bundle, Func<byte[], byte[]> rewrite)
    {
        var path = Path.Combine(bundle, "model.onnx");
        var bytes = rewrite(File.ReadAllBytes(path));
        File.WriteAllBytes(path, bytes);
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        EditManifest(bundle, manifest => manifest["onnx"]!["sha256"] = sha);
    }

    public void Dispose()
    {
        if (_service.IsValueCreated) _service.Value.Dispose();
        if (_wideService.IsValueCreated) _wideService.Value.Dispose();
        try
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A test host still holding a file must not fail the run; the folder is under the temp directory.
        }
    }
}

[CollectionDefinition(Name)]
public sealed class BundlesCollection : ICollectionFixture<TrainerBundles>
{
    public const string Name = "trainer bundles";
}
