using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The probe check's allowance for float32 rounding of a distance: large only where the log similarity is steep (a
/// prototype that nearly matches the probe, as after a short training, where ONNX Runtime and PyTorch landed 0.01-0.04
/// apart on the logits and the service refused 19 of 23 such bundles), next to nothing elsewhere, so that a graph
/// computing something else is still refused.
/// </summary>
public class ProbeToleranceTests
{
    private static BundleManifest WithProbeSimilarities(double[] similarities, string function = "log") => new()
    {
        Format = BundleLoader.BundleFormat, FormatVersion = 1, Name = "m", Version = "v",
        Onnx = new OnnxSection { File = "model.onnx", Sha256 = "" },
        Input = new InputSection { Channels = 1, Height = 8, Width = 8, ColorSpace = "gray" },
        Classes = [new ClassEntry { Index = 0, Name = "a" }],
        FeatureMap = new FeatureMapSection { Height = 1, Width = 1 },
        Similarity = new SimilaritySection { Function = function, Epsilon = 1e-4 },
        Prototypes = [.. similarities.Select((_, j) => new PrototypeEntry { Index = j, ClassIndex = 0 })],
        LastLayer = new LastLayerSection { Weights = [[.. similarities.Select(_ => 1.0)]] },
        Probe = new ProbeSection { Input = "ramp-7919", Logits = [0], Similarities = similarities },
    };

    private static double LogSimilarity(double distance) => Math.Log((distance + 1) / (distance + 1e-4));

    [Fact]
    public void TheAllowanceFollowsTheSlopeOfTheSimilarityAtTheProbesDistance()
    {
        var slack = BundleLoader.SimilaritySlack(WithProbeSimilarities([LogSimilarity(3e-4), LogSimilarity(0.1), LogSimilarity(3)]));
        // d(ln((d + 1) / (d + eps)))/dd times 1e-4 of distance: 0.25 near a match, 0.0009 at 0.1, 8e-6 far away.
        Assert.InRange(slack[0], 0.2, 0.3);
        Assert.InRange(slack[1], 0.0008, 0.001);
        Assert.InRange(slack[2], 1e-6, 1e-5);
    }

    /// <summary>The documented tolerance, 1e-3 + 1e-3 x |expected|: relative for large logits, absolute near zero.</summary>
    [Fact]
    public void TheToleranceHasAnAbsoluteAndARelativePart()
    {
        Assert.True(BundleLoader.WithinTolerance(1000.5, 1000));     // within 1e-3 + 1.0
        Assert.False(BundleLoader.WithinTolerance(1002.1, 1000));
        Assert.True(BundleLoader.WithinTolerance(-0.0009, 0));
        Assert.False(BundleLoader.WithinTolerance(0.0025, 0));
    }

    [Fact]
    public void ALinearSimilarityGetsTheDistancesRoundingAlone()
    {
        Assert.Equal([1e-4, 1e-4], BundleLoader.SimilaritySlack(WithProbeSimilarities([-0.5, -20], "linear")));
    }
}
