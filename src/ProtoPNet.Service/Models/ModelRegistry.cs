using System.Diagnostics;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Serving;

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

    /// <summary>The served form (batcher and leases) of every loaded bundle.</summary>
    public IReadOnlyDictionary<ModelBundle, ServedModel> Served { get; init; } = new Dictionary<ModelBundle, ServedModel>();
}

/// <summary>The outcome of looking a model up by a request's <c>model</c> parameter.</summary>
public enum ModelLookup { Found, NoModelLoaded, UnknownName, UnknownVersion }

/// <summary>What a rescan changed.</summary>
public sealed record RescanResult(IReadOnlyList<string> Loaded, IReadOnlyList<string> Removed, IReadOnlyList<RefusedBundle> Refused,
    IReadOnlyList<string> Serving);

/// <summary>
/// Loads every bundle under the model root, refusing bad ones with one log line each, and answers which bundle
/// serves a request. <see cref="Rescan"/> (hot reload) loads new version folders, verifies and warms them up before
/// swapping the catalog atomically, and retires removed ones; a retired version finishes its running requests first
/// (<see cref="ModelLease"/>), then its session is disposed.
/// </summary>
public sealed class ModelRegistry(
    IOptions<ModelsOptions> options, BundleLoader loader, SessionFactory sessionFactory, IHostEnvironment environment,
    IOptions<BatchingOptions> batching, ServiceMetrics metrics, ILogger<ModelRegistry> logger) : IDisposable
{
    private readonly Lock _scanLock = new();
    private readonly Dictionary<string, (DateTime ManifestWritten, RefusedBundle Refusal)> _refusedCache = new(StringComparer.Ordinal);
    private ModelCatalog _catalog = ModelCatalog.Empty;
    private bool _disposed;

    public ModelCatalog Catalog => Volatile.Read(ref _catalog);

    /// <summary>True once at least one bundle is loaded, verified and warmed up.</summary>
    public bool IsReady => Catalog.Families.Count > 0;

    public string Root { get; } = ModelRootLocator.Resolve(options.Value.Root, environment.ContentRootPath);

    /// <summary>The execution provider sessions run on (decided once, see <see cref="SessionFactory"/>).</summary>
    public ProviderChoice Provider => sessionFactory.Provider;

    /// <summary>Scans the model root and loads what it holds (at start).</summary>
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
        RescanCore(stopwatch);
    }

    /// <summary>
    /// Compares the model root with what is loaded: loads, verifies and warms up new version folders, drops removed ones,
    /// and swaps the catalog once. Folders refused before are retried only when their model.json changes, so a periodic
    /// rescan does not repeat the refusal's log line.
    /// </summary>
    public RescanResult Rescan() => RescanCore(Stopwatch.StartNew());

    private RescanResult RescanCore(Stopwatch stopwatch)
    {
        lock (_scanLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var current = Catalog;
            var loadedByDirectory = current.Served.Keys.ToDictionary(b => b.Directory, StringComparer.Ordinal);
            var directories = FindBundleDirectories(Root).ToArray();

            var kept = new List<ModelBundle>();
            var added = new List<ModelBundle>();
            var refused = new List<RefusedBundle>();
            var newlyRefused = new List<RefusedBundle>();
            var limit = options.Value.LoadedVersions;
            // Per model name, the highest versions first, until LoadedVersions of them load (a refused one does not count);
            // the pinned version always loads.
            foreach (var family in directories.GroupBy(d => Path.GetFileName(Path.GetDirectoryName(d))!, StringComparer.Ordinal))
            {
                options.Value.Pinned.TryGetValue(family.Key, out var pinned);
                var loadedInFamily = 0;
                foreach (var directory in family.OrderByDescending(d => Path.GetFileName(d), StringComparer.Ordinal))
                {
                    var isPinned = !string.IsNullOrWhiteSpace(pinned) && Path.GetFileName(directory) == pinned;
                    if (limit > 0 && loadedInFamily >= limit && !isPinned) continue;
                    if (loadedByDirectory.TryGetValue(directory, out var existing))
                    {
                        kept.Add(existing);
                        loadedInFamily++;
                        continue;
                    }
                    var manifestWritten = File.GetLastWriteTimeUtc(Path.Combine(directory, BundleLoader.ManifestFileName));
                    if (_refusedCache.TryGetValue(directory, out var cached) && cached.ManifestWritten == manifestWritten)
                    {
                        refused.Add(cached.Refusal);
                        continue;
                    }
                    try
                    {
                        var bundle = loader.Load(directory);
                        added.Add(bundle);
                        loadedInFamily++;
                        _refusedCache.Remove(directory);
                        metrics.ModelLoads.Add(1, ServiceMetrics.Tag("model", bundle.Name), ServiceMetrics.Tag("result", "loaded"));
                        logger.LogInformation("Loaded model {Model}@{Version} ({Classes} classes, {Prototypes} prototypes, input {Channels}x{Height}x{Width}) in {LoadMs:0} ms from {Directory}",
                            bundle.Name, bundle.Version, bundle.ClassCount, bundle.PrototypeCount, bundle.Manifest.Input.Channels,
                            bundle.Manifest.Input.Height, bundle.Manifest.Input.Width, bundle.LoadMilliseconds, directory);
                    }
                    catch (BundleRefusedException refusal)
                    {
                        var refusedBundle = new RefusedBundle(directory, refusal.Reason);
                        refused.Add(refusedBundle);
                        newlyRefused.Add(refusedBundle);
                        _refusedCache[directory] = (manifestWritten, refusedBundle);
                        metrics.ModelLoads.Add(1, ServiceMetrics.Tag("model", family.Key), ServiceMetrics.Tag("result", "refused"));
                        logger.LogError("Refused model bundle {Directory}: {Reason}", directory, refusal.Reason);
                    }
                }
            }
            refused.Sort((a, b) => StringComparer.Ordinal.Compare(a.Directory, b.Directory));
            var stillLoaded = kept.ToHashSet();
            var removed = current.Served.Keys.Where(b => !stillLoaded.Contains(b)).ToArray();
            foreach (var gone in _refusedCache.Keys.Where(d => !directories.Contains(d, StringComparer.Ordinal)).ToArray()) _refusedCache.Remove(gone);

            var first = ReferenceEquals(current, ModelCatalog.Empty);
            var changed = first || added.Count > 0 || removed.Length > 0 || !refused.SequenceEqual(current.Refused);
            if (!changed) return new RescanResult([], [], [], Serving(current));

            var loaded = kept.Concat(added).ToList();
            var served = new Dictionary<ModelBundle, ServedModel>();
            foreach (var bundle in kept) served[bundle] = current.Served[bundle];
            foreach (var bundle in added) served[bundle] = new ServedModel(bundle, batching.Value, metrics);
            var catalog = BuildCatalog(loaded, refused) with { Served = served };
            Volatile.Write(ref _catalog, catalog);
            foreach (var bundle in removed)
            {
                logger.LogInformation(Directory.Exists(bundle.Directory)
                        ? "Model {Model}@{Version} is unloaded once its running requests finish: newer versions replace it (Models:LoadedVersions) in {Directory}"
                        : "Model {Model}@{Version} is unloaded once its running requests finish: its folder {Directory} is gone",
                    bundle.Name, bundle.Version, bundle.Directory);
                current.Served[bundle].Retire();
            }

            if (catalog.Families.Count == 0)
            {
                logger.LogWarning("No model is loaded: {ModelRoot} holds no valid bundle ({Refused} refused). The service runs but /health/ready reports not ready and /classify answers 503 until a model is present",
                    Root, refused.Count);
            }
            else if (first || added.Count > 0 || removed.Length > 0)
            {
                logger.LogInformation("Serving {Models} (default {DefaultModel}) after {ElapsedMs:0} ms",
                    string.Join(", ", Serving(catalog)), catalog.DefaultModel, stopwatch.Elapsed.TotalMilliseconds);
            }
            return new RescanResult(added.Select(b => $"{b.Name}@{b.Version}").ToArray(), removed.Select(b => $"{b.Name}@{b.Version}").ToArray(),
                newlyRefused, Serving(catalog));
        }
    }

    private static string[] Serving(ModelCatalog catalog) => catalog.Families.Values.Select(f => $"{f.Name}@{f.Served.Version}").ToArray();

    /// <summary>
    /// Resolves a request's <c>model</c> parameter and leases the version, so a reload cannot dispose it while the
    /// request uses it. Dispose the lease when the request is done.
    /// </summary>
    public ModelLookup TryAcquire(string? model, out ModelLease? lease)
    {
        while (true)
        {
            lease = null;
            var catalog = Catalog;
            var lookup = TryResolve(catalog, model, out var bundle);
            if (lookup != ModelLookup.Found) return lookup;
            lease = catalog.Served[bundle!].TryAcquire();
            if (lease is not null) return ModelLookup.Found;
            // Retired between reading the catalog and leasing: the catalog has been swapped already, so read it again.
        }
    }

    /// <summary>Resolves a request's <c>model</c> parameter: empty for the default model, <c>name</c> or <c>name@version</c>.</summary>
    public ModelLookup TryResolve(string? model, out ModelBundle? bundle) => TryResolve(Catalog, model, out bundle);

    private static ModelLookup TryResolve(ModelCatalog catalog, string? model, out ModelBundle? bundle)
    {
        bundle = null;
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

    public void Dispose()
    {
        lock (_scanLock)
        {
            _disposed = true;
            var catalog = Interlocked.Exchange(ref _catalog, ModelCatalog.Empty);
            foreach (var served in catalog.Served.Values) served.Retire();
        }
    }
}
