using System.Text.Json.Serialization;
using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Service.Apis;

/// <summary>A model version: <c>name</c> and <c>version</c>.</summary>
public sealed record ModelReference(string Name, string Version);

/// <summary>An image's size in pixels, upright (after its EXIF orientation): the upload's, or as decoded.</summary>
public sealed record ImageSize(int Width, int Height);

/// <summary>A class with its softmax probability and its logit (score before softmax).</summary>
public sealed record ClassScoreResponse(int ClassIndex, string Label, double Probability, double Logit);

/// <summary>A cell of the prototype layer's feature map.</summary>
public sealed record FeatureCellResponse(int Row, int Column);

/// <summary>
/// One prototype's part in the explained class's logit. <c>contribution = weight * similarity</c>; <c>box</c> is the
/// 95th-percentile high-activation box in pixels of the uploaded image; <c>heatmap</c> is present when asked for.
/// </summary>
public sealed record PrototypeContributionResponse(
    int PrototypeIndex, int ClassIndex, string Label, double Similarity, double Weight, double Contribution,
    PixelBox Box, FeatureCellResponse FeatureCell,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] HeatmapPng? Heatmap,
    string PrototypeImage, string PrototypeSource)
{
    /// <summary>Only with <c>verify=true</c>: the explained class's probability on the image with this box filled with the model's mean colour.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? ProbabilityWithoutBox { get; init; }

    /// <summary>Only with <c>verify=true</c>: the explained class's probability on the image minus <c>probabilityWithoutBox</c>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Drop { get; init; }
}

/// <summary>The explained class's logit as the sum of its top prototypes' contributions and <c>otherPrototypesContribution</c>.</summary>
public sealed record ExplanationResponse(
    int ClassIndex, string Label, double Logit, IReadOnlyList<PrototypeContributionResponse> Prototypes, double OtherPrototypesContribution);

/// <summary>Milliseconds spent per stage for this image.</summary>
public sealed record TimingsResponse(double Decode, double Inference, double Explain, double Total)
{
    /// <summary>Only with <c>verify=true</c>: the image's share of the evidence check (masked copies and their network run), included in <c>total</c>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Verify { get; init; }
}

/// <summary>
/// What the upload became before the network saw it: <c>decoded</c> to pixels of that size (the image's own, or smaller
/// for a JPEG that the bundle decodes at a reduced DCT scale, <c>input.jpegDraft</c>), converted to <c>colorSpace</c>, resized to
/// <c>width</c> x <c>height</c> (<c>resize</c>, <c>interpolation</c>) and, with <c>contrast</c> "auto", given the
/// bundle's contrast step (a light-ground photo is <c>inverted</c>, then stretched so its ground is black), as the
/// model's bundle says its trainer did. <c>inverted</c> is null when the bundle has no contrast step.
/// </summary>
public sealed record PreprocessingResponse(ImageSize Decoded, string ColorSpace, int Width, int Height, string Resize, string Interpolation,
    string Contrast, bool? Inverted);

/// <summary>
/// How unfamiliar the image is to the model: <c>score</c> of <c>measure</c> (higher is less familiar) against the
/// bundle's calibrated <c>threshold</c>; the threshold and <c>calibration</c> are null for a bundle without a calibration.
/// </summary>
public sealed record UnfamiliarityResponse(string Measure, double Score, double? Threshold, UnfamiliarityCalibrationResponse? Calibration);

/// <summary>How the threshold was chosen: it flags <c>targetShare</c> of <c>size</c> held-out images of <c>split</c>.</summary>
public sealed record UnfamiliarityCalibrationResponse(double? TargetShare, string? Split, int? Size);

/// <summary>
/// The answer for one image: the prediction, the top classes and the "this looks like that" explanation.
/// <c>unfamiliar</c> is true when the image looks like nothing the model has learned (its unfamiliarity score is above the
/// bundle's threshold), null when the bundle has no calibrated threshold.
/// </summary>
public sealed record ClassifyResponse(
    ModelReference Model, ImageSize Image, PreprocessingResponse Preprocessing, bool? Unfamiliar, UnfamiliarityResponse Unfamiliarity,
    ClassScoreResponse Prediction, IReadOnlyList<ClassScoreResponse> TopClasses,
    ExplanationResponse Explanation, TimingsResponse TimingsMs);

/// <summary>One answer per uploaded image, in upload order: a classification, or a problem object for that image.</summary>
public sealed record BatchClassifyResponse(IReadOnlyList<object> Results);
