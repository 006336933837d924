using System.Buffers;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Explanation;

/// <summary>Turns one image's network outputs into the prediction and its "this looks like that" explanation.</summary>
public static class Explainer
{
    public static (ClassScore Prediction, IReadOnlyList<ClassScore> TopClasses, ClassExplanation Explanation) Explain(
        ModelBundle bundle, NetworkOutputs outputs, int item, DecodedImage image, ExplainOptions options)
    {
        var logits = outputs.LogitsOf(item).ToArray();
        var probabilities = Softmax.Compute(logits);
        var ranked = Enumerable.Range(0, logits.Length)
            .OrderByDescending(k => logits[k] is var l && float.IsNaN(l) ? float.NegativeInfinity : l)
            .ThenBy(k => k)
            .ToArray();
        ClassScore Score(int k) => new(k, bundle.ClassNames[k], probabilities[k], outputs.LogitsOf(item)[k]);
        var prediction = Score(ranked[0]);
        var topClasses = ranked.Take(Math.Clamp(options.TopClasses, 0, ranked.Length)).Select(Score).ToArray();

        var explained = options.ExplainClass ?? prediction.ClassIndex;
        if (explained < 0 || explained >= bundle.ClassCount) throw new ArgumentOutOfRangeException(nameof(options), $"explainClass {explained} is not a class");
        var explanation = ExplainClass(bundle, outputs, item, image, explained, options);
        return (prediction, topClasses, explanation);
    }

    public static ClassExplanation ExplainClass(ModelBundle bundle, NetworkOutputs outputs, int item, DecodedImage image,
        int classIndex, ExplainOptions options)
    {
        var similarities = outputs.SimilaritiesOf(item).ToArray();
        var prototypeCount = bundle.PrototypeCount;
        var contributions = new double[prototypeCount];
        for (var j = 0; j < prototypeCount; j++) contributions[j] = (double)bundle.Weight(classIndex, j) * similarities[j];

        var chosen = Enumerable.Range(0, prototypeCount)
            .OrderByDescending(j => contributions[j]).ThenBy(j => j)
            .Take(Math.Clamp(options.TopPrototypes, 0, prototypeCount))
            .ToArray();
        var chosenSet = chosen.ToHashSet();
        var other = 0.0;
        for (var j = 0; j < prototypeCount; j++)
        {
            if (!chosenSet.Contains(j)) other += contributions[j];
        }

        var input = bundle.Manifest.Input;
        var pixels = input.Height * input.Width;
        // Two map-sized scratch buffers for all chosen prototypes: no large allocation per prototype.
        var upsampled = ArrayPool<float>.Shared.Rent(pixels);
        var scratch = ArrayPool<float>.Shared.Rent(pixels);
        var prototypes = new PrototypeContribution[chosen.Length];
        try
        {
            for (var i = 0; i < chosen.Length; i++)
            {
                var j = chosen[i];
                var map = outputs.MapOf(item, j);
                BicubicUpsampler.Resize(map, outputs.MapHeight, outputs.MapWidth, input.Height, input.Width, upsampled);
                var inputBox = HighActivationBox.Find(upsampled.AsSpan(0, pixels), input.Height, input.Width,
                    HighActivationBox.DefaultPercentile, scratch);
                var box = HighActivationBox.Scale(inputBox, input.Width, input.Height, image.Width, image.Height);
                var heatmap = options.Heatmaps ? new ActivationMap(map.ToArray(), outputs.MapHeight, outputs.MapWidth) : null;
                var prototypeClass = bundle.Manifest.Prototypes[j].ClassIndex;
                prototypes[i] = new PrototypeContribution(j, prototypeClass, bundle.ClassNames[prototypeClass], similarities[j],
                    bundle.Weight(classIndex, j), contributions[j], box, ArgMaxCell(map, outputs.MapWidth), heatmap);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(upsampled);
            ArrayPool<float>.Shared.Return(scratch);
        }

        return new ClassExplanation(classIndex, bundle.ClassNames[classIndex], outputs.LogitsOf(item)[classIndex], prototypes, other);
    }

    /// <summary>The feature-map cell where the prototype is most active (first in row-major order on ties).</summary>
    public static FeatureCell ArgMaxCell(ReadOnlySpan<float> map, int width)
    {
        var best = 0;
        for (var i = 1; i < map.Length; i++)
        {
            if (map[i] > map[best]) best = i;
        }
        return new FeatureCell(best / width, best % width);
    }
}
