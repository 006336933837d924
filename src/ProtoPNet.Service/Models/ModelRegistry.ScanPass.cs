using System.Diagnostics;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Service.Models;

public sealed partial class ModelRegistry
{
    /// <summary>
    /// What one pass of a scan decides, version folder by version folder (<see cref="LoadVersion"/>, asked by the
    /// <see cref="VersionPolicy"/> for the folders it wants loaded): which loaded versions it keeps, which it loads
    /// (and how each runs), which folders it refuses, and which versions it took off the air meanwhile because their
    /// folders were deleted while it loaded.
    /// </summary>
    private sealed class ScanPass(ModelRegistry registry, BundleScanner scanner, StrategySelector strategies, ILogger logger, ModelCatalog current,
        BundleFolders folders, Dictionary<string, (ModelBundle Bundle, ExecutionStrategy Strategy)> loadedBefore, List<RefusedBundle> refusedBefore,
        CancellationToken stopping)
    {
        private readonly Dictionary<string, ModelBundle> _loadedByDirectory = current.Served.Keys.ToDictionary(b => b.Directory, StringComparer.Ordinal);
        private readonly Stopwatch _lastLook = Stopwatch.StartNew();   // the pass began by looking (and taking off those gone then)

        /// <summary>
        /// Loaded versions that serve on. A folder that cannot be read now (its permissions changed) is not a deleted
        /// one: what was loaded from it serves on as it was loaded, rather than take a model off the air.
        /// </summary>
        public List<ModelBundle> Kept { get; } = current.Served.Keys.Where(b => folders.IsUnreadable(b.Directory)).ToList();

        public List<ModelBundle> Added { get; } = [];

        /// <summary>How each added version runs, measured as it loads: a version whose batches do not run is refused like any bad bundle.</summary>
        public Dictionary<ModelBundle, ExecutionStrategy> Chosen { get; } = [];

        public List<RefusedBundle> Refused { get; } = [];

        /// <summary>The refusals not made before (each is logged once, when it is new), those of earlier passes included.</summary>
        public List<RefusedBundle> NewlyRefused { get; } = new(refusedBefore);

        public List<ModelBundle> RetiredMeanwhile { get; } = [];

        /// <summary>Whether the version in <paramref name="directory"/> serves after this pass: kept, loaded, or (rewritten into something that does not load) kept as it was loaded.</summary>
        public bool LoadVersion(string model, string directory)
        {
            // Deleted since this pass listed it, while others loaded: neither loaded nor kept (the pass is made again).
            if (!Directory.Exists(directory)) return false;
            if (_loadedByDirectory.TryGetValue(directory, out var existing))
            {
                // A shutdown loads nothing more, but takes nothing off the air either.
                if (!Rewritten(existing) || stopping.IsCancellationRequested)
                {
                    Kept.Add(existing);
                    return true;
                }
                // Versions are immutable; one whose folder was rewritten in place would serve the old graph with the
                // new pictures. It is loaded anew (or refused) and the old one retired.
                logger.LogWarning("The folder of {Model}@{Version} was rewritten after it was loaded (its model.json or its graph changed; a version's folder should never change): loading it again from {Directory}",
                    existing.Name, existing.Version, directory);
            }
            if (stopping.IsCancellationRequested) return false;
            if (loadedBefore.Remove(directory, out var earlier))
            {
                if (!Rewritten(earlier.Bundle))
                {
                    Added.Add(earlier.Bundle);
                    Chosen[earlier.Bundle] = earlier.Strategy;
                    return true;
                }
                earlier.Bundle.Dispose();   // deleted and published anew between the passes: loaded again below
            }
            RetireDeletedMeanwhile();
            ModelBundle? bundle;
            RefusedBundle? refusal;
            bool isNewRefusal;
            try
            {
                bundle = scanner.TryLoad(model, directory, loaded => Chosen[loaded] = strategies.Choose(loaded, stopping, RetireDeletedMeanwhile),
                    out refusal, out isNewRefusal, stopping, reloadsALoadedVersion: existing is not null);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                if (existing is null) return false;
                Kept.Add(existing);
                return true;
            }
            if (bundle is not null)
            {
                Added.Add(bundle);
                return true;
            }
            if (refusal is null) return false;   // still settling (a copy in progress): neither loaded nor refused yet
            Refused.Add(refusal);
            if (isNewRefusal) NewlyRefused.Add(refusal);
            if (existing is null) return false;
            // Rewritten into something that does not load (a copy half done, an edit gone wrong): the copy loaded
            // before serves on, as for a folder that cannot be read, rather than take the version (or the whole
            // model, if it is the only one) off the air.
            if (isNewRefusal)
            {
                logger.LogError("The rewritten folder of {Model}@{Version} does not load ({Reason}): the copy loaded at {LoadedUtc:u} serves on until {Directory} holds a version that loads, or is removed",
                    existing.Name, existing.Version, refusal.Reason, existing.LoadedUtc, directory);
            }
            Kept.Add(existing);
            return true;
        }

        /// <summary>
        /// A version rolled back (its folder deleted) while a load takes seconds is taken off before that load ends:
        /// between the measurement's runs, and between loads.
        /// </summary>
        private void RetireDeletedMeanwhile()
        {
            // A root gone altogether is for the scan's own look at its end (which says so once), not for a warning here at every look.
            if (_lastLook.Elapsed < LookForDeletionsEvery || !Directory.Exists(registry.Root)) return;
            _lastLook.Restart();
            try
            {
                RetiredMeanwhile.AddRange(registry.RetireDeleted(registry.Catalog, scanner.FindBundleDirectories(registry.Root)).Gone);
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                // The root cannot be listed right now: the scan's own look at its end decides.
            }
        }
    }
}
