using System.Diagnostics;

namespace ProtoPNet.Tests.Shared;

/// <summary>
/// The real trainer, run by the .NET tests to make real bundles, and the model root with its RGB smoke bundle:
/// <c>PROTOPNET_TEST_MODELS</c> when set (scripts/test.sh trains it once per run), else trained here with the smoke preset.
/// One source file linked into each test project that needs bundles.
/// </summary>
public static class Trainer
{
    public const string ModelsEnvironmentVariable = "PROTOPNET_TEST_MODELS";
    private const string Python = "/usr/bin/python3";

    /// <summary>The repository root, found upwards from the test binaries.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>
    /// A model root holding the RGB smoke bundle (3 x 32 x 32, 4 classes): <c>PROTOPNET_TEST_MODELS</c>, or, when that is not
    /// set, a root under <paramref name="workDirectory"/> into which the trainer's smoke preset is run (about a minute).
    /// </summary>
    public static string SmokeModels(string workDirectory)
    {
        var models = Environment.GetEnvironmentVariable(ModelsEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(models)) return models;
        models = Path.Combine(workDirectory, "trained");
        Run("train", "--preset", "smoke", "--models", models, "--name", "smoke", "--seed", "1");
        return models;
    }

    /// <summary>Runs <c>python3 -m protopnet_trainer</c> with the arguments; throws with its output when it fails.</summary>
    public static void Run(params string[] arguments)
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

    /// <summary>The highest published version folder of <paramref name="name"/> under <paramref name="root"/>.</summary>
    public static string FindBundle(string root, string name)
    {
        var family = Path.Combine(root, name);
        var version = Directory.Exists(family)
            ? Directory.GetDirectories(family).Where(d => !Path.GetFileName(d).StartsWith('.') && File.Exists(Path.Combine(d, "model.json")))
                .Order(StringComparer.Ordinal).LastOrDefault()
            : null;
        return version ?? throw new InvalidOperationException($"no '{name}' bundle under {root}");
    }

    public static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        foreach (var directory in Directory.GetDirectories(source)) CopyDirectory(directory, Path.Combine(target, Path.GetFileName(directory)));
    }

    /// <summary>
    /// <paramref name="count"/> copies of a bundle as versions 20260101T000000Z, 20260102T000000Z, ... of the model
    /// folder <paramref name="modelDirectory"/> (each model.json naming its own version): a model root whose loading
    /// takes a while, each version loaded and measured.
    /// </summary>
    public static void CopyAsVersions(string bundle, string modelDirectory, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var version = $"202601{i + 1:00}T000000Z";
            var copy = Path.Combine(modelDirectory, version);
            CopyDirectory(bundle, copy);
            var manifest = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(copy, "model.json")))!;
            manifest["version"] = version;
            File.WriteAllText(Path.Combine(copy, "model.json"), manifest.ToJsonString());
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ProtoPNet.Service.sln"))) return directory.FullName;
        }
        throw new InvalidOperationException("ProtoPNet.Service.sln not found above the test binaries");
    }
}
