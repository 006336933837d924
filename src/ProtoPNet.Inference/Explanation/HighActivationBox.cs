using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Inference.Explanation;

/// <summary>
/// The paper's high-activation box: the smallest rectangle holding every pixel whose (upsampled) activation is
/// at least the 95th percentile of the map. The percentile is numpy's default (linear interpolation between the
/// two nearest ranks), as the reference implementation uses <c>np.percentile</c>. Ties are all kept, so a map with
/// several equal maxima gets one box around all of them, and a flat map gets the whole map. NaN counts as the lowest
/// value and is never inside; a threshold that no pixel reaches (NaN, from infinite values) gives the whole map. A map
/// of 4,096 pixels or more (an upsampled 224x224 map has 50,176) is boxed from its highest tenth or so alone: the same
/// box for half the work.
/// </summary>
public static class HighActivationBox
{
    public const double DefaultPercentile = 95;

    /// <summary>numpy.percentile(values, p) with the 'linear' method, in linear time (selection, not a full sort); allocates its scratch (the tests' form).</summary>
    internal static double Percentile(ReadOnlySpan<float> values, double percentile) =>
        Percentile(values, percentile, new float[values.Length]);

    /// <summary>As <see cref="Percentile(ReadOnlySpan{float}, double)"/>, using <paramref name="scratch"/> (at least as long as the values) for the selection.</summary>
    public static double Percentile(ReadOnlySpan<float> values, double percentile, Span<float> scratch)
    {
        if (values.IsEmpty) throw new ArgumentException("no values", nameof(values));
        var work = scratch[..values.Length];
        CopyWithNaNLowest(values, work);
        var (lower, fraction) = RankOf(percentile, values.Length);
        return OrderStatistic(work, lower, fraction);
    }

    /// <summary>Where numpy's linear method reads: the order statistic at <c>Lower</c> and the share of the step to the next.</summary>
    private static (int Lower, double Fraction) RankOf(double percentile, int count)
    {
        var rank = percentile / 100.0 * (count - 1);
        var lower = (int)Math.Floor(rank);
        return (lower, rank - lower);
    }

    /// <summary>The interpolated order statistic at <paramref name="lower"/> + <paramref name="fraction"/> of <paramref name="work"/> (reordered; no NaN).</summary>
    private static double OrderStatistic(Span<float> work, int lower, double fraction)
    {
        var lowerValue = Select(work, lower);
        if (fraction == 0 || lower + 1 >= work.Length) return lowerValue;
        // After selection every element right of 'lower' is >= it, so the next order statistic is their minimum.
        var upperValue = float.PositiveInfinity;
        for (var j = lower + 1; j < work.Length; j++) upperValue = Math.Min(upperValue, work[j]);
        return lowerValue + (upperValue - (double)lowerValue) * fraction;
    }

    /// <summary>The values with NaN as the lowest value, a vector at a time (NaN is the one value unequal to itself).</summary>
    private static void CopyWithNaNLowest(ReadOnlySpan<float> values, Span<float> work)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var lowest = new Vector<float>(float.NegativeInfinity);
            for (; i <= work.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var value = new Vector<float>(values[i..]);
                Vector.ConditionalSelect(Vector.Equals(value, value), value, lowest).CopyTo(work[i..]);
            }
        }
        for (; i < work.Length; i++) work[i] = float.IsNaN(values[i]) ? float.NegativeInfinity : values[i];
    }

    /// <summary>
    /// Floyd-Rivest selection: puts the k-th smallest value at index k, smaller ones left of it and larger ones right.
    /// It first narrows the range to a small sample's neighbourhood of the k-th value, so it reads the values about once
    /// (quickselect reads them three or four times): the box of every explained prototype selects in its upsampled map.
    /// </summary>
    private static float Select(Span<float> values, int k)
    {
        Select(values, k, 0);
        return values[k];
    }

    /// <summary>Selection within <paramref name="values"/>[<paramref name="left"/>..] (a sample's neighbourhood recurses on a shorter span).</summary>
    private static void Select(Span<float> values, int k, int left)
    {
        var right = values.Length - 1;
        while (right > left)
        {
            if (right - left > 600)
            {
                // Recurse on a range that holds the k-th value with high probability, sized from a sample of the values.
                double n = right - left + 1;
                double i = k - left + 1;
                var z = Math.Log(n);
                var sample = 0.5 * Math.Exp(2 * z / 3);
                var deviation = 0.5 * Math.Sqrt(z * sample * (n - sample) / n) * Math.Sign(i - n / 2);
                var newLeft = Math.Max(left, (int)(k - i * sample / n + deviation));
                var newRight = Math.Min(right, (int)(k + (n - i) * sample / n + deviation));
                Select(values[..(newRight + 1)], k, newLeft);
            }
            var pivot = values[k];
            int low = left, high = right;
            (values[left], values[k]) = (values[k], values[left]);
            if (values[right] > pivot) (values[right], values[left]) = (values[left], values[right]);
            while (low < high)
            {
                (values[low], values[high]) = (values[high], values[low]);
                low++;
                high--;
                while (values[low] < pivot) low++;
                while (values[high] > pivot) high--;
            }
            if (values[left] == pivot)
            {
                (values[left], values[high]) = (values[high], values[left]);
            }
            else
            {
                high++;
                (values[high], values[right]) = (values[right], values[high]);
            }
            if (high <= k) left = high + 1;
            if (k <= high) right = high - 1;
        }
    }

    /// <summary>The box in the map's own pixels; allocates its scratch (the tests' form).</summary>
    internal static PixelBox Find(ReadOnlySpan<float> map, int height, int width, double percentile = DefaultPercentile) =>
        Find(map, height, width, percentile, new float[map.Length]);

    /// <summary>As <see cref="Find(ReadOnlySpan{float}, int, int, double)"/>, with a caller's scratch buffer (at least the map's length).</summary>
    public static PixelBox Find(ReadOnlySpan<float> map, int height, int width, double percentile, Span<float> scratch)
    {
        if (FindAmongHighest(map, height, width, percentile, scratch) is { } box) return box;
        var threshold = Percentile(map, percentile, scratch);
        // Most rows hold no pixel at the threshold (5 % of the pixels do): a vector test skips them. The float bound
        // is rounded down, so it never skips a pixel that the exact comparison below would keep.
        var bound = (float)threshold > threshold ? MathF.BitDecrement((float)threshold) : (float)threshold;
        var extent = Extent.Empty;
        for (var y = 0; y < height; y++)
        {
            var row = map.Slice(y * width, width);
            if (!MayReach(row, bound)) continue;
            for (var x = 0; x < width; x++)
            {
                if (row[x] >= threshold) extent = extent.With(y, x);   // NaN is never hot
            }
        }
        return extent.ToBox(width, height);
    }

    /// <summary>The rows and columns the hot pixels span so far.</summary>
    private readonly record struct Extent(int Top, int Bottom, int Left, int Right)
    {
        public static Extent Empty => new(int.MaxValue, -1, int.MaxValue, -1);

        public Extent With(int y, int x) => new(Math.Min(Top, y), Math.Max(Bottom, y), Math.Min(Left, x), Math.Max(Right, x));

        /// <summary>The box; the whole map when no pixel was hot (a NaN threshold: the maximum always reaches any other).</summary>
        public PixelBox ToBox(int width, int height) =>
            Bottom < 0 ? new PixelBox(0, 0, width, height) : new PixelBox(Left, Top, Right - Left + 1, Bottom - Top + 1);
    }

    /// <summary>Maps shorter than this are boxed by selecting among all their values: it costs little.</summary>
    private const int MinValuesToFilter = 4096;

    /// <summary>Values read, evenly spaced, to estimate a threshold that only the highest values reach.</summary>
    private const int SampleSize = 128;

    /// <summary>
    /// The box found from the map's highest values alone, the usual case: the threshold and the box depend only on the
    /// values from the percentile's rank up (5 % of them). A threshold estimated from a sample keeps about twice that share
    /// (into the first half of <paramref name="scratch"/>, their positions into the second); when the kept values hold
    /// every rank from the percentile's up, the percentile is selected among them and the box drawn around those of them
    /// at least it, the same box as from all values. Null, having decided nothing, when the estimate kept too few or
    /// more than half the map.
    /// </summary>
    private static PixelBox? FindAmongHighest(ReadOnlySpan<float> map, int height, int width, double percentile, Span<float> scratch)
    {
        var count = map.Length;
        if (count < MinValuesToFilter) return null;
        var (lower, fraction) = RankOf(percentile, count);
        if (EstimateThreshold(map, count - lower) is not { } estimate) return null;
        var capacity = count / 2;
        var values = scratch[..capacity];
        var positions = MemoryMarshal.Cast<float, int>(scratch.Slice(capacity, capacity));
        var kept = KeepAtLeast(map, estimate, values, positions);
        if (kept < 0) return null;
        // Every value left out is below every kept one (NaN included): the kept ones are the top ranks, if enough.
        var left = count - kept;
        if (left > lower) return null;
        var threshold = OrderStatistic(values[..kept], lower - left, fraction);
        var extent = Extent.Empty;
        foreach (var position in positions[..kept])
        {
            if (map[position] >= threshold) extent = extent.With(position / width, position % width);
        }
        return extent.ToBox(width, height);
    }

    /// <summary>
    /// A value that about twice <paramref name="wanted"/> of the map's values (and a margin) reach, from a sorted sample;
    /// null when that would be most of the map or only minus infinity (NaN) does.
    /// </summary>
    private static float? EstimateThreshold(ReadOnlySpan<float> map, int wanted)
    {
        var keepFromSample = (int)Math.Min(SampleSize, 2L * wanted * SampleSize / map.Length + 4);
        if (keepFromSample > SampleSize / 2) return null;
        Span<float> sample = stackalloc float[SampleSize];
        var stride = map.Length / SampleSize;
        for (var i = 0; i < SampleSize; i++)
        {
            var value = map[i * stride];
            sample[i] = float.IsNaN(value) ? float.NegativeInfinity : value;
        }
        sample.Sort();
        var estimate = sample[SampleSize - keepFromSample];
        return float.IsNegativeInfinity(estimate) ? null : estimate;
    }

    /// <summary>
    /// Copies the values at least <paramref name="threshold"/>, and their positions, in map order; how many, or -1 when
    /// more than <paramref name="values"/> holds. A vector of the map at a time, most of which no value reaches.
    /// </summary>
    private static int KeepAtLeast(ReadOnlySpan<float> map, float threshold, Span<float> values, Span<int> positions)
    {
        var kept = 0;
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var bound = Vector256.Create(threshold);
            for (; i <= map.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var reached = Vector256.GreaterThanOrEqual(Vector256.Create(map.Slice(i, Vector256<float>.Count)), bound).ExtractMostSignificantBits();
                if (reached == 0) continue;
                if (kept + Vector256<float>.Count > values.Length) return -1;
                for (; reached != 0; reached &= reached - 1)
                {
                    var position = i + BitOperations.TrailingZeroCount(reached);
                    values[kept] = map[position];
                    positions[kept++] = position;
                }
            }
        }
        for (; i < map.Length; i++)
        {
            if (!(map[i] >= threshold)) continue;
            if (kept == values.Length) return -1;
            values[kept] = map[i];
            positions[kept++] = i;
        }
        return kept;
    }

    /// <summary>Whether any value of the row is at least <paramref name="bound"/> (NaN never is); true when in doubt.</summary>
    private static bool MayReach(ReadOnlySpan<float> row, float bound)
    {
        if (!Vector.IsHardwareAccelerated || row.Length < Vector<float>.Count) return true;
        var bounds = new Vector<float>(bound);
        var x = 0;
        for (; x <= row.Length - Vector<float>.Count; x += Vector<float>.Count)
        {
            if (Vector.GreaterThanOrEqualAny(new Vector<float>(row[x..]), bounds)) return true;
        }
        for (; x < row.Length; x++)
        {
            if (row[x] >= bound) return true;
        }
        return false;
    }

    /// <summary>
    /// Maps a box from a <paramref name="fromWidth"/> x <paramref name="fromHeight"/> grid onto a stretched
    /// <paramref name="toWidth"/> x <paramref name="toHeight"/> image: every target pixel that overlaps a box pixel is inside.
    /// </summary>
    public static PixelBox Scale(PixelBox box, int fromWidth, int fromHeight, int toWidth, int toHeight)
    {
        var sx = (double)toWidth / fromWidth;
        var sy = (double)toHeight / fromHeight;
        var left = Math.Clamp((int)Math.Floor(box.X * sx + 1e-9), 0, toWidth - 1);
        var top = Math.Clamp((int)Math.Floor(box.Y * sy + 1e-9), 0, toHeight - 1);
        var right = Math.Clamp((int)Math.Ceiling((box.X + box.Width) * sx - 1e-9) - 1, left, toWidth - 1);
        var bottom = Math.Clamp((int)Math.Ceiling((box.Y + box.Height) * sy - 1e-9) - 1, top, toHeight - 1);
        return new PixelBox(left, top, right - left + 1, bottom - top + 1);
    }
}
