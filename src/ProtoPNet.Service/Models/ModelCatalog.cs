using ProtoPNet.Inference.Bundles;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Models;

/// <summary>A bundle folder that failed a load check, and the one-line reason.</summary>
public sealed record RefusedBundle(string Directory, string Reason);

/// <summary>Every loaded version of one model name, and the one served by default (highest, unless pinned).</summary>
public sealed record ModelFamily(string Name, IReadOnlyList<ModelBundle> Versions, ModelBundle Served)
{
    /// <summary>The loaded version named <paramref name="version"/>, or the served one for none; throws model-not-found otherwise.</summary>
    public ModelBundle Find(string? version) => version is null
        ? Served
        : Versions.FirstOrDefault(v => v.Version == version) ?? throw new ProblemException(ProblemCatalog.ModelNotFound,
            $"Model '{Name}' has no version '{version}' loaded. Loaded versions: {string.Join(", ", Versions.Select(v => v.Version))}.");
}

/// <summary>An immutable view of what is loaded; replaced as a whole so readers never see a half-loaded state.</summary>
public sealed record ModelCatalog(
    IReadOnlyDictionary<string, ModelFamily> Families, string? DefaultModel, IReadOnlyList<RefusedBundle> Refused)
{
    public static readonly ModelCatalog Empty = new(new Dictionary<string, ModelFamily>(), null, []);

    /// <summary>The catalog before the first scan of the model root has ended: nothing loaded yet, and nothing refused.</summary>
    public static readonly ModelCatalog Loading = Empty with { IsLoading = true };

    /// <summary>Whether the service is still loading its models at start (the server answers meanwhile).</summary>
    public bool IsLoading { get; init; }

    /// <summary>The served form (batcher and leases) of every loaded bundle.</summary>
    public IReadOnlyDictionary<ModelBundle, ServedModel> Served { get; init; } = new Dictionary<ModelBundle, ServedModel>();

    /// <summary>The loaded version <paramref name="selector"/> asks for; throws the problem (no model yet, unknown name or version) otherwise.</summary>
    public ModelBundle Find(ModelSelector selector)
    {
        if (Families.Count == 0) throw new ProblemException(ProblemCatalog.NoModelReady, NoModelDetail);
        return Family(selector.Name ?? DefaultModel!).Find(selector.Version);
    }

    /// <summary>
    /// Why no model is ready, in the one wording /classify, /health/ready and /v2/health/ready give: still loading at
    /// start, or the model root holds no valid bundle.
    /// </summary>
    public string NoModelDetail => IsLoading ? ProblemCatalog.ModelsLoadingDetail
        : $"No model is loaded: the model root holds no valid bundle ({Refused.Count} refused; GET /models lists them and why).";

    /// <summary>Every loaded version of a model name; throws model-not-found when there is none (no-model-ready while loading).</summary>
    public ModelFamily Family(string name) => Families.GetValueOrDefault(name)
        ?? throw (IsLoading ? new ProblemException(ProblemCatalog.NoModelReady, NoModelDetail)
            : new ProblemException(ProblemCatalog.ModelNotFound, Families.Count == 0
                ? $"No model named '{name}' is loaded: no model is loaded yet."
                : $"No model named '{name}' is loaded. Loaded: {string.Join(", ", Families.Keys)}."));
}

/// <summary>What a rescan changed: the versions it loaded and removed, the folders it newly refused, and what serves now.</summary>
public sealed record RescanResult(IReadOnlyList<string> Loaded, IReadOnlyList<string> Removed, IReadOnlyList<RefusedBundle> Refused,
    IReadOnlyList<string> Serving);
