using System.Diagnostics;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Models;

/// <summary>
/// The models the service serves, and the leases requests hold on them. <see cref="Rescan"/> (at start and on hot
/// reload) compares the model root with what is loaded: the <see cref="BundleScanner"/> loads, verifies and warms up
/// new version folders (or refuses them), the <see cref="StrategySelector"/> chooses how each new version runs, the
/// <see cref="VersionPolicy"/> decides which versions load and serve, and the new catalog is swapped in at once; removed versions are retired and disposed once their running requests finish
/// (<see cref="ModelLease"/>).
/// </summary>
public sealed partial class ModelRegistry(
    IOptions<ModelsOptions> options, BundleScanner scanner, VersionPolicy policy, StrategySelector strategies, SessionFactory sessionFactory,
    IHostEnvironment environment, IOptions<BatchingOptions> batching, InferenceRequests inferenceRequests, ServiceMetrics metrics,
    ILogger<ModelRegistry> logger) : IDisposable
{
    /// <summary>One scan at a time; a semaphore so that an HTTP reload waits for its turn without holding a pool thread.</summary>
    private readonly SemaphoreSlim _scanGate = new(1, 1);
    private ModelCatalog _catalog = ModelCatalog.Loading;
    private bool _disposed;

    public ModelCatalog Catalog => Volatile.Read(ref _catalog);

    public string Root { get; } = ModelRootLocator.Resolve(options.Value.Root, environment.ContentRootPath);

    /// <summary>When a bundle folder that did not load while being written will have settled (Models:SettleSeconds); null when none. Cleared by the call.</summary>
    public DateTime? TakeSettleDeadline() => scanner.TakeSettleDeadline();

    /// <summary>The folders that do not load yet while their files change, neither loaded nor refused (Models:SettleSeconds), as the last scan left them.</summary>
    public IReadOnlyList<SettlingFolder> Settling => scanner.Settling;

    /// <summary>The execution provider sessions run on (decided once, see <see cref="SessionFactory"/>).</summary>
    public ProviderChoice Provider => sessionFactory.Provider;

    /// <summary>
    /// Scans the model root and loads what it holds (at start). Once <paramref name="stopping"/> is cancelled (SIGTERM
    /// while loading) no further version is loaded and the measurement of the one loading stops: the shutdown does not
    /// wait for every bundle to load and be measured.
    /// </summary>
    public void LoadAll(CancellationToken stopping = default)
    {
        var stopwatch = Stopwatch.StartNew();
        logger.LogInformation("Loading model bundles from {ModelRoot} with {Provider}", Root, sessionFactory.Provider.Provider);
        RescanCore(stopwatch, stopping);
    }

    /// <summary>
    /// Compares the model root with what is loaded: loads, verifies and warms up new version folders, drops removed ones,
    /// and swaps the catalog once. Folders refused before are retried only when their model.json changes, so a periodic
    /// rescan does not repeat the refusal's log line. <paramref name="stopping"/> stops it as it stops <see cref="LoadAll"/>.
    /// </summary>
    public RescanResult Rescan(CancellationToken stopping = default) => RescanCore(Stopwatch.StartNew(), stopping);

    /// <summary>
    /// <see cref="Rescan"/> for a request (POST .../reload): it waits for a scan in progress without holding a thread,
    /// so that many reloads at once cannot take the thread pool from the requests being served. <paramref name="stopping"/>
    /// (the shutdown) stops its loads as it stops <see cref="LoadAll"/>'s.
    /// </summary>
    public async Task<RescanResult> RescanAsync(CancellationToken stopping = default)
    {
        var stopwatch = Stopwatch.StartNew();
        await _scanGate.WaitAsync();
        try
        {
            return await Task.Run(() => RescanGated(stopwatch, stopping));
        }
        finally
        {
            _scanGate.Release();
        }
    }

    private RescanResult RescanCore(Stopwatch stopwatch, CancellationToken stopping = default)
    {
        _scanGate.Wait();
        try
        {
            return RescanGated(stopwatch, stopping);
        }
        finally
        {
            _scanGate.Release();
        }
    }

    /// <summary>Scans made again at most, in one rescan, when version folders go away while it loads (then it publishes what it has).</summary>
    private const int MaxScanPasses = 3;

    /// <summary>How often a scan looks for deleted versions while it loads (it lists the model root's folders).</summary>
    private static readonly TimeSpan LookForDeletionsEvery = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// One rescan: the model root as it is when the loads end. A load and its measurement take seconds, and a version
    /// folder deleted meanwhile (a version rolled back while it was being published) must not be served, nor unload the
    /// version it would have replaced: the scan is made again on the folders as they are then, keeping what it loaded.
    /// </summary>
    private RescanResult RescanGated(Stopwatch stopwatch, CancellationToken stopping = default)
    {
        var loadedBefore = new Dictionary<string, (ModelBundle Bundle, ExecutionStrategy Strategy)>(StringComparer.Ordinal);
        var refusedBefore = new List<RefusedBundle>();
        var retiredBefore = new List<ModelBundle>();
        scanner.BeginScan();
        try
        {
            for (var pass = 1; ; pass++)
            {
                if (ScanOnce(stopwatch, stopping, loadedBefore, refusedBefore, retiredBefore, lastPass: pass == MaxScanPasses) is { } result) return result;
                logger.LogInformation("A version folder under {ModelRoot} went away while the scan loaded versions; scanning it again, without serving what went", Root);
            }
        }
        finally
        {
            // Loaded by a pass, then not wanted by the next one (its folder went, or a newer version took its place).
            foreach (var (bundle, _) in loadedBefore.Values) bundle.Dispose();
            scanner.EndScan();
        }
    }

    /// <summary>
    /// A pass of <see cref="RescanGated"/>; null when a folder went away meanwhile and <paramref name="lastPass"/> is
    /// false: what it loaded is left in <paramref name="loadedBefore"/> for the next pass, what it refused anew in
    /// <paramref name="refusedBefore"/> and what it retired in <paramref name="retiredBefore"/>, so that the rescan's
    /// result says all of it.
    /// </summary>
    private RescanResult? ScanOnce(Stopwatch stopwatch, CancellationToken stopping,
        Dictionary<string, (ModelBundle Bundle, ExecutionStrategy Strategy)> loadedBefore, List<RefusedBundle> refusedBefore,
        List<ModelBundle> retiredBefore, bool lastPass)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var folders = scanner.FindBundleDirectories(Root);
        // A loaded version whose folder is gone stops taking requests now, not after the loads below (a version to fill
        // Models:LoadedVersions may take seconds): rolling back a bad version is deleting it.
        var before = Catalog;
        var (current, gone) = RetireDeleted(before, folders);
        var pass = new ScanPass(this, scanner, strategies, logger, current, folders, loadedBefore, refusedBefore, stopping);
        try
        {
            foreach (var family in folders.Bundles.GroupBy(ModelOf, StringComparer.Ordinal))
            {
                policy.LoadVersions(family.Key, family, directory => pass.LoadVersion(family.Key, directory));
            }
        }
        catch
        {
            // A fault past the load checks: the versions loaded by this scan are not served, so they are let go here.
            foreach (var bundle in pass.Added) bundle.Dispose();
            throw;
        }
        var (kept, added, chosen, refused, newlyRefused, retiredMeanwhile) =
            (pass.Kept, pass.Added, pass.Chosen, pass.Refused, pass.NewlyRefused, pass.RetiredMeanwhile);
        if (!lastPass && !stopping.IsCancellationRequested && (retiredMeanwhile.Count > 0 || (added.Count > 0 && WentAwayMeanwhile(added.Concat(kept)))))
        {
            foreach (var bundle in added) loadedBefore[bundle.Directory] = (bundle, chosen[bundle]);
            refusedBefore.Clear();
            refusedBefore.AddRange(newlyRefused);
            retiredBefore.AddRange(gone.Concat(retiredMeanwhile));
            return null;
        }
        // The last pass: what was taken off meanwhile stays off.
        kept.RemoveAll(retiredMeanwhile.Contains);
        var unreadable = folders.Unreadable.Where(folder => !kept.Any(b => b.Directory == folder.Directory)).ToArray();
        refused.AddRange(unreadable);
        newlyRefused.AddRange(unreadable.Where(folder => !current.Refused.Contains(folder)));
        refused.Sort((a, b) => StringComparer.Ordinal.Compare(a.Directory, b.Directory));
        var stillLoaded = kept.ToHashSet();
        var removed = current.Served.Keys.Where(b => !stillLoaded.Contains(b) && !retiredMeanwhile.Contains(b)).ToArray();

        var first = before.IsLoading;
        var changed = first || added.Count > 0 || removed.Length > 0 || !refused.SequenceEqual(current.Refused);
        var retired = retiredBefore.Concat(gone).Concat(retiredMeanwhile).ToArray();
        var shuttingDown = stopping.IsCancellationRequested;
        if (shuttingDown)
        {
            logger.LogInformation("Stopped loading model bundles after {ElapsedMs:0} ms, {Loaded} loaded: the service is shutting down",
                stopwatch.Elapsed.TotalMilliseconds, added.Count);
        }
        if (!changed && retired.Length == 0) return new RescanResult([], [], [], Serving(current));

        var catalog = changed ? Publish(current, kept, added, chosen, removed, refused) : current;
        var unloaded = retired.Concat(removed).ToArray();
        if (!shuttingDown && catalog.Families.Count == 0)
        {
            logger.LogWarning("No model is loaded: {ModelRoot} holds no valid bundle ({Refused} refused). The service runs but /health/ready reports not ready and /classify answers 503 until a model is present",
                Root, refused.Count);
            if (ModelRootLocator.MisplacedRoot(Root) is { } misplaced)
            {
                logger.LogWarning("Models:Root {ModelRoot} is {What}: set Models:Root to {Meant}, the folder that holds the model folders",
                    Root, misplaced.What, misplaced.Meant);
            }
        }
        else if (!shuttingDown && (first || added.Count > 0 || unloaded.Length > 0))
        {
            logger.LogInformation("Serving {Models} (default {DefaultModel}) after {ElapsedMs:0} ms",
                string.Join(", ", Serving(catalog)), catalog.DefaultModel, stopwatch.Elapsed.TotalMilliseconds);
        }
        return new RescanResult(added.Select(b => $"{b.Name}@{b.Version}").ToArray(), unloaded.Select(b => $"{b.Name}@{b.Version}").ToArray(),
            newlyRefused, Serving(catalog));
    }

    /// <summary>Whether the folder of any of <paramref name="bundles"/> is gone from the model root now (one that cannot be read is not gone).</summary>
    private bool WentAwayMeanwhile(IEnumerable<ModelBundle> bundles)
    {
        var now = scanner.FindBundleDirectories(Root);
        var present = now.Bundles.ToHashSet(StringComparer.Ordinal);
        return bundles.Any(bundle => !present.Contains(bundle.Directory) && !now.IsUnreadable(bundle.Directory));
    }

    /// <summary>
    /// The catalog without the loaded versions whose folders are gone from <paramref name="folders"/> (one that cannot be
    /// read is not gone), swapped in at once (they retire once their running requests finish), and those versions; the catalog itself when none is gone.
    /// Only versions of a model that keeps another loaded version, or has no version folder left at all (the model was
    /// deleted): the last one of a model still there serves until the scan has loaded what replaces it, rather than
    /// leave its model answering 503 meanwhile.
    /// </summary>
    private (ModelCatalog Catalog, ModelBundle[] Gone) RetireDeleted(ModelCatalog current, BundleFolders folders)
    {
        var present = folders.Bundles.ToHashSet(StringComparer.Ordinal);
        present.UnionWith(current.Served.Keys.Select(b => b.Directory).Where(folders.IsUnreadable));
        var modelsWithFolders = present.Select(ModelOf).ToHashSet(StringComparer.Ordinal);
        var gone = current.Served.Keys.Where(b => !present.Contains(b.Directory)
            && (current.Served.Keys.Any(other => other.Name == b.Name && present.Contains(other.Directory))
                || !modelsWithFolders.Contains(ModelOf(b.Directory)))).ToArray();
        if (gone.Length == 0) return (current, gone);
        var kept = current.Served.Keys.Except(gone).ToList();
        return (Publish(current, kept, [], [], gone, current.Refused.ToList()), gone);
    }

    /// <summary>The model a version folder belongs to: the name of the folder it is in (&lt;root&gt;/&lt;model&gt;/&lt;version&gt;).</summary>
    public static string ModelOf(string versionDirectory) => Path.GetFileName(Path.GetDirectoryName(versionDirectory))!;

    /// <summary>Whether a loaded version's model.json or graph file has been written since it was loaded (or is gone).</summary>
    private static bool Rewritten(ModelBundle bundle) =>
        BundleLoader.ManifestWrittenUtc(bundle.Directory) != bundle.ManifestWrittenUtc
        || BundleLoader.GraphStampOf(Path.Combine(bundle.Directory, bundle.Manifest.Onnx.File)) != bundle.GraphStamp;

    /// <summary>Swaps the new catalog in at once (kept versions keep their batcher and leases) and retires the removed versions.</summary>
    private ModelCatalog Publish(ModelCatalog current, List<ModelBundle> kept, List<ModelBundle> added,
        Dictionary<ModelBundle, ExecutionStrategy> strategies, ModelBundle[] removed, List<RefusedBundle> refused)
    {
        var served = new Dictionary<ModelBundle, ServedModel>();
        foreach (var bundle in kept) served[bundle] = current.Served[bundle];
        foreach (var bundle in added) served[bundle] = new ServedModel(bundle, strategies[bundle], batching.Value, metrics, inferenceRequests, logger);
        var catalog = policy.Catalog(kept.Concat(added), refused, current.DefaultModel) with { Served = served };
        Volatile.Write(ref _catalog, catalog);
        WarnOfChangedContracts(current, catalog);
        foreach (var bundle in removed)
        {
            logger.LogInformation(added.Any(a => a.Directory == bundle.Directory)
                    ? "Model {Model}@{Version} is unloaded once its running requests finish: it is replaced by what its rewritten folder {Directory} now holds"
                    : !Directory.Exists(bundle.Directory)
                    ? "Model {Model}@{Version} is unloaded once its running requests finish: its folder {Directory} is gone"
                    : !File.Exists(Path.Combine(bundle.Directory, BundleLoader.ManifestFileName))
                    ? "Model {Model}@{Version} is unloaded once its running requests finish: its folder {Directory} no longer holds a model.json"
                    : "Model {Model}@{Version} is unloaded once its running requests finish: newer versions replace it (Models:LoadedVersions) in {Directory}",
                bundle.Name, bundle.Version, bundle.Directory);
            current.Served[bundle].Retire();
        }
        return catalog;
    }

    /// <summary>
    /// A new served version whose classes or input differ from the one it replaces answers other questions under the
    /// same name (a training job can publish any data set under any name): clients that read class indexes or send
    /// tensors of the old shape would be wrong without an error. It is served (the highest version is), with a warning.
    /// </summary>
    private void WarnOfChangedContracts(ModelCatalog before, ModelCatalog after)
    {
        foreach (var (name, family) in after.Families)
        {
            if (!before.Families.TryGetValue(name, out var earlier) || earlier.Served == family.Served) continue;
            var (old, now) = (earlier.Served, family.Served);
            var changes = new List<string>();
            if (!old.ClassNames.SequenceEqual(now.ClassNames))
            {
                changes.Add($"classes {Describe(old.ClassNames)} become {Describe(now.ClassNames)}");
            }
            var (oldInput, newInput) = (old.Manifest.Input, now.Manifest.Input);
            if ((oldInput.Channels, oldInput.Height, oldInput.Width) != (newInput.Channels, newInput.Height, newInput.Width))
            {
                changes.Add($"input {oldInput.Channels}x{oldInput.Height}x{oldInput.Width} becomes {newInput.Channels}x{newInput.Height}x{newInput.Width}");
            }
            if (changes.Count == 0) continue;
            logger.LogWarning("Model {Model} is now served by version {Version}, which answers other questions than {PreviousVersion} did: {Changes}. Clients that name {Model} without a version get the new answers; pin a version with Models:Pinned to keep the old one",
                name, now.Version, old.Version, string.Join("; ", changes), name);
        }

        static string Describe(IReadOnlyList<string> classes) =>
            $"({classes.Count}: {string.Join(", ", classes.Take(4))}{(classes.Count > 4 ? ", ..." : "")})";
    }

    private static string[] Serving(ModelCatalog catalog) => catalog.Families.Values.Select(f => $"{f.Name}@{f.Served.Version}").ToArray();

    /// <summary>
    /// Leases the version a request asks for, so a reload cannot dispose it while the request uses it; throws the
    /// problem (no model loaded yet, unknown name or version) otherwise. Dispose the lease when the request is done.
    /// </summary>
    public ModelLease Lease(ModelSelector selector)
    {
        while (true)
        {
            var catalog = Catalog;
            var lease = catalog.Served[catalog.Find(selector)].TryAcquire();
            if (lease is not null) return lease;
            // Retired between reading the catalog and leasing: the catalog has been swapped already, so read it again.
        }
    }

    /// <summary>
    /// The version a request asks for now, without a lease: for checks before the request's work begins (a reload may
    /// retire it any moment); throws the problem as <see cref="Lease"/> does.
    /// </summary>
    public ModelBundle Find(ModelSelector selector) => Catalog.Find(selector);

    /// <summary>Every loaded version of a model name; throws model-not-found when there is none.</summary>
    public ModelFamily Family(string name) => Catalog.Family(name);

    public void Dispose()
    {
        _scanGate.Wait();
        try
        {
            _disposed = true;
            var catalog = Interlocked.Exchange(ref _catalog, ModelCatalog.Empty);
            foreach (var served in catalog.Served.Values) served.Retire();
        }
        finally
        {
            _scanGate.Release();
        }
    }
}
