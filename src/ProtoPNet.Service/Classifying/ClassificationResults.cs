using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Classifying;

/// <summary>Which explained prototypes come with their activation map, for a heatmap.</summary>
public enum HeatmapUse
{
    None,

    /// <summary>Sent back as pictures (<c>heatmaps=png</c>): at most <see cref="ClassifyOptions.MaxHeatmapPrototypes"/> per image.</summary>
    Sent,

    /// <summary>Drawn as thumbnails (the card).</summary>
    Drawn,
}

/// <summary>
/// What a caller asks of a classification: the model, how much to explain, whether the request is a batch
/// (multipart with up to <see cref="ClassifyOptions.MaxBatchImages"/> images) or one image, and whether each explained
/// prototype's box is checked against the decision (<see cref="EvidenceCheck"/>: one more network run).
/// </summary>
public sealed record ClassifyRequest(
    ModelSelector Model, int? TopClasses, int? TopPrototypes, int? ExplainClass, HeatmapUse Heatmaps = HeatmapUse.None, bool Batch = false,
    bool Verify = false);

/// <summary>
/// One uploaded image's answer: its classification and the pixels to draw on (the decoded upload, upright, scaled down
/// to at most <see cref="Classifier.MaxDrawingPixels"/>; only when the request draws on it, with heatmaps or a card,
/// else its pixels were freed after decoding), or the problem with it.
/// </summary>
public sealed record ClassifiedImage(Classification? Classification, Image<Rgb24>? Drawing, ProblemKind? Problem, string? ProblemDetail);

/// <summary>
/// The answer to a <see cref="ClassifyRequest"/>, one item per uploaded image in upload order. It holds the model
/// version's lease and the decoded uploads (for heatmaps and cards) until disposed.
/// </summary>
public sealed class ClassifiedUploads : IDisposable
{
    private readonly ModelLease _lease;
    private readonly PreparedImages _prepared;
    private readonly BufferBudget.Hold _kept;

    internal ClassifiedUploads(ModelLease lease, PreparedImages prepared, BufferBudget.Hold kept, IReadOnlyList<BatchItemOutcome> outcomes)
    {
        _lease = lease;
        _prepared = prepared;
        _kept = kept;
        Items = outcomes.Select((outcome, i) => outcome.Rejection is { } rejection
            ? new ClassifiedImage(null, null, ProblemCatalog.ForRejection(rejection.Rejection), rejection.Message)
            : new ClassifiedImage(outcome.Classification, prepared.DecodedAt(i) is { HasPixels: true } image ? image.Pixels : null, null, null)).ToArray();
    }

    /// <summary>The model version that answered.</summary>
    public ModelBundle Model => _lease.Bundle;

    public IReadOnlyList<ClassifiedImage> Items { get; }

    /// <summary>The only image of a one-image request; its problem is thrown, as it is the request's problem.</summary>
    public ClassifiedImage Single() => Items[0] is { Problem: { } problem } item
        ? throw new ProblemException(problem, item.ProblemDetail!)
        : Items[0];

    /// <summary>
    /// Ends the hold on the model version and returns the input buffer, keeping only the pixels to draw on: for an answer
    /// whose heatmaps are drawn as it is written, so a slow reader keeps no retired version loaded.
    /// </summary>
    public void ReleaseModel()
    {
        _prepared.ReturnInput();
        _lease.Dispose();
    }

    public void Dispose()
    {
        _prepared.Dispose();
        _kept.Dispose();
        _lease.Dispose();
    }
}

/// <summary>A caller's input tensor, written for the leased model (<see cref="ClassificationService.RunTensorAsync"/>).</summary>
/// <param name="Input">The rows' pixels, in a buffer from <see cref="BundleSession.RentBuffer"/>.</param>
/// <param name="WithMaps">Whether the caller reads the similarity maps; without them they are not fetched.</param>
public readonly record struct TensorInput(float[] Input, int Rows, bool WithMaps);

/// <summary>The outputs of an input tensor's network run (<see cref="ClassificationService.RunTensorAsync"/>); holds the model version until disposed.</summary>
public sealed class TensorRun(ModelLease lease, BatchRun run, int rows) : IDisposable
{
    public ModelBundle Model => lease.Bundle;

    /// <summary>The batch's outputs; this request's rows start at <see cref="FirstRow"/>.</summary>
    public NetworkOutputs Outputs => run.Outputs;

    public int FirstRow => run.FirstRow;
    public int Rows { get; } = rows;

    public void Dispose()
    {
        run.Dispose();
        lease.Dispose();
    }
}
