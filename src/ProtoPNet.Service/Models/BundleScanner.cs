using ProtoPNet.Inference.Bundles;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Models;

/// <summary>What a scan of the model root found: the bundle folders, and the folders it could not list, with why.</summary>
public sealed record BundleFolders(IReadOnlyList<string> Bundles, IReadOnlyList<RefusedBundle> Unreadable)
{
    /// <summary>Whether <paramref name="directory"/> is, or lies under, a folder that could not be listed.</summary>
    public bool IsUnreadable(string directory) => Unreadable.Any(folder =>
        directory == folder.Directory || directory.StartsWith(Path.TrimEndingDirectorySeparator(folder.Directory) + Path.DirectorySeparatorChar, StringComparison.Ordinal));
}

/// <summary>
/// Finds the bundle folders under the model root and loads them, refusing a bad one with one log line. A refused folder
/// is remembered with what its files were (<see cref="FolderState"/>) and not tried again until one of them changes, so
/// a periodic rescan does not repeat the refusal, while a folder refused half copied is tried again once the copy
/// goes on. A folder that does not load is refused only once its files have stayed the same, as this service's scans
/// see them, for <see cref="SettleTime"/>: one still being copied (cp, rsync, a network drive, rather than published by
/// a rename) is said once, neither listed nor counted as refused, and looked at again then. (By this process's clock, not
/// the files' times, which a copy may keep from the source and a network drive may write with its own clock: the
/// <see cref="SettleClock"/>.) Not thread-safe: the registry calls it under its scan lock (but <see cref="TakeSettleDeadline"/> and
/// <see cref="Settling"/>, read from any thread).
/// </summary>
public sealed class BundleScanner(BundleLoader loader, ServiceMetrics metrics, Microsoft.Extensions.Options.IOptions<ModelsOptions> options,
    SettleClock clock, ILogger<BundleScanner> logger)
{
    /// <summary>
    /// How long the files of a folder that does not load must have been still before it is refused (Models:SettleSeconds):
    /// a copy in progress was refused (an error line, and a count in protopnet_model_loads_total) at every scan until it was whole.
    /// </summary>
    private TimeSpan SettleTime => TimeSpan.FromSeconds(options.Value.SettleSeconds);

    /// <summary>Folders that did not load and are not refused yet: their files as last seen, since when (this clock) they have been so, and why they did not load.</summary>
    private readonly Dictionary<string, (FolderState Files, DateTime SinceUtc, string Reason)> _settling = new(StringComparer.Ordinal);

    /// <summary>The settling folders this scan tried (<see cref="BeginScan"/>); the others are forgotten at its end.</summary>
    private readonly HashSet<string> _triedThisScan = new(StringComparer.Ordinal);

    private IReadOnlyList<SettlingFolder> _settlingNow = [];

    /// <summary>The folders that do not load yet and are not refused yet, as the last scan left them (read from any thread: the reload answers).</summary>
    public IReadOnlyList<SettlingFolder> Settling => Volatile.Read(ref _settlingNow);

    /// <summary>A scan of the model root begins: the settling folders it does not try (gone, or older than the versions kept) are forgotten at its end.</summary>
    public void BeginScan() => _triedThisScan.Clear();

    /// <summary>A scan ends: the settling folders as it left them are published for <see cref="Settling"/>.</summary>
    public void EndScan()
    {
        foreach (var untried in _settling.Keys.Where(directory => !_triedThisScan.Contains(directory)).ToArray()) _settling.Remove(untried);
        Volatile.Write(ref _settlingNow, _settling.Select(folder => new SettlingFolder(folder.Key, folder.Value.Reason, folder.Value.SinceUtc + SettleTime))
            .OrderBy(folder => folder.Directory, StringComparer.Ordinal).ToArray());
    }

    /// <summary>Ticks of the earliest moment a folder still being written will have been still for <see cref="SettleTime"/>; 0 when none.</summary>
    private long _settleDeadlineTicks;

    /// <summary>When a folder that did not load while being written will have settled, so that it is looked at again then; null when none (cleared).</summary>
    public DateTime? TakeSettleDeadline()
    {
        var ticks = Interlocked.Exchange(ref _settleDeadlineTicks, 0);
        return ticks == 0 ? null : new DateTime(ticks, DateTimeKind.Utc);
    }

    /// <summary>Refused folders: their files as they were, the refusal, and whether it was a read that failed (tried again at every scan).</summary>
    private readonly Dictionary<string, (FolderState Files, RefusedBundle Refusal, bool ReadFailed)> _refusedCache = new(StringComparer.Ordinal);
    private readonly HashSet<string> _unreadableWarned = new(StringComparer.Ordinal);

    /// <summary>A folder's files as a refusal remembers them: how many, their bytes, and the latest write.</summary>
    public readonly record struct FolderState(int Files, long Bytes, DateTime LatestWriteUtc)
    {
        public static FolderState Of(string directory)
        {
            var (files, bytes, latest) = (0, 0L, DateTime.MinValue);
            try
            {
                foreach (var (length, written) in FilesUnder(directory))
                {
                    files++;
                    bytes += length;
                    if (written > latest) latest = written;
                }
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                return new FolderState(-1, -1, DateTime.UtcNow);   // changing under us: never equal to what was remembered
            }
            return new FolderState(files, bytes, latest);
        }

        /// <summary>
        /// Length and last write of the files under a folder and its subfolders, links among them, as the listing read
        /// them (no further look at each), without going into a linked folder: a link to '/' in a bundle made one scan
        /// walk the whole file system.
        /// </summary>
        private static IEnumerable<(long Length, DateTime WrittenUtc)> FilesUnder(string directory) =>
            new System.IO.Enumeration.FileSystemEnumerable<(long, DateTime)>(directory,
                (ref System.IO.Enumeration.FileSystemEntry entry) => (entry.Length, entry.LastWriteTimeUtc.UtcDateTime),
                new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 })
            {
                ShouldIncludePredicate = (ref System.IO.Enumeration.FileSystemEntry entry) => !entry.IsDirectory,
                ShouldRecursePredicate = (ref System.IO.Enumeration.FileSystemEntry entry) => (entry.Attributes & FileAttributes.ReparsePoint) == 0,
            };
    }

    /// <summary>
    /// Bundle folders are <c>root/name/version/</c> with a model.json; names starting with '.' are staging folders. A
    /// folder that cannot be listed (its permissions) is not taken for an empty one: it is reported among
    /// <see cref="BundleFolders.Unreadable"/>, logged once, and what was loaded from it stays loaded.
    /// </summary>
    public BundleFolders FindBundleDirectories(string root)
    {
        if (!Directory.Exists(root))
        {
            logger.LogWarning("The model root {ModelRoot} does not exist", root);
            return new BundleFolders([], []);
        }
        var directories = new List<string>();
        var unreadable = new List<RefusedBundle>();
        // A model folder may be deleted or moved between listing the root and listing it: it then holds nothing.
        foreach (var family in Subfolders(root, unreadable))
        {
            if (Path.GetFileName(family).StartsWith('.') || IsLostAndFound(family)) continue;
            foreach (var version in Subfolders(family, unreadable))
            {
                if (Path.GetFileName(version).StartsWith('.')) continue;
                if (HoldsManifest(version, unreadable)) directories.Add(version);
            }
        }
        // Folders that are gone are forgotten, so one that comes back is tried again.
        var present = directories.ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _refusedCache.Keys.Where(d => !present.Contains(d)).ToArray()) _refusedCache.Remove(gone);
        WarnOnceOfUnreadable(unreadable);
        return new BundleFolders(directories, unreadable);
    }

    /// <summary>
    /// A folder of the model root that is the recovery folder an ext file system keeps at its root, which a volume
    /// mounted as the model root has (a Kubernetes claim on a block device): owned by root and closed to the service's
    /// user, it is no model folder.
    /// </summary>
    private static bool IsLostAndFound(string modelFolder) => Path.GetFileName(modelFolder) == "lost+found";

    private static string[] Subfolders(string directory, List<RefusedBundle> unreadable)
    {
        try
        {
            return Directory.EnumerateDirectories(directory).Order(StringComparer.Ordinal).ToArray();
        }
        catch (DirectoryNotFoundException)
        {
            return [];
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            unreadable.Add(Unreadable(directory, exception));
            return [];
        }
    }

    /// <summary>Whether a version folder holds a model.json; one that cannot be listed is added to <paramref name="unreadable"/>.</summary>
    private static bool HoldsManifest(string version, List<RefusedBundle> unreadable)
    {
        if (File.Exists(Path.Combine(version, BundleLoader.ManifestFileName))) return true;
        try
        {
            // A folder that can be listed but not entered still shows its model.json: loading it then says what fails.
            return Directory.EnumerateFiles(version, BundleLoader.ManifestFileName).Any();
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            unreadable.Add(Unreadable(version, exception));
            return false;
        }
    }

    private static RefusedBundle Unreadable(string directory, Exception exception) =>
        new(directory, $"its folder cannot be read ({exception.Message.Split('\n')[0]}): a version loaded from it stays loaded, nothing else in it is loaded until it can be read");

    private void WarnOnceOfUnreadable(List<RefusedBundle> unreadable)
    {
        foreach (var folder in unreadable)
        {
            if (_unreadableWarned.Add(folder.Directory)) logger.LogError("Cannot read model folder {Directory}: {Reason}", folder.Directory, folder.Reason);
        }
        _unreadableWarned.RemoveWhere(directory => !unreadable.Any(folder => folder.Directory == directory));
    }

    /// <summary>
    /// Whether a folder that did not load has not yet stayed the same for <see cref="SettleTime"/> (since this scanner
    /// first saw it so), so that it is not refused yet. Said once per folder; the watcher is asked to look again once
    /// it will have settled (<see cref="TakeSettleDeadline"/>).
    /// </summary>
    private bool StillSettling(string directory, FolderState files, string reason)
    {
        if (SettleTime <= TimeSpan.Zero) return false;
        var now = clock.UtcNow;
        var firstSight = !_settling.TryGetValue(directory, out var seen);
        // A folder that could not be walked has no latest write to compare (FolderState.Of gives it the time of the look).
        var changed = firstSight || seen.Files != files && !(seen.Files.Files < 0 && files.Files < 0);
        if (changed) seen = (files, now, reason);
        seen.Reason = reason;   // the latest try's
        _settling[directory] = seen;
        _triedThisScan.Add(directory);
        if (now - seen.SinceUtc >= SettleTime)
        {
            _settling.Remove(directory);
            return false;
        }
        // The earliest: the scan then made sets the next (a later one kept instead would leave the earlier folder waiting for it).
        var settled = (seen.SinceUtc + SettleTime).Ticks;
        long earliest;
        while (((earliest = Interlocked.Read(ref _settleDeadlineTicks)) == 0 || settled < earliest)
               && Interlocked.CompareExchange(ref _settleDeadlineTicks, settled, earliest) != earliest)
        {
        }
        if (firstSight)
        {
            logger.LogInformation("Model bundle {Directory} does not load yet ({Reason}): it is looked at again once its files have stayed the same for {SettleSeconds:0} s (it may still be being copied)",
                directory, reason.TrimEnd('.'), SettleTime.TotalSeconds);
        }
        return true;
    }

    /// <summary>
    /// Loads (verifies and warms up) the bundle in <paramref name="directory"/> and makes it ready to serve
    /// (<paramref name="prepare"/>, which may refuse it too); null when it is refused, now or before with its files
    /// unchanged, and null with no <paramref name="refusal"/> while it is still settling (a new folder, not a loaded
    /// version's). A file that cannot be read is a refusal as well. <paramref name="isNewRefusal"/> tells a refusal met
    /// for the first time; it is logged here unless <paramref name="reloadsALoadedVersion"/> (the caller says it, with
    /// the loaded copy that serves on). <paramref name="stopping"/> (the shutdown) stops the preparation, not as a refusal.
    /// </summary>
    public ModelBundle? TryLoad(string modelName, string directory, Action<ModelBundle> prepare, out RefusedBundle? refusal, out bool isNewRefusal,
        CancellationToken stopping = default, bool reloadsALoadedVersion = false)
    {
        isNewRefusal = false;
        var files = FolderState.Of(directory);
        // A read that failed is tried again at every scan: mending a file's permissions changes nothing the listing shows.
        var seen = _refusedCache.TryGetValue(directory, out var cached);
        if (seen && cached.Files == files && !cached.ReadFailed)
        {
            refusal = cached.Refusal;
            return null;
        }
        ModelBundle? bundle = null;
        try
        {
            // A folder named so that no request could address it (a space, a trailing newline) would serve nobody.
            foreach (var name in (string[])[modelName, Path.GetFileName(directory)])
            {
                if (!ModelSelector.IsValidName(name))
                {
                    throw new BundleRefusedException(directory, $"its folder name '{name}' cannot be used in a request: {ModelSelector.NameRule}");
                }
            }
            bundle = loader.Load(directory);
            prepare(bundle);
            _refusedCache.Remove(directory);
            _settling.Remove(directory);
            refusal = null;
            metrics.ModelLoads.Add(1, ServiceMetrics.Tag("model", bundle.Name), ServiceMetrics.Tag("result", "loaded"));
            logger.LogInformation("Loaded model {Model}@{Version} ({Classes} classes, {Prototypes} prototypes, input {Channels}x{Height}x{Width}) in {LoadMs:0} ms from {Directory}",
                bundle.Name, bundle.Version, bundle.ClassCount, bundle.PrototypeCount, bundle.Manifest.Input.Channels,
                bundle.Manifest.Input.Height, bundle.Manifest.Input.Width, bundle.LoadMilliseconds, directory);
            if (bundle.Manifest.InterpretabilityProblem is { } problem)
            {
                logger.LogWarning("Model {Model:l}@{Version:l} is served without its interpretability scorecard: {Problem:l}", bundle.Name, bundle.Version, problem);
            }
            return bundle;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The shutdown stopped its preparation (the strategy's measurement): not a refusal, nothing to remember.
            bundle?.Dispose();
            throw;
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            bundle?.Dispose();
            // A file gone or unreadable while it was read (a folder being deleted, its permissions): refused like a bad one.
            // Any other fault of one bundle's load is refused too, so that it cannot stop the scan of the others.
            string reason;
            switch (exception)
            {
                case BundleRefusedException refused:
                    reason = refused.Reason;
                    break;
                case IOException or UnauthorizedAccessException:
                    reason = $"its files cannot be read: {exception.Message}";
                    break;
                default:
                    logger.LogError(exception, "Loading model bundle {Directory} failed unexpectedly", directory);
                    reason = $"it cannot be loaded ({exception.GetType().Name}: {exception.Message.Split('\n')[0]})";
                    break;
            }
            if (!reloadsALoadedVersion && StillSettling(directory, files, reason))
            {
                refusal = null;   // neither loaded nor refused yet: not listed, not counted
                return null;
            }
            refusal = new RefusedBundle(directory, reason);
            _refusedCache[directory] = (files, refusal, ReadFailed: exception is IOException or UnauthorizedAccessException);
            // Said once: a folder tried again at every scan and refused for the same reason is not a new refusal.
            isNewRefusal = !(seen && cached.Refusal == refusal);
            if (!isNewRefusal) return null;
            metrics.ModelLoads.Add(1, ServiceMetrics.Tag("model", modelName), ServiceMetrics.Tag("result", "refused"));
            // A loaded version's rewritten folder: the registry says it in one line, with the copy that serves on.
            if (!reloadsALoadedVersion) logger.LogError("Refused model bundle {Directory}: {Reason}", directory, reason);
            return null;
        }
    }
}

/// <summary>A folder that did not load while its files were changing (a copy in progress?): not refused before <paramref name="SettlesAtUtc"/> (the <see cref="SettleClock"/>'s).</summary>
public sealed record SettlingFolder(string Directory, string Reason, DateTime SettlesAtUtc);
