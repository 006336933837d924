using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Inference.Explanation;

/// <summary>What the caller asked to see.</summary>
public sealed record ExplainOptions(int TopClasses = 3, int TopPrototypes = 5, int? ExplainClass = null, bool Heatmaps = false);

public sealed record ClassScore(int ClassIndex, string Label, double Probability, double Logit);

/// <summary>
/// A prototype's similarity map over the feature grid, row-major: the values a heatmap of the prototype over the image
/// is drawn from (the API and the card draw and encode it; the explanation only measures).
/// </summary>
public sealed record ActivationMap(float[] Values, int Height, int Width);

/// <summary>
/// One prototype's part in the explained class's logit: contribution = weight x similarity. <paramref name="Box"/> is its
/// high-activation box in pixels of the uploaded image, <paramref name="InputBox"/> the same box in pixels of the model's
/// input (where it was found). <paramref name="Heatmap"/> is its activation map when heatmaps were asked for.
/// </summary>
public sealed record PrototypeContribution(
    int PrototypeIndex, int ClassIndex, string Label, double Similarity, double Weight, double Contribution,
    PixelBox Box, PixelBox InputBox, FeatureCell FeatureCell, ActivationMap? Heatmap)
{
    /// <summary>What the box is worth to the decision (<see cref="EvidenceCheck"/>); null unless the caller asked to verify.</summary>
    public BoxDeletion? WithoutBox { get; init; }
}

/// <summary>The explained class's logit split into its top prototypes and the rest: the parts add up to the logit.</summary>
public sealed record ClassExplanation(
    int ClassIndex, string Label, double Logit, IReadOnlyList<PrototypeContribution> Prototypes, double OtherPrototypesContribution);

public sealed record StageTimings(double DecodeMs, double InferenceMs, double ExplainMs, double TotalMs)
{
    /// <summary>The image's share of the evidence check (<see cref="EvidenceCheck"/>), when asked for; included in <see cref="TotalMs"/>.</summary>
    public double? VerifyMs { get; init; }
}

/// <summary>One image's answer.</summary>
public sealed record Classification(
    int ImageWidth, int ImageHeight, ClassScore Prediction, IReadOnlyList<ClassScore> TopClasses,
    ClassExplanation Explanation, StageTimings Timings)
{
    /// <summary>How unfamiliar the image is to the model (from the same network run).</summary>
    public required Unfamiliarity Unfamiliarity { get; init; }

    /// <summary>Whether the bundle's contrast step (<c>input.contrast: "auto"</c>) inverted the image.</summary>
    public bool Inverted { get; init; }

    /// <summary>The decoded pixels' size: the image's, or smaller for a JPEG decoded at a reduced DCT scale (<c>input.jpegDraft</c>).</summary>
    public (int Width, int Height) Decoded { get; init; }
}
