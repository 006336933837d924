using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Service.Models;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// What the network takes: channels, size, colour space, how uploads are resized, the bundle's contrast step
/// (<c>auto</c> or <c>none</c>: a tensor caller of v2 infer applies it itself) and whether JPEGs are decoded at a
/// reduced DCT scale.
/// </summary>
public sealed record InputResponse(int Channels, int Height, int Width, string ColorSpace, string Resize, string Interpolation,
    string Contrast, bool JpegDraft);

/// <summary>A class of the model.</summary>
public sealed record ClassResponse(int Index, string Name);

/// <summary>One loaded version of a model.</summary>
public sealed record ModelVersionResponse(
    string Name, string Version, bool IsDefaultVersion, string? CreatedUtc, IReadOnlyList<ClassResponse> Classes,
    InputResponse Input, int PrototypeCount, FeatureCellResponse FeatureMapSize, JsonElement? Training,
    DateTimeOffset LoadedUtc, double LoadMs, string ExecutionProvider, string Sha256, string PrototypesUrl)
{
    /// <summary>Example images stored in the bundle, when it has any.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ExampleImageResponse>? Examples { get; init; }

    /// <summary>How this version's network runs are shaped (Batching:Strategy).</summary>
    public required ExecutionStrategyResponse ExecutionStrategy { get; init; }

    /// <summary>The bundle's interpretability scorecard as its model.json has it (per prototype in <c>prototypes</c>); null without one.</summary>
    public InterpretabilitySection? Interpretability { get; init; }
}

/// <summary>
/// A version's execution strategy: at most <c>maxBatchSize</c> images per network run, <c>concurrentRuns</c> runs in
/// flight, <c>intraOpThreads</c> threads per run, and <c>loneIntraOpThreads</c> for a request that runs while no other
/// does; <c>source</c> is <c>measured</c> (on the CPU at load, with the <c>measurements</c> it was chosen from and the
/// <c>loneMeasurements</c>, one image after a short pause on each session), <c>cuda</c> or <c>configured</c>;
/// <c>paddedBatches</c>: every batch of more than one image runs at exactly <c>maxBatchSize</c> (fewer padded) and
/// single images on a session of their own (Batching:PadBatches, on CUDA by default).
/// </summary>
public sealed record ExecutionStrategyResponse(
    int MaxBatchSize, int ConcurrentRuns, int IntraOpThreads, int LoneIntraOpThreads, string Source,
    IReadOnlyList<StrategyMeasurementResponse> Measurements, IReadOnlyList<LoneMeasurementResponse> LoneMeasurements, bool PaddedBatches);

/// <summary>Images per second of <c>concurrentRuns</c> callers each running batches of <c>batchSize</c>, and CPU milliseconds per image, measured at load.</summary>
public sealed record StrategyMeasurementResponse(int BatchSize, int ConcurrentRuns, int IntraOpThreads, double ImagesPerSecond, double CpuMsPerImage);

/// <summary>
/// The median milliseconds of one image run after a short pause on a session whose runs use <c>intraOpThreads</c>
/// threads (the best of the rounds, each of <c>runs</c> runs), measured at load.
/// </summary>
public sealed record LoneMeasurementResponse(int IntraOpThreads, double P50Ms, int Runs);

/// <summary>A model name with every loaded version; <c>defaultVersion</c> is the one served when no version is named.</summary>
public sealed record ModelResponse(
    string Name, IReadOnlyList<string> Versions, string DefaultVersion, bool IsDefaultModel, IReadOnlyList<ClassResponse> Classes,
    InputResponse Input, int PrototypeCount, JsonElement? Training, DateTimeOffset LoadedUtc, string ExecutionProvider)
{
    /// <summary>Example images stored in the default version's bundle, when it has any.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ExampleImageResponse>? Examples { get; init; }
}

/// <summary>A bundle folder that was not loaded, and why; its path relative to the model root (<c>.</c> for the root itself).</summary>
public sealed record RefusedBundleResponse(string Directory, string Reason)
{
    /// <summary>
    /// The refusal as answered: paths relative to the model root, in the reason too (a file's error names its full path),
    /// so that an answer does not show where the service keeps its files; the log has them in full.
    /// </summary>
    public static RefusedBundleResponse Of(RefusedBundle refused, string root)
    {
        var (directory, reason) = RelativeToRoot(refused.Directory, refused.Reason, root);
        return new RefusedBundleResponse(directory, reason);
    }

    /// <summary>A folder and a reason as answered: paths relative to the model root (see <see cref="Of"/>).</summary>
    public static (string Directory, string Reason) RelativeToRoot(string directory, string reason, string root)
    {
        var trimmedRoot = Path.TrimEndingDirectorySeparator(root);
        return (Path.GetRelativePath(trimmedRoot, directory), RootPath(trimmedRoot).Replace(reason, match => match.Groups["into"].Success ? "" : "."));
    }

    /// <summary>The root in a message: <c>into</c> when a path under it follows, else the root itself (not a longer name it begins).</summary>
    private static Regex RootPath(string root) =>
        new(Regex.Escape(root) + @"(?:(?<into>/)(?=[^/\s'""])|/?(?![\w.-]))", RegexOptions.CultureInvariant);
}

/// <summary>
/// A bundle folder that did not load while its files were still changing (a copy in progress?): it loads at the first
/// scan that finds it whole, and is refused only once its files have stayed the same for Models:SettleSeconds (a change
/// starts the wait again), about <c>SettlesInSeconds</c> from now if nothing changes, when it is looked at again. Its
/// path relative to the model root, as a refusal's.
/// </summary>
public sealed record SettlingBundleResponse(string Directory, string Reason, int SettlesInSeconds)
{
    public static SettlingBundleResponse Of(SettlingFolder folder, string root, DateTime nowUtc)
    {
        var (directory, reason) = RefusedBundleResponse.RelativeToRoot(folder.Directory, folder.Reason, root);
        return new SettlingBundleResponse(directory, reason, Math.Max(0, (int)Math.Ceiling((folder.SettlesAtUtc - nowUtc).TotalSeconds)));
    }
}

/// <summary>Every loaded model, the default model, the execution provider and the refused bundles.</summary>
public sealed record ModelsResponse(
    string? DefaultModel, string ExecutionProvider, string? ExecutionProviderFallbackReason, IReadOnlyList<ModelResponse> Models,
    IReadOnlyList<RefusedBundleResponse> Refused, bool Loading);

/// <summary>Links to a prototype's pictures.</summary>
public sealed record PrototypePicturesResponse(string Patch, string Source, string Activation);

/// <summary>A prototype: its class, the training image it was projected onto, its box there, and its pictures.</summary>
public sealed record PrototypeResponse(
    int Index, int ClassIndex, string Label, PrototypeSource? Source, PrototypePicturesResponse Pictures);

/// <summary>Every prototype of one model version.</summary>
public sealed record PrototypesResponse(string Name, string Version, IReadOnlyList<PrototypeResponse> Prototypes);
