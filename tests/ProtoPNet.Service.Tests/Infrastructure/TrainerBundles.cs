using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>
/// Real bundles made by the real trainer, once per test run. The RGB smoke bundle comes from PROTOPNET_TEST_MODELS
/// (scripts/test.sh trains it) or, when that is not set, from running the trainer's smoke preset here. A small grey
/// bundle (1 x 28 x 28, like the default Fashion-MNIST model) is always trained here by the smoke preset with one
/// channel (a few seconds).
/// </summary>
public sealed class TrainerBundles : IDisposable
{
    public const string EnvironmentVariable = "PROTOPNET_TEST_MODELS";
    private const string Python = "/usr/bin/python3";

    public TrainerBundles()
    {
        RepositoryRoot = FindRepositoryRoot();
        WorkDirectory = Directory.CreateTempSubdirectory("protopnet-service-tests-").FullName;
        var models = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(models))
        {
            models = Path.Combine(WorkDirectory, "trained");
            RunTrainer("train", "--preset", "smoke", "--models", models, "--name", "smoke", "--seed", "1");
        }
        SmokeBundle = FindBundle(models, "smoke");
        var gray = Path.Combine(WorkDirectory, "gray");
        RunTrainer("train", "--preset", "smoke", "--synthetic-channels", "1", "--image-size", "28", "--synthetic-classes", "3",
            "--synthetic-train-per-class", "60", "--synthetic-test-per-class", "10", "--epochs", "11", "--no-baseline",
            "--no-progress", "--models", gray, "--name", "gray", "--seed", "1");
        GrayBundle = FindBundle(gray, "gray");
        _service = new Lazy<ServiceFactory>(() =>
            ServiceFactory.ForRoot(NewRoot((SmokeBundle, "smoke", null), (GrayBundle, "gray", null)), ("Models:DefaultModel", "smoke")));
    }

    private readonly Lazy<ServiceFactory> _service;

    /// <summary>One service shared by the read-only tests: 'smoke' (default) and 'gray' loaded.</summary>
    public ServiceFactory Service => _service.Value;

    public string RepositoryRoot { get; }
    public string WorkDirectory { get; }

    /// <summary>The version folder of the RGB smoke bundle (3 x 32 x 32, 4 classes).</summary>
    public string SmokeBundle { get; }

    /// <summary>The version folder of the grey bundle (1 x 28 x 28, 3 classes).</summary>
    public string GrayBundle { get; }

    /// <summary>A fresh model root holding copies of bundles: (source version folder, model name, optional corruption).</summary>
    public string NewRoot(params (string Source, string Name, Action<string>? Corrupt)[] bundles)
    {
        var root = Path.Combine(WorkDirectory, "root-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        foreach (var (source, name, corrupt) in bundles)
        {
            var target = Path.Combine(root, name, Path.GetFileName(source));
            CopyDirectory(source, target);
            var manifestPath = Path.Combine(target, "model.json");
            var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
            manifest["name"] = name;
            File.WriteAllText(manifestPath, manifest.ToJsonString());
            corrupt?.Invoke(target);
        }
        return root;
    }

    /// <summary>Edits a bundle's model.json.</summary>
    public static void EditManifest(string bundle, Action<JsonNode> edit)
    {
        var path = Path.Combine(bundle, "model.json");
        var manifest = JsonNode.Parse(File.ReadAllText(path))!;
        edit(manifest);
        File.WriteAllText(path, manifest.ToJsonString());
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

    private void RunTrainer(params string[] arguments)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-m");
        start.ArgumentList.Add("protopnet_trainer");
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["PYTHONPATH"] = Path.Combine(RepositoryRoot, "src", "trainer");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the trainer did not finish in 5 minutes: {string.Join(' ', arguments)}");
        }
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"the trainer failed ({process.ExitCode}): {string.Join(' ', arguments)}\n{stderr.Result}\n{stdout.Result}");
        }
    }

    private static string FindBundle(string root, string name)
    {
        var family = Path.Combine(root, name);
        var version = Directory.Exists(family)
            ? Directory.GetDirectories(family).Where(d => !Path.GetFileName(d).StartsWith('.') && File.Exists(Path.Combine(d, "model.json")))
                .Order(StringComparer.Ordinal).LastOrDefault()
            : null;
        return version ?? throw new InvalidOperationException($"no '{name}' bundle under {root}");
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ProtoPNet.Service.sln"))) return directory.FullName;
        }
        throw new InvalidOperationException("ProtoPNet.Service.sln not found above the test binaries");
    }

    private static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        foreach (var directory in Directory.GetDirectories(source)) CopyDirectory(directory, Path.Combine(target, Path.GetFileName(directory)));
    }

    public void Dispose()
    {
        if (_service.IsValueCreated) _service.Value.Dispose();
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
