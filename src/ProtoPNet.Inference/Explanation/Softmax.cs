namespace ProtoPNet.Inference.Explanation;

public static class Softmax
{
    /// <summary>Numerically stable softmax in double precision (the largest logit is subtracted first); allocates its answer (the tests' form).</summary>
    internal static double[] Compute(ReadOnlySpan<float> logits)
    {
        var result = new double[logits.Length];
        Compute(logits, result);
        return result;
    }

    /// <summary>As <see cref="Compute(ReadOnlySpan{float})"/>, into the first <c>logits.Length</c> elements of <paramref name="result"/>.</summary>
    public static void Compute(ReadOnlySpan<float> logits, Span<double> result)
    {
        if (logits.Length == 0) return;
        result = result[..logits.Length];
        double max = double.NegativeInfinity;
        foreach (var logit in logits) max = Math.Max(max, logit);
        var sum = 0.0;
        for (var i = 0; i < logits.Length; i++)
        {
            result[i] = Math.Exp(logits[i] - max);
            sum += result[i];
        }
        for (var i = 0; i < result.Length; i++) result[i] /= sum;
    }
}
