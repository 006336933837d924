using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Service.Classifying;

namespace ProtoPNet.Service.Apis;

/// <summary>A classified image as /classify answers it (ClassifyContracts.cs): what the use case found, in the API's terms.</summary>
internal static class ClassifyResponses
{
    internal static ClassifyResponse Of(ModelBundle bundle, ClassifiedImage image)
    {
        static ClassScoreResponse Score(ClassScore score) => new(score.ClassIndex, score.Label, score.Probability, score.Logit);
        var classification = image.Classification!;
        var explanation = classification.Explanation;
        var prototypes = explanation.Prototypes.Select(p => new PrototypeContributionResponse(
            p.PrototypeIndex, p.ClassIndex, p.Label, p.Similarity, p.Weight, p.Contribution, p.Box,
            new FeatureCellResponse(p.FeatureCell.Row, p.FeatureCell.Column),
            p.Heatmap is null ? null : new HeatmapPng(image.Drawing!, p.Heatmap),
            ModelsApi.PrototypePictureUrl(bundle, p.PrototypeIndex, "patch"),
            ModelsApi.PrototypePictureUrl(bundle, p.PrototypeIndex, "source"))
        {
            ProbabilityWithoutBox = p.WithoutBox?.ProbabilityWithoutBox,
            Drop = p.WithoutBox?.Drop,
        }).ToArray();
        var timings = classification.Timings;
        var unfamiliarity = classification.Unfamiliarity;
        var calibration = bundle.Manifest.Unfamiliarity;
        return new ClassifyResponse(
            new ModelReference(bundle.Name, bundle.Version),
            new ImageSize(classification.ImageWidth, classification.ImageHeight),
            Preprocessing(bundle, classification),
            unfamiliarity.Unfamiliar,
            new UnfamiliarityResponse(unfamiliarity.Measure, unfamiliarity.Score, unfamiliarity.Threshold, calibration is null ? null
                : new UnfamiliarityCalibrationResponse(calibration.TargetShare, calibration.Calibration?.Split, calibration.Calibration?.Size)),
            Score(classification.Prediction),
            classification.TopClasses.Select(Score).ToArray(),
            new ExplanationResponse(explanation.ClassIndex, explanation.Label, explanation.Logit, prototypes, explanation.OtherPrototypesContribution),
            new TimingsResponse(Round(timings.DecodeMs), Round(timings.InferenceMs), Round(timings.ExplainMs), Round(timings.TotalMs))
            {
                Verify = timings.VerifyMs is { } verifyMs ? Round(verifyMs) : null,
            });
    }

    /// <summary>What this upload got for this model (InputTensorWriter): the resize and filter by their own names.</summary>
    internal static PreprocessingResponse Preprocessing(ModelBundle bundle, Classification classification)
    {
        var input = bundle.Manifest.Input;
        ColorSpaces.TryParse(input.ColorSpace, out var colorSpace);
        var contrast = input.Contrast ?? ContrastNormalizer.None;
        return new PreprocessingResponse(new ImageSize(classification.Decoded.Width, classification.Decoded.Height),
            colorSpace == ColorSpace.Gray ? "gray" : "rgb", input.Width, input.Height,
            input.Resize.ToLowerInvariant(), Resamplers.CanonicalName(input.Interpolation),
            contrast, contrast == ContrastNormalizer.Auto ? classification.Inverted : null);
    }

    private static double Round(double milliseconds) => Math.Round(milliseconds, 3);
}
