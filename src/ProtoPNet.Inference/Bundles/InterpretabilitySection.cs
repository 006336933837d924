namespace ProtoPNet.Inference.Bundles;

/// <summary>
/// model.json's <c>interpretability</c> (informational): the trainer's scorecard of the explanations, measured on the
/// exported graph over the test split (MODEL_BUNDLE.md). Every field may be absent or null; shares are in [0, 1].
/// </summary>
public sealed record InterpretabilitySection
{
    public int? Images { get; init; }
    public string? Split { get; init; }
    public string? Dataset { get; init; }
    /// <summary>Whether the data set has part boxes; without them the part-based measures are null.</summary>
    public bool? Parts { get; init; }
    public double? Accuracy { get; init; }
    public double? PointingGame { get; init; }
    public double? MeanIou { get; init; }
    public double? Consistency { get; init; }
    public double? ConsistencyThreshold { get; init; }
    public double? NoiseStability { get; init; }
    public double? NoiseSigma { get; init; }
    public double? JpegStability { get; init; }
    public int? JpegQuality { get; init; }
    public DeletionScores? Deletion { get; init; }
    public IReadOnlyList<double>? MeanColour { get; init; }
    public int? BackgroundPrototypes { get; init; }
    public double? BackgroundShare { get; init; }
    /// <summary>One entry per prototype, by <see cref="PrototypeInterpretability.Index"/>.</summary>
    public IReadOnlyList<PrototypeInterpretability>? Prototypes { get; init; }
    public string? Engine { get; init; }
    public double? Seconds { get; init; }
}

/// <summary>The drop of the predicted class's probability with the top box filled, against a random box of the same size.</summary>
public sealed record DeletionScores
{
    public double? MeanDropTopBox { get; init; }
    public double? MeanDropRandomBox { get; init; }
    public double? Ratio { get; init; }
}

/// <summary>
/// One prototype's scores over its class's test images: how often its box lands on the same part
/// (<see cref="Consistency"/>, null without parts), how often that survives noise and JPEG, and whether its own patch is background.
/// </summary>
public sealed record PrototypeInterpretability
{
    public required int Index { get; init; }
    public double? Consistency { get; init; }
    public string? Part { get; init; }
    public double? NoiseStability { get; init; }
    public double? JpegStability { get; init; }
    public bool? Background { get; init; }
}
