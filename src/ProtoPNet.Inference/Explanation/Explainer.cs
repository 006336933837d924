using System.Buffers;
using System.Runtime.CompilerServices;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Explanation;

/// <summary>
/// Turns one image's network outputs into the prediction and its "this looks like that" explanation. The cost follows
/// what the answer holds: the top classes and top prototypes are picked by partial selection (no full sort of the K
/// classes or M prototypes), only the returned prototypes' maps are upsampled and boxed, and the per-image scratch
/// that grows with the model (contributions, probabilities) is pooled.
/// </summary>
public static class Explainer
{
    public static (ClassScore Prediction, IReadOnlyList<ClassScore> TopClasses, ClassExplanation Explanation) Explain(
        ModelBundle bundle, NetworkOutputs outputs, int item, DecodedImage image, ExplainOptions options)
    {
        var logits = outputs.LogitsOf(item);
        var probabilities = ArrayPool<double>.Shared.Rent(logits.Length);
        ClassScore prediction;
        ClassScore[] topClasses;
        try
        {
            Softmax.Compute(logits, probabilities);
            // Highest logit first (NaN counts as the lowest), ties by class index: the order of a stable descending sort.
            var ranked = TopIndices(logits.Length, Math.Max(1, Math.Clamp(options.TopClasses, 0, logits.Length)), logits,
                static (values, a, b) => RankKey(values[b]).CompareTo(RankKey(values[a])));
            ClassScore Score(int k) => new(k, bundle.ClassNames[k], probabilities[k], outputs.LogitsOf(item)[k]);
            prediction = Score(ranked[0]);
            topClasses = ranked.Take(Math.Clamp(options.TopClasses, 0, logits.Length)).Select(Score).ToArray();
        }
        finally
        {
            ArrayPool<double>.Shared.Return(probabilities);
        }

        var explained = options.ExplainClass ?? prediction.ClassIndex;
        if (explained < 0 || explained >= bundle.ClassCount) throw new ArgumentOutOfRangeException(nameof(options), $"explainClass {explained} is not a class");
        var explanation = ExplainClass(bundle, outputs, item, image, explained, options);
        return (prediction, topClasses, explanation);
    }

    private static float RankKey(float logit) => float.IsNaN(logit) ? float.NegativeInfinity : logit;

    public static ClassExplanation ExplainClass(ModelBundle bundle, NetworkOutputs outputs, int item, DecodedImage image,
        int classIndex, ExplainOptions options)
    {
        var similarities = outputs.SimilaritiesOf(item);
        var prototypeCount = bundle.PrototypeCount;
        var contributions = ArrayPool<double>.Shared.Rent(prototypeCount);
        var input = bundle.Manifest.Input;
        var pixels = input.Height * input.Width;
        // Two map-sized scratch buffers for all chosen prototypes: no large allocation per prototype.
        var upsampled = ArrayPool<float>.Shared.Rent(pixels);
        var scratch = ArrayPool<float>.Shared.Rent(pixels);
        try
        {
            var weights = bundle.Weights.AsSpan(classIndex * prototypeCount, prototypeCount);
            for (var j = 0; j < prototypeCount; j++) contributions[j] = (double)weights[j] * similarities[j];

            // Largest contribution first, ties by prototype index (double comparison: NaN last).
            var chosen = TopIndices(prototypeCount, Math.Clamp(options.TopPrototypes, 0, prototypeCount), contributions,
                static (values, a, b) => values[b].CompareTo(values[a]));
            // The rest, summed in prototype order as always (the parts must add up to the logit the same way).
            var isChosen = ArrayPool<bool>.Shared.Rent(prototypeCount);
            var other = 0.0;
            try
            {
                Array.Clear(isChosen, 0, prototypeCount);
                foreach (var j in chosen) isChosen[j] = true;
                for (var j = 0; j < prototypeCount; j++)
                {
                    if (!isChosen[j]) other += contributions[j];
                }
            }
            finally
            {
                ArrayPool<bool>.Shared.Return(isChosen);
            }

            var prototypes = new PrototypeContribution[chosen.Length];
            for (var i = 0; i < chosen.Length; i++)
            {
                var j = chosen[i];
                var map = outputs.MapOf(item, j);
                BicubicUpsampler.Resize(map, MapToInput(bundle), upsampled);
                var inputBox = HighActivationBox.Find(upsampled.AsSpan(0, pixels), input.Height, input.Width,
                    HighActivationBox.DefaultPercentile, scratch);
                var box = HighActivationBox.Scale(inputBox, input.Width, input.Height, image.Width, image.Height);
                var heatmap = options.Heatmaps ? new ActivationMap(map.ToArray(), outputs.MapHeight, outputs.MapWidth) : null;
                var prototypeClass = bundle.Manifest.Prototypes[j].ClassIndex;
                prototypes[i] = new PrototypeContribution(j, prototypeClass, bundle.ClassNames[prototypeClass], similarities[j],
                    weights[j], contributions[j], box, inputBox, ArgMaxCell(map, outputs.MapWidth), heatmap);
            }
            return new ClassExplanation(classIndex, bundle.ClassNames[classIndex], outputs.LogitsOf(item)[classIndex], prototypes, other);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(contributions);
            ArrayPool<float>.Shared.Return(upsampled);
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    /// <summary>Each served bundle's plan for upsampling a similarity map to its input size, worked out on its first
    /// explanation and forgotten with the bundle: no per-prototype taps that grow with the input size.</summary>
    private static readonly ConditionalWeakTable<ModelBundle, BicubicUpsampler.Plan> MapToInputPlans = new();

    private static BicubicUpsampler.Plan MapToInput(ModelBundle bundle) => MapToInputPlans.GetValue(bundle,
        static b => BicubicUpsampler.Plan.For(b.Session.MapHeight, b.Session.MapWidth, b.Manifest.Input.Height, b.Manifest.Input.Width));

    /// <summary>Compares the items at two indices of <paramref name="values"/>: negative when the first ranks higher.</summary>
    private delegate int RankComparison<T>(ReadOnlySpan<T> values, int a, int b);

    /// <summary>
    /// The <paramref name="count"/> highest-ranked of <paramref name="length"/> items, best first, ties by index: what a
    /// stable sort by <paramref name="compare"/> would put first, found in O(length x count) with no full sort.
    /// </summary>
    private static int[] TopIndices<T>(int length, int count, ReadOnlySpan<T> values, RankComparison<T> compare)
    {
        var top = new int[count];
        var filled = 0;
        for (var index = 0; index < length && count > 0; index++)
        {
            // A later index never beats an equal earlier one, so only a strictly better item enters a full list.
            if (filled == count && compare(values, index, top[count - 1]) >= 0) continue;
            var position = filled < count ? filled++ : count - 1;
            while (position > 0 && compare(values, index, top[position - 1]) < 0)
            {
                top[position] = top[position - 1];
                position--;
            }
            top[position] = index;
        }
        return top;
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
