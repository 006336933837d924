using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Inference.Explanation;

/// <summary>
/// How unfamiliar an image is to the model. <paramref name="Score"/> is the bundle's measure (higher: less familiar);
/// <paramref name="Threshold"/> and <paramref name="Unfamiliar"/> (score above the threshold) come from the bundle's
/// calibration and are null for a bundle without one.
/// </summary>
public sealed record Unfamiliarity(string Measure, double Score, double? Threshold, bool? Unfamiliar)
{
    /// <summary>
    /// The measure of one image from its <c>similarities</c> row (each prototype's best cell), as the trainer computed
    /// it when it calibrated the threshold: minus the highest similarity of any prototype to any part of the image.
    /// </summary>
    public static Unfamiliarity Of(ModelBundle bundle, ReadOnlySpan<float> similarities)
    {
        var best = float.NegativeInfinity;
        foreach (var similarity in similarities) best = Math.Max(best, similarity);
        var score = -(double)best;
        return bundle.Manifest.Unfamiliarity is { } calibration
            ? new Unfamiliarity(calibration.Measure, score, calibration.Threshold, score > calibration.Threshold)
            : new Unfamiliarity(UnfamiliaritySection.NegativeMaxSimilarity, score, null, null);
    }
}
