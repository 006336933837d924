namespace ProtoPNet.Service.Models;

/// <summary>Configuration section <c>Models</c> (environment <c>Models__Root</c>, <c>Models__DefaultModel</c>, <c>Models__Pinned__&lt;name&gt;</c>).</summary>
public sealed class ModelsOptions
{
    public const string SectionName = "Models";

    /// <summary>The model repository root. Empty: the repository's <c>models/</c> folder, found upwards from the app and the working directory.</summary>
    public string? Root { get; set; }

    /// <summary>The model used when a request names none. When it is not loaded, the first loaded name (alphabetically) is used.</summary>
    public string DefaultModel { get; set; } = "fashion-mnist";

    /// <summary>Versions to serve instead of the highest one, by model name.</summary>
    public Dictionary<string, string> Pinned { get; set; } = new(StringComparer.Ordinal);
}
