using ProtoPNet.Inference.Explanation;

namespace ProtoPNet.Inference.Tests;

public class SoftmaxTests
{
    [Fact]
    public void LargeLogitsDoNotOverflow()
    {
        float[] logits = [1000f, 999f, -1000f, 3e38f, 3e38f - 1e32f];
        var probabilities = Softmax.Compute(logits);
        Assert.All(probabilities, p => Assert.True(double.IsFinite(p) && p >= 0 && p <= 1));
        Assert.Equal(1.0, probabilities.Sum(), 12);
    }

    [Fact]
    public void MatchesTheDefinitionOnOrdinaryLogits()
    {
        float[] logits = [1.5f, -0.25f, 3f, 0f];
        var expected = logits.Select(l => Math.Exp(l)).ToArray();
        var sum = expected.Sum();
        var probabilities = Softmax.Compute(logits);
        for (var i = 0; i < logits.Length; i++) Assert.Equal(expected[i] / sum, probabilities[i], 12);
    }

    [Fact]
    public void ShiftInvariantForHugeOffsets()
    {
        float[] small = [2f, 1f, 0f];
        float[] huge = [10002f, 10001f, 10000f];
        var a = Softmax.Compute(small);
        var b = Softmax.Compute(huge);
        for (var i = 0; i < 3; i++) Assert.Equal(a[i], b[i], 9);
        Assert.Equal(1 / (1 + Math.Exp(-1) + Math.Exp(-2)), b[0], 9);
    }

    /// <summary>
    /// Logits that are all far below zero (a class's logit is a weighted sum of similarities, and can be) still give a
    /// distribution: the largest logit is subtracted, not zero, so the exponentials never all underflow to 0 / 0.
    /// </summary>
    [Fact]
    public void LogitsAllFarBelowZeroStillGiveADistribution()
    {
        float[] logits = [-1000f, -1001f, -1002f];
        var probabilities = Softmax.Compute(logits);
        Assert.Equal(1 / (1 + Math.Exp(-1) + Math.Exp(-2)), probabilities[0], 9);
        Assert.Equal(Math.Exp(-2) / (1 + Math.Exp(-1) + Math.Exp(-2)), probabilities[2], 9);
        Assert.Equal(1.0, probabilities.Sum(), 12);
    }
}
