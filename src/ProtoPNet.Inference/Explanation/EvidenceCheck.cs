using System.Buffers;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Explanation;

/// <summary>
/// The explained class's probability on the image with a prototype's box filled with the model's mean colour, and its
/// <see cref="Drop"/> from the probability on the image itself (positive: the box carried part of the decision).
/// </summary>
public sealed record BoxDeletion(double ProbabilityWithoutBox, double Drop);

/// <summary>
/// Answers that test their own evidence: does the part an explanation points at carry the decision? Every explained
/// prototype of every classified image gets a copy of the image's input tensor whose box of that prototype (in pixels
/// of the model's input) is filled with the model's mean colour, the bundle's <c>input.mean</c>. The graph's own
/// normalisation subtracts that mean, so to the network a filled pixel is exactly 0: nothing is there. All copies go
/// through the network in one extra run; each prototype then gets the explained class's probability on its copy and
/// the drop from the probability on the image (<see cref="BoxDeletion"/>).
/// <para>Use: <see cref="Prepare"/> while the images' network outputs are at hand, run the <see cref="RowCount"/> rows
/// of <see cref="Input"/>, <see cref="Apply"/> the outputs, and dispose (it returns the pooled input buffer).</para>
/// </summary>
public sealed class EvidenceCheck : IDisposable
{
    /// <summary>The fill colour per channel when a bundle does not state its mean: mid grey.</summary>
    private const float DefaultFill = 0.5f;

    /// <summary>Per uploaded image: the explained class's probability on the image itself (NaN for a rejected image).</summary>
    private readonly double[] _probabilities;

    /// <summary>Per uploaded image: the row of <see cref="Input"/> that holds the copy for its first explained prototype.</summary>
    private readonly int[] _firstRows;

    private float[]? _input;

    private EvidenceCheck(float[] input, int rowCount, double[] probabilities, int[] firstRows)
    {
        _input = input;
        RowCount = rowCount;
        _probabilities = probabilities;
        _firstRows = firstRows;
    }

    /// <summary>The masked copies in [N, C, H, W] layout, in the first <see cref="RowCount"/> rows: one per explained prototype.</summary>
    public float[] Input => _input ?? throw new ObjectDisposedException(nameof(EvidenceCheck));

    public int RowCount { get; }

    /// <summary>How many masked copies the explanations need: one per explained prototype (0: there is nothing to run).</summary>
    private static int RowsFor(IReadOnlyList<BatchItemOutcome> outcomes) =>
        outcomes.Sum(o => o.Classification?.Explanation.Prototypes.Count ?? 0);

    /// <summary>The colour a box is filled with, per channel, in [0, 1] pixel space: the bundle's <c>input.mean</c>.</summary>
    private static float[] FillColour(InputSection input) =>
        input.Mean is { } mean && mean.Count == input.Channels
            ? mean.Select(m => (float)m).ToArray()
            : Enumerable.Repeat(DefaultFill, input.Channels).ToArray();

    /// <summary>
    /// Writes the masked copies of the prepared images (explained in <paramref name="outcomes"/>, one per uploaded
    /// image) into a pooled buffer, and notes each explained class's probability from <paramref name="outputs"/>, whose
    /// rows <paramref name="firstRow"/> onwards hold the prepared images' rows. Null when no prototype was explained.
    /// </summary>
    public static EvidenceCheck? Prepare(ModelBundle bundle, PreparedImages prepared, NetworkOutputs outputs, int firstRow,
        IReadOnlyList<BatchItemOutcome> outcomes)
    {
        var rowCount = RowsFor(outcomes);
        if (rowCount == 0) return null;
        var session = bundle.Session;
        var input = bundle.Manifest.Input;
        var fill = FillColour(input);
        var size = session.ImageElementCount;
        var probabilities = new double[outcomes.Count];
        Array.Fill(probabilities, double.NaN);
        var firstRows = new int[outcomes.Count];
        var buffer = session.RentBuffer(rowCount);
        try
        {
            var next = 0;
            for (var row = 0; row < prepared.RowCount; row++)
            {
                var index = prepared.ImageOfRow(row);
                var explanation = outcomes[index].Classification!.Explanation;
                probabilities[index] = Probability(outputs.LogitsOf(firstRow + row), explanation.ClassIndex);
                firstRows[index] = next;
                var image = prepared.Input.AsSpan(row * size, size);
                foreach (var prototype in explanation.Prototypes)
                {
                    var copy = buffer.AsSpan(next * size, size);
                    image.CopyTo(copy);
                    Fill(copy, prototype.InputBox, fill, input.Height, input.Width);
                    next++;
                }
            }
            return new EvidenceCheck(buffer, rowCount, probabilities, firstRows);
        }
        catch
        {
            // The buffer is pooled: a fault while filling it (e.g. a box outside the image) must not keep it from the pool.
            BundleSession.ReturnBuffer(buffer);
            throw;
        }
    }

    /// <summary>
    /// The outcomes with every explained prototype's <see cref="PrototypeContribution.WithoutBox"/> read from the masked
    /// copies' outputs (this check's rows start at <paramref name="firstRow"/>), and <paramref name="verifyMs"/> added to
    /// each image's timings.
    /// </summary>
    public IReadOnlyList<BatchItemOutcome> Apply(IReadOnlyList<BatchItemOutcome> outcomes, NetworkOutputs outputs, int firstRow, double verifyMs)
    {
        var results = new BatchItemOutcome[outcomes.Count];
        for (var index = 0; index < outcomes.Count; index++)
        {
            if (outcomes[index].Classification is not { } classification)
            {
                results[index] = outcomes[index];
                continue;
            }
            var explanation = classification.Explanation;
            var probability = _probabilities[index];
            var prototypes = explanation.Prototypes.Select((prototype, i) =>
            {
                var without = Probability(outputs.LogitsOf(firstRow + _firstRows[index] + i), explanation.ClassIndex);
                return prototype with { WithoutBox = new BoxDeletion(without, probability - without) };
            }).ToArray();
            var timings = classification.Timings;
            results[index] = outcomes[index] with
            {
                Classification = classification with
                {
                    Explanation = explanation with { Prototypes = prototypes },
                    Timings = timings with { TotalMs = timings.TotalMs + verifyMs, VerifyMs = verifyMs },
                },
            };
        }
        return results;
    }

    /// <summary>Fills <paramref name="box"/> of every channel plane of one [C, H, W] image with that channel's colour.</summary>
    private static void Fill(Span<float> image, PixelBox box, float[] colour, int height, int width)
    {
        var plane = height * width;
        for (var c = 0; c < colour.Length; c++)
        {
            for (var y = box.Y; y < box.Y + box.Height; y++)
            {
                image.Slice(c * plane + y * width + box.X, box.Width).Fill(colour[c]);
            }
        }
    }

    /// <summary>The softmax probability of class <paramref name="classIndex"/> (the same arithmetic as the prediction's).</summary>
    private static double Probability(ReadOnlySpan<float> logits, int classIndex)
    {
        var probabilities = ArrayPool<double>.Shared.Rent(logits.Length);
        try
        {
            Softmax.Compute(logits, probabilities);
            return probabilities[classIndex];
        }
        finally
        {
            ArrayPool<double>.Shared.Return(probabilities);
        }
    }

    public void Dispose()
    {
        var input = Interlocked.Exchange(ref _input, null);
        if (input is not null) BundleSession.ReturnBuffer(input);
    }
}
