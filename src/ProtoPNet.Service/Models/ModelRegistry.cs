using System.Diagnostics;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Service.Models;

/// <summary>A bundle folder that failed a load check, and the one-line reason.</summary>
public sealed record RefusedBundle(string Directory, string Reason);

/// <summary>Every loaded version of one model name, and the one served by default (highest, unless pinned).</summary>
public sealed record ModelFamily(string Name, IReadOnlyList<ModelBundle> Versions, ModelBundle Served);

/// <summary>An immutable view of what is loaded; replaced as a whole so readers never see a half-loaded state.</summary>
public sealed record ModelCatalog(
    IReadOnlyDictionary<string, ModelFamily> Families, string? DefaultModel, IReadOnlyList<RefusedBundle> Refused)
{
    public static readonly ModelCatalog Empty = new(new Dictionary<string, ModelFamily>(), null, []);
}

/// <summary>The outcome of looking a model up by a request's <c>model</c> parameter.</summary>
public enum ModelLookup { Found, NoModelLoaded, UnknownName, UnknownVersion }

/// <summary>
/// Loads every bundle under the model root, refusing bad ones with one log line each, and answers which bundle
/// serves a request. The catalog is swapped atomically, which leaves room for reloading while serving.
/// </summary>
public sealed class ModelRegistry(
    IOptions<ModelsOptions> options, BundleLoader loader, SessionFactory sessionFactory, IHostEnvironment environment,
    ILogger<ModelRegistry> logger) : IDisposable
{
    private ModelCatalog _catalog = ModelCatalog.Empty;

    public ModelCatalog Catalog => Volatile.Read(ref _catalog);

    /// <summary>True once at least one bundle is loaded, verified and warmed up.</summary>
    public bool IsReady => Catalog.Families.Count > 0;

    public string Root { get; } = ModelRootLocator.Resolve(options.Value.Root, environment.ContentRootPath);

    /// <summary>The execution provider sessions run on (decided once, see <see cref="SessionFactory"/>).</summary>
    public ProviderChoice Provider => sessionFactory.Provider;

    /// <summary>Scans the model root and replaces the catalog.</summary>
    public void LoadAll()
    {
        var stopwatch = Stopwatch.StartNew();
        var provider = sessionFactory.Provider;
        if (provider.FallbackReason is not null)
        {
            logger.LogWarning("Inference:ExecutionProvider is auto: the CUDA execution provider cannot be used ({Reason}); falling back to {Provider}",
                provider.FallbackReason, provider.Provider);
        }
        logger.LogInformation("Loading model bundles from {ModelRoot} with {Provider}", Root, provider.Provider);

        var loaded = new List<ModelBundle>();
        var refused = new List<RefusedBundle>();
        foreach (var directory in FindBundleDirectories(Root))
        {
            try
            {
                var bundle = loader.Load(directory);
                loaded.Add(bundle);
                logger.LogInformation("Loaded model {Model}@{Version} ({Classes} classes, {Prototypes} prototypes, input {Channels}x{Height}x{Width}) in {LoadMs:0} ms from {Directory}",
                    bundle.Name, bundle.Version, bundle.ClassCount, bundle.PrototypeCount, bundle.Manifest.Input.Channels,
                    bundle.Manifest.Input.Height, bundle.Manifest.Input.Width, bundle.LoadMilliseconds, directory);
            }
            catch (BundleRefusedException refusal)
            {
                refused.Add(new RefusedBundle(directory, refusal.Reason));
                logger.LogError("Refused model bundle {Directory}: {Reason}", directory, refusal.Reason);
            }
        }

        var catalog = BuildCatalog(loaded, refused);
        var previous = Interlocked.Exchange(ref _catalog, catalog);
        DisposeUnused(previous, catalog);

        if (catalog.Families.Count == 0)
        {
            logger.LogWarning("No model is loaded: {ModelRoot} holds no valid bundle ({Refused} refused). The service runs but /health/ready reports not ready and /classify answers 503 until a model is present",
                Root, refused.Count);
        }
        else
        {
            logger.LogInformation("Serving {Models} (default {DefaultModel}) after {ElapsedMs:0} ms",
                string.Join(", ", catalog.Families.Values.Select(f => $"{f.Name}@{f.Served.Version}")), catalog.DefaultModel, stopwatch.Elapsed.TotalMilliseconds);
        }
    }

    /// <summary>Resolves a request's <c>model</c> parameter: empty for the default model, <c>name</c> or <c>name@version</c>.</summary>
    public ModelLookup TryResolve(string? model, out ModelBundle? bundle)
    {
        bundle = null;
        var catalog = Catalog;
        if (catalog.Families.Count == 0) return ModelLookup.NoModelLoaded;
        string name;
        string? version = null;
        if (string.IsNullOrWhiteSpace(model))
        {
            name = catalog.DefaultModel!;
        }
        else
        {
            var at = model.IndexOf('@');
            name = at < 0 ? model.Trim() : model[..at].Trim();
            if (at >= 0) version = model[(at + 1)..].Trim();
        }
        if (!catalog.Families.TryGetValue(name, out var family)) return ModelLookup.UnknownName;
        if (string.IsNullOrEmpty(version))
        {
            bundle = family.Served;
            return ModelLookup.Found;
        }
        bundle = family.Versions.FirstOrDefault(v => v.Version == version);
        return bundle is null ? ModelLookup.UnknownVersion : ModelLookup.Found;
    }

    public ModelFamily? FindFamily(string name) => Catalog.Families.GetValueOrDefault(name);

    public ModelBundle? FindVersion(string name, string version) =>
        FindFamily(name)?.Versions.FirstOrDefault(v => v.Version == version);

    private ModelCatalog BuildCatalog(List<ModelBundle> loaded, List<RefusedBundle> refused)
    {
        var families = new SortedDictionary<string, ModelFamily>(StringComparer.Ordinal);
        foreach (var group in loaded.GroupBy(b => b.Name, StringComparer.Ordinal))
        {
            var versions = group.OrderByDescending(b => b.Version, StringComparer.Ordinal).ToArray();
            var served = versions[0];
            if (options.Value.Pinned.TryGetValue(group.Key, out var pinned) && !string.IsNullOrWhiteSpace(pinned))
            {
                var match = versions.FirstOrDefault(v => v.Version == pinned);
                if (match is null)
                {
                    logger.LogWarning("Models:Pinned:{Model} is {Version}, which is not loaded; serving {Served} instead", group.Key, pinned, served.Version);
                }
                else
                {
                    served = match;
                }
            }
            families[group.Key] = new ModelFamily(group.Key, versions, served);
        }

        string? defaultModel = null;
        if (families.Count > 0)
        {
            defaultModel = families.ContainsKey(options.Value.DefaultModel) ? options.Value.DefaultModel : families.Keys.First();
            if (defaultModel != options.Value.DefaultModel)
            {
                logger.LogWarning("Models:DefaultModel {Configured} is not loaded; the default model is {DefaultModel}", options.Value.DefaultModel, defaultModel);
            }
        }
        return new ModelCatalog(families, defaultModel, refused);
    }

    /// <summary>Bundle folders are <c>root/name/version/</c> with a model.json; names starting with '.' are staging folders.</summary>
    private IEnumerable<string> FindBundleDirectories(string root)
    {
        if (!Directory.Exists(root))
        {
            logger.LogWarning("The model root {ModelRoot} does not exist", root);
            yield break;
        }
        foreach (var family in Directory.EnumerateDirectories(root).Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(family).StartsWith('.')) continue;
            foreach (var version in Directory.EnumerateDirectories(family).Order(StringComparer.Ordinal))
            {
                if (Path.GetFileName(version).StartsWith('.')) continue;
                if (!File.Exists(Path.Combine(version, BundleLoader.ManifestFileName))) continue;
                yield return version;
            }
        }
    }

    private static void DisposeUnused(ModelCatalog previous, ModelCatalog current)
    {
        var kept = current.Families.Values.SelectMany(f => f.Versions).ToHashSet();
        foreach (var bundle in previous.Families.Values.SelectMany(f => f.Versions))
        {
            if (!kept.Contains(bundle)) bundle.Dispose();
        }
    }

    public void Dispose()
    {
        var catalog = Interlocked.Exchange(ref _catalog, ModelCatalog.Empty);
        foreach (var bundle in catalog.Families.Values.SelectMany(f => f.Versions)) bundle.Dispose();
    }
}
