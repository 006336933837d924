using System.Buffers;
using System.Numerics;

namespace ProtoPNet.Inference.Explanation;

/// <summary>
/// Bicubic resampling exactly as PyTorch's <c>F.interpolate(mode='bicubic', align_corners=False)</c>:
/// the Keys cubic convolution kernel with a = -0.75, source coordinate <c>(i + 0.5) * in / out - 0.5</c>
/// (not clamped at 0), and the four taps clamped to the border. The kernel is separable, so rows and
/// columns are resampled in two passes.
/// </summary>
public static class BicubicUpsampler
{
    public const double A = -0.75;

    /// <summary>The length of the array the shared pools hand out for <paramref name="length"/> elements (a power of two), for counting what a rent holds.</summary>
    public static long PooledLength(long length) => length <= 1 ? length : (long)BitOperations.RoundUpToPowerOf2((ulong)length);

    /// <summary>Resamples a row-major <paramref name="inHeight"/> x <paramref name="inWidth"/> map to <paramref name="outHeight"/> x <paramref name="outWidth"/>; allocates its answer and taps (the tests' form).</summary>
    internal static float[] Resize(ReadOnlySpan<float> map, int inHeight, int inWidth, int outHeight, int outWidth)
    {
        var result = new float[outHeight * outWidth];
        Resize(map, inHeight, inWidth, outHeight, outWidth, result);
        return result;
    }

    /// <summary>As <see cref="Resize(ReadOnlySpan{float}, int, int, int, int)"/>, into a caller's buffer of at least outHeight x outWidth.</summary>
    internal static void Resize(ReadOnlySpan<float> map, int inHeight, int inWidth, int outHeight, int outWidth, Span<float> destination) =>
        Resize(map, Plan.For(inHeight, inWidth, outHeight, outWidth), destination);

    /// <summary>As <see cref="Resize(ReadOnlySpan{float}, int, int, int, int)"/> with taps worked out once for every map of
    /// the plan's size, into a caller's buffer of at least outHeight x outWidth: allocates nothing.</summary>
    public static void Resize(ReadOnlySpan<float> map, Plan plan, Span<float> destination)
    {
        var (inHeight, inWidth, outHeight, outWidth) = (plan.InHeight, plan.InWidth, plan.OutHeight, plan.OutWidth);
        if (map.Length < inHeight * inWidth) throw new ArgumentException($"the map has {map.Length} values, the plan needs {inHeight} x {inWidth}", nameof(map));
        // Pass 1: every input row resampled to the output width (a feature map has few rows: this pass is small).
        var horizontal = ArrayPool<float>.Shared.Rent(inHeight * outWidth);
        try
        {
            for (var y = 0; y < inHeight; y++) ResampleRow(map.Slice(y * inWidth, inWidth), plan.Columns, horizontal.AsSpan(y * outWidth, outWidth));
            // Pass 2: every output row from four resampled input rows.
            for (var y = 0; y < outHeight; y++) CombineRows(horizontal, outWidth, plan.Rows, y, destination.Slice(y * outWidth, outWidth));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(horizontal);
        }
    }

    /// <summary>
    /// Resamples the columns of a map with <paramref name="columns"/> (from <paramref name="inWidth"/> to the destination's
    /// width) into <paramref name="destination"/>, <paramref name="inHeight"/> rows of that width; used with
    /// <see cref="CombineRows"/> to produce one output row at a time.
    /// </summary>
    public static void ResampleColumns(ReadOnlySpan<float> map, int inHeight, int inWidth, Taps columns, Span<float> destination)
    {
        var outWidth = columns.Count;
        if (destination.Length != inHeight * outWidth) throw new ArgumentException($"the destination has {destination.Length} values, not {inHeight} rows of {outWidth}", nameof(destination));
        for (var y = 0; y < inHeight; y++) ResampleRow(map.Slice(y * inWidth, inWidth), columns, destination.Slice(y * outWidth, outWidth));
    }

    internal static void ResampleRow(ReadOnlySpan<float> source, Taps taps, Span<float> destination)
    {
        for (var x = 0; x < destination.Length; x++)
        {
            var i = x * 4;
            destination[x] = (float)(
                taps.Weights[i] * source[taps.Indices[i]] + taps.Weights[i + 1] * source[taps.Indices[i + 1]] +
                taps.Weights[i + 2] * source[taps.Indices[i + 2]] + taps.Weights[i + 3] * source[taps.Indices[i + 3]]);
        }
    }

    internal static void CombineRows(float[] horizontal, int width, Taps rows, int y, Span<float> destination)
    {
        var i = y * 4;
        var r0 = horizontal.AsSpan(rows.Indices[i] * width, width);
        var r1 = horizontal.AsSpan(rows.Indices[i + 1] * width, width);
        var r2 = horizontal.AsSpan(rows.Indices[i + 2] * width, width);
        var r3 = horizontal.AsSpan(rows.Indices[i + 3] * width, width);
        double w0 = rows.Weights[i], w1 = rows.Weights[i + 1], w2 = rows.Weights[i + 2], w3 = rows.Weights[i + 3];
        var x = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // The same double arithmetic in the same order as the scalar loop below (multiplies and adds, never fused),
            // a vector of floats at a time: the values are equal to the last bit.
            var (v0, v1, v2, v3) = (new Vector<double>(w0), new Vector<double>(w1), new Vector<double>(w2), new Vector<double>(w3));
            for (; x <= width - Vector<float>.Count; x += Vector<float>.Count)
            {
                Vector.Widen(new Vector<float>(r0[x..]), out var low0, out var high0);
                Vector.Widen(new Vector<float>(r1[x..]), out var low1, out var high1);
                Vector.Widen(new Vector<float>(r2[x..]), out var low2, out var high2);
                Vector.Widen(new Vector<float>(r3[x..]), out var low3, out var high3);
                var low = v0 * low0 + v1 * low1 + v2 * low2 + v3 * low3;
                var high = v0 * high0 + v1 * high1 + v2 * high2 + v3 * high3;
                Vector.Narrow(low, high).CopyTo(destination[x..]);
            }
        }
        for (; x < width; x++) destination[x] = (float)(w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x]);
    }

    /// <summary>
    /// The taps of one resize, from <paramref name="InHeight"/> x <paramref name="InWidth"/> to
    /// <paramref name="OutHeight"/> x <paramref name="OutWidth"/>: a model resizes every prototype's map from its feature
    /// grid to its input size, so it works them out once (48 bytes per output row and column) instead of per map.
    /// </summary>
    public sealed record Plan(int InHeight, int InWidth, int OutHeight, int OutWidth, Taps Rows, Taps Columns)
    {
        public static Plan For(int inHeight, int inWidth, int outHeight, int outWidth) =>
            new(inHeight, inWidth, outHeight, outWidth, Taps.For(inHeight, outHeight), Taps.For(inWidth, outWidth));
    }

    /// <summary>For each output position the four source indices (border-clamped) and their kernel weights.</summary>
    public sealed class Taps
    {
        public required int[] Indices { get; init; }
        public required double[] Weights { get; init; }

        /// <summary>The output positions these taps are for (rented arrays may be longer).</summary>
        public required int Count { get; init; }

        private bool _rented;

        /// <summary>What renting the taps of <paramref name="outSize"/> positions may take: 4 indices and 4 weights each, in arrays of a power of two.</summary>
        public static long RentedBytes(int outSize) => PooledLength(4L * outSize) * (sizeof(int) + sizeof(double));

        public static Taps For(int inSize, int outSize) => Fill(inSize, outSize, new int[outSize * 4], new double[outSize * 4], rented: false);

        /// <summary>As <see cref="For"/>, in arrays rented from the shared pools (perhaps longer than needed): <see cref="Return"/> them when done.</summary>
        public static Taps Rent(int inSize, int outSize)
        {
            if (inSize < 1 || outSize < 1) throw new ArgumentOutOfRangeException(nameof(outSize), $"taps from {inSize} to {outSize} positions");
            return Fill(inSize, outSize, ArrayPool<int>.Shared.Rent(outSize * 4), ArrayPool<double>.Shared.Rent(outSize * 4), rented: true);
        }

        /// <summary>Gives rented arrays back to their pools, once (a second return would hand one array to two renters); nothing for taps of <see cref="For"/>.</summary>
        public void Return()
        {
            if (!_rented) return;
            _rented = false;
            ArrayPool<int>.Shared.Return(Indices);
            ArrayPool<double>.Shared.Return(Weights);
        }

        private static Taps Fill(int inSize, int outSize, int[] indices, double[] weights, bool rented)
        {
            var scale = (double)inSize / outSize;
            for (var o = 0; o < outSize; o++)
            {
                var source = (o + 0.5) * scale - 0.5;
                var floor = Math.Floor(source);
                var t = source - floor;
                var first = (int)floor - 1;
                CubicWeights(t, weights.AsSpan(o * 4, 4));
                for (var k = 0; k < 4; k++) indices[o * 4 + k] = Math.Clamp(first + k, 0, inSize - 1);
            }
            return new Taps { Indices = indices, Weights = weights, Count = outSize, _rented = rented };
        }
    }

    /// <summary>Weights of the taps at distances 1 + t, t, 1 - t and 2 - t (PyTorch's get_cubic_upsample_coefficients).</summary>
    internal static void CubicWeights(double t, Span<double> weights)
    {
        var x1 = t;
        weights[0] = CubicFar(x1 + 1.0);
        weights[1] = CubicNear(x1);
        var x2 = 1.0 - t;
        weights[2] = CubicNear(x2);
        weights[3] = CubicFar(x2 + 1.0);
    }

    private static double CubicNear(double x) => ((A + 2) * x - (A + 3)) * x * x + 1;

    private static double CubicFar(double x) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}
