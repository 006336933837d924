using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Service.Models;

/// <summary>
/// Which versions of a model are loaded and which one serves (<see cref="ModelsOptions"/>): per model name the highest
/// <c>LoadedVersions</c> versions that load (a refused one does not count), the pinned one always; the highest loaded
/// version serves unless one is pinned; the default model is the configured one when it is loaded.
/// </summary>
public sealed class VersionPolicy(IOptions<ModelsOptions> options, ILogger<VersionPolicy> logger)
{
    /// <summary>The warnings of the last catalog, so that the next one says only what is new.</summary>
    private readonly HashSet<string> _warned = new(StringComparer.Ordinal);

    /// <summary>
    /// Offers one model name's version folders to <paramref name="load"/>, highest first, until <c>LoadedVersions</c> of
    /// them are loaded (<paramref name="load"/> answers whether the version is loaded); the pinned version is always offered.
    /// </summary>
    public void LoadVersions(string modelName, IEnumerable<string> versionDirectories, Func<string, bool> load)
    {
        var limit = options.Value.LoadedVersions;
        var pinned = Pinned(modelName);
        var loaded = 0;
        foreach (var directory in versionDirectories.OrderByDescending(d => Path.GetFileName(d), StringComparer.Ordinal))
        {
            var isPinned = pinned is not null && Path.GetFileName(directory) == pinned;
            if (limit > 0 && loaded >= limit && !isPinned) continue;
            if (load(directory)) loaded++;
        }
    }

    /// <summary>
    /// The catalog of the loaded bundles: families with their served version, and the default model. What it warns about
    /// (a pin not loaded, a default model not loaded) is said when it starts to hold, not again at every rescan.
    /// <paramref name="previousDefault"/>: the default model until now, which stays the default while it is loaded and
    /// Models:DefaultModel is not (a model published meanwhile, first by name, does not take requests that name none).
    /// </summary>
    public ModelCatalog Catalog(IEnumerable<ModelBundle> loaded, IReadOnlyList<RefusedBundle> refused, string? previousDefault = null)
    {
        var warnings = new Dictionary<string, Action>(StringComparer.Ordinal);
        var families = new SortedDictionary<string, ModelFamily>(StringComparer.Ordinal);
        foreach (var group in loaded.GroupBy(b => b.Name, StringComparer.Ordinal))
        {
            var versions = group.OrderByDescending(b => b.Version, StringComparer.Ordinal).ToArray();
            var served = versions[0];
            if (Pinned(group.Key) is { } pinned)
            {
                var match = versions.FirstOrDefault(v => v.Version == pinned);
                if (match is null)
                {
                    warnings[$"pin {group.Key} {pinned} {served.Version}"] = () =>
                        logger.LogWarning("Models:Pinned:{Model:l} is {Version:l}, which is not loaded; serving {Served:l} instead", group.Key, pinned, served.Version);
                }
                else
                {
                    served = match;
                }
            }
            families[group.Key] = new ModelFamily(group.Key, versions, served);
        }
        foreach (var name in options.Value.Pinned.Where(pin => !string.IsNullOrWhiteSpace(pin.Value) && !families.ContainsKey(pin.Key)).Select(pin => pin.Key))
        {
            warnings[$"pin of no model {name}"] = () => logger.LogWarning(
                "Models:Pinned:{Model:l} pins a model that is not loaded (loaded: {Models:l}; model names are case-sensitive)",
                name, families.Count == 0 ? "none" : string.Join(", ", families.Keys));
        }

        string? defaultModel = null;
        if (families.Count > 0)
        {
            var configured = options.Value.DefaultModel;
            defaultModel = families.ContainsKey(configured) ? configured
                : previousDefault is not null && families.ContainsKey(previousDefault) ? previousDefault
                : families.Keys.First();
            if (defaultModel != configured)
            {
                warnings[$"default {defaultModel}"] = () => logger.LogWarning(
                    "Models:DefaultModel {Configured:l} is not loaded; the default model is {DefaultModel:l}: requests that name no model go to it", configured, defaultModel);
            }
        }
        lock (_warned)
        {
            foreach (var (key, warn) in warnings)
            {
                if (!_warned.Contains(key)) warn();
            }
            _warned.Clear();
            _warned.UnionWith(warnings.Keys);
        }
        return new ModelCatalog(families, defaultModel, refused);
    }

    private string? Pinned(string modelName) =>
        options.Value.Pinned.TryGetValue(modelName, out var pinned) && !string.IsNullOrWhiteSpace(pinned) ? pinned.Trim() : null;
}
