namespace ProtoPNet.Service.Models;

/// <summary>Configuration section <c>Models</c> (environment <c>Models__Root</c>, <c>Models__DefaultModel</c>, <c>Models__Pinned__&lt;name&gt;</c>, <c>Models__LoadedVersions</c>, <c>Models__Watch</c>, <c>Models__RescanIntervalSeconds</c>, <c>Models__SettleSeconds</c>).</summary>
public sealed class ModelsOptions
{
    public const string SectionName = "Models";

    /// <summary>The model repository root. Empty: the repository's <c>models/</c> folder, found upwards from the app and the working directory.</summary>
    public string? Root { get; set; }

    /// <summary>The model used when a request names none. When it is not loaded, the first loaded name (alphabetically) is used.</summary>
    public string DefaultModel { get; set; } = "fashion-mnist";

    /// <summary>Versions to serve instead of the highest one, by model name.</summary>
    public Dictionary<string, string> Pinned { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Versions kept loaded per model name, highest first (default 2: the served one and the one before it, still callable
    /// as <c>name@version</c>); older ones are unloaded once their running requests finish. 0 loads every version. A pinned
    /// version is always loaded.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(0, 1000)]
    public int LoadedVersions { get; set; } = 2;

    /// <summary>Watch the model root for new or removed version folders and reload (default true).</summary>
    public bool Watch { get; set; } = true;

    /// <summary>
    /// Seconds between rescans of the model root, the fallback for file systems whose change notifications are unreliable
    /// (network and container mounts); 0 turns them off (default 30).
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(0, 86_400)]
    public int RescanIntervalSeconds { get; set; } = 30;

    /// <summary>
    /// Seconds a version folder's files must have been still before a bundle in it that does not load is refused: one
    /// being copied (cp, rsync, a network drive) is said once and looked at again then, not refused at every scan until
    /// it is whole (default 5; 0 refuses at once).
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(0, 600)]
    public int SettleSeconds { get; set; } = 5;
}
