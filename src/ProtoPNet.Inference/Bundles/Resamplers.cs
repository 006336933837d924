using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;

namespace ProtoPNet.Inference.Bundles;

/// <summary>PIL's resampling filters, by the names the manifest's <c>input.interpolation</c> uses.</summary>
public enum ResampleFilter { Nearest, Box, Bilinear, Hamming, Bicubic, Lanczos }

/// <summary>
/// Resizes 8-bit images exactly as PIL's <c>Image.resize</c> does (Pillow's Resample.c), because the trainer resizes
/// with PIL and the network must see the pixels it was trained on. ImageSharp's resamplers compute in floating point
/// without PIL's 8-bit rounding between the row and the column pass (PIL weights are 22-bit fixed point): measured on
/// noisy pictures, about one value in twenty came out one step off, and a bicubic enlargement up to nine steps.
/// </summary>
public static class Resamplers
{
    public const string Default = "bilinear";

    /// <summary>Bits of the fixed-point weights: 32 bits less 8 for the pixel value and 2 for the sign and the sum.</summary>
    private const int PrecisionBits = 32 - 8 - 2;

    public static bool TryGet(string? interpolation, out ResampleFilter filter)
    {
        ResampleFilter? found = (interpolation ?? Default).Trim().ToLowerInvariant() switch
        {
            "bilinear" or "linear" or "triangle" => ResampleFilter.Bilinear,
            "bicubic" or "cubic" => ResampleFilter.Bicubic,
            "nearest" => ResampleFilter.Nearest,
            "lanczos" => ResampleFilter.Lanczos,
            "box" => ResampleFilter.Box,
            "hamming" => ResampleFilter.Hamming,
            _ => null,
        };
        filter = found ?? ResampleFilter.Bilinear;
        return found is not null;
    }

    /// <summary>The filter a manifest's <c>input.interpolation</c> names, by its own name (<c>linear</c> is <c>bilinear</c>); what the API reports.</summary>
    public static string CanonicalName(string? interpolation)
    {
        TryGet(interpolation, out var filter);
        return filter.ToString().ToLowerInvariant();
    }

    /// <summary>
    /// Stretches interleaved 8-bit pixels (<paramref name="channels"/> bytes per pixel, rows without padding) from
    /// <paramref name="width"/> x <paramref name="height"/> to <paramref name="outWidth"/> x <paramref name="outHeight"/>,
    /// into <paramref name="destination"/> (outWidth x outHeight x channels bytes).
    /// </summary>
    public static void Resize(ReadOnlySpan<byte> pixels, int width, int height, int channels, int outWidth, int outHeight, ResampleFilter filter,
        Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, outWidth * outHeight * channels, nameof(destination));
        if (width == outWidth && height == outHeight)
        {
            pixels[..(width * height * channels)].CopyTo(destination);
            return;
        }
        if (filter == ResampleFilter.Nearest)
        {
            ResizeNearest(pixels, width, height, channels, outWidth, outHeight, destination);
            return;
        }

        var (support, kernel) = Kernel(filter);
        if (outHeight == height)
        {
            ResampleRows(pixels[..(height * width * channels)], width, height, channels, outWidth, Coefficients(width, outWidth, support, kernel), destination);
            return;
        }
        var vertical = Coefficients(height, outHeight, support, kernel);
        if (outWidth == width)
        {
            ResampleColumns(pixels, outWidth, channels, outHeight, vertical, destination);
            return;
        }
        var horizontal = Coefficients(width, outWidth, support, kernel);
        // Only the source rows the vertical pass reads: PIL crops the same way, so the rounding matches row for row.
        var (firstRow, lastRow) = (vertical.Start[0], vertical.Start[outHeight - 1] + vertical.Count[outHeight - 1]);
        // The row pass's result is (rows read) x outWidth: the decoder's side limit (ImageLimits.MaxSide) keeps it small.
        var intermediate = (long)(lastRow - firstRow) * outWidth * channels;
        if (intermediate > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(height),
                $"Resizing {width}x{height} to {outWidth}x{outHeight} needs {intermediate} bytes between its passes, more than an array holds.");
        }
        var rows = ArrayPool<byte>.Shared.Rent((int)intermediate);
        try
        {
            ResampleRows(pixels[(firstRow * width * channels)..(lastRow * width * channels)], width, lastRow - firstRow, channels, outWidth, horizontal, rows);
            for (var y = 0; y < outHeight; y++) vertical.Start[y] -= firstRow;
            ResampleColumns(rows, outWidth, channels, outHeight, vertical, destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rows);
        }
    }

    private static (double Support, Func<double, double> Kernel) Kernel(ResampleFilter filter) => filter switch
    {
        ResampleFilter.Box => (0.5, x => x > -0.5 && x <= 0.5 ? 1.0 : 0.0),
        ResampleFilter.Bilinear => (1.0, x => Math.Abs(x) < 1.0 ? 1.0 - Math.Abs(x) : 0.0),
        ResampleFilter.Hamming => (1.0, x =>
        {
            x = Math.Abs(x);
            if (x == 0.0) return 1.0;
            if (x >= 1.0) return 0.0;
            x *= Math.PI;
            return Math.Sin(x) / x * (0.54 + 0.46 * Math.Cos(x));
        }),
        ResampleFilter.Bicubic => (2.0, Bicubic),
        ResampleFilter.Lanczos => (3.0, x => x >= -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3.0) : 0.0),
        _ => throw new ArgumentOutOfRangeException(nameof(filter)),
    };

    /// <summary>Keys' cubic with a = -0.5, as PIL.</summary>
    private static double Bicubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    /// <summary>For each output position: the first input position, how many follow, and their fixed-point weights.</summary>
    private sealed record Taps(int[] Start, int[] Count, int[] Weights, int Stride);

    private static Taps Coefficients(int inSize, int outSize, double support, Func<double, double> kernel)
    {
        var scale = (double)inSize / outSize;
        // Shrinking widens the kernel by the scale, so every input pixel contributes (antialiasing).
        var filterScale = Math.Max(scale, 1.0);
        support *= filterScale;
        var stride = (int)Math.Ceiling(support) * 2 + 1;
        var starts = new int[outSize];
        var counts = new int[outSize];
        var weights = new int[outSize * stride];
        var taps = new double[stride];
        for (var o = 0; o < outSize; o++)
        {
            var center = (o + 0.5) * scale;
            var first = Math.Max(0, (int)(center - support + 0.5));
            var count = Math.Min(inSize, (int)(center + support + 0.5)) - first;
            var total = 0.0;
            for (var i = 0; i < count; i++)
            {
                taps[i] = kernel((i + first - center + 0.5) / filterScale);
                total += taps[i];
            }
            for (var i = 0; i < count; i++)
            {
                var weight = total != 0.0 ? taps[i] / total : taps[i];
                // Rounded half away from zero, as PIL's normalize_coeffs_8bpc.
                weights[o * stride + i] = (int)(weight < 0 ? -0.5 + weight * (1 << PrecisionBits) : 0.5 + weight * (1 << PrecisionBits));
            }
            starts[o] = first;
            counts[o] = count;
        }
        return new Taps(starts, counts, weights, stride);
    }

    /// <summary>The fixed-point sum back to 8 bits: rounded (the half is added up front), clamped to 0..255.</summary>
    private static byte Clip(int sum)
    {
        var value = sum >> PrecisionBits;
        return (byte)(value < 0 ? 0 : value > 255 ? 255 : value);
    }

    /// <summary>The row pass: each output pixel a weighted sum of neighbouring pixels in its row (hot loop: no bounds checks).</summary>
    private static void ResampleRows(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, Taps taps, Span<byte> destination)
    {
        const int half = 1 << (PrecisionBits - 1);
        ref var weights = ref MemoryMarshal.GetArrayDataReference(taps.Weights);
        for (var y = 0; y < height; y++)
        {
            ref var row = ref Unsafe.Add(ref MemoryMarshal.GetReference(source), y * width * channels);
            var outRow = destination.Slice(y * outWidth * channels, outWidth * channels);
            for (var x = 0; x < outWidth; x++)
            {
                ref var pixel = ref Unsafe.Add(ref row, taps.Start[x] * channels);
                ref var weight = ref Unsafe.Add(ref weights, x * taps.Stride);
                var count = taps.Count[x];
                // Four bytes at a time (R, G, B and the next pixel's first byte, weighted but never stored), where a fourth byte exists.
                if (channels == 3 && Vector128.IsHardwareAccelerated && (y * width + taps.Start[x] + count) * 3 < source.Length)
                {
                    var sum = Vector128.Create(half);
                    for (var i = 0; i < count; i++)
                    {
                        var four = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref pixel, 3 * i))).AsByte();
                        sum += Vector128.WidenLower(Vector128.WidenLower(four)).AsInt32() * Unsafe.Add(ref weight, i);
                    }
                    var clipped = Vector128.Min(Vector128.Max(Vector128.ShiftRightArithmetic(sum, PrecisionBits), Vector128<int>.Zero), Vector128.Create(255));
                    outRow[3 * x] = (byte)clipped.GetElement(0);
                    outRow[3 * x + 1] = (byte)clipped.GetElement(1);
                    outRow[3 * x + 2] = (byte)clipped.GetElement(2);
                    continue;
                }
                if (channels == 3)
                {
                    int red = half, green = half, blue = half;
                    for (var i = 0; i < count; i++)
                    {
                        var w = Unsafe.Add(ref weight, i);
                        red += Unsafe.Add(ref pixel, 3 * i) * w;
                        green += Unsafe.Add(ref pixel, 3 * i + 1) * w;
                        blue += Unsafe.Add(ref pixel, 3 * i + 2) * w;
                    }
                    outRow[3 * x] = Clip(red);
                    outRow[3 * x + 1] = Clip(green);
                    outRow[3 * x + 2] = Clip(blue);
                    continue;
                }
                for (var c = 0; c < channels; c++)
                {
                    var sum = half;
                    for (var i = 0; i < count; i++) sum += Unsafe.Add(ref pixel, i * channels + c) * Unsafe.Add(ref weight, i);
                    outRow[x * channels + c] = Clip(sum);
                }
            }
        }
    }

    /// <summary>The column pass, a row at a time: each output row a weighted sum of whole source rows (sequential reads, vectorised).</summary>
    private static void ResampleColumns(ReadOnlySpan<byte> source, int width, int channels, int outHeight, Taps taps, Span<byte> destination)
    {
        const int half = 1 << (PrecisionBits - 1);
        var rowLength = width * channels;
        var sums = ArrayPool<int>.Shared.Rent(rowLength);
        try
        {
            for (var y = 0; y < outHeight; y++)
            {
                sums.AsSpan(0, rowLength).Fill(half);
                var weights = taps.Weights.AsSpan(y * taps.Stride, taps.Count[y]);
                for (var i = 0; i < weights.Length; i++) AddWeightedRow(source.Slice((taps.Start[y] + i) * rowLength, rowLength), weights[i], sums);
                var outRow = destination.Slice(y * rowLength, rowLength);
                var x = 0;
                if (Vector.IsHardwareAccelerated)
                {
                    for (; x <= rowLength - Vector<byte>.Count; x += Vector<byte>.Count)
                    {
                        var low = Vector.Narrow(Clip(sums, x), Clip(sums, x + Vector<int>.Count));
                        var high = Vector.Narrow(Clip(sums, x + 2 * Vector<int>.Count), Clip(sums, x + 3 * Vector<int>.Count));
                        Vector.Narrow(low, high).CopyTo(outRow[x..]);
                    }
                }
                for (; x < rowLength; x++) outRow[x] = Clip(sums[x]);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(sums);
        }
    }

    /// <summary><see cref="Clip(int)"/> for a vector of sums, as unsigned values 0..255 ready to narrow to bytes.</summary>
    private static Vector<uint> Clip(int[] sums, int at)
    {
        var value = Vector.ShiftRightArithmetic(new Vector<int>(sums, at), PrecisionBits);
        return Vector.AsVectorUInt32(Vector.Min(Vector.Max(value, Vector<int>.Zero), new Vector<int>(255)));
    }

    /// <summary>sums[x] += row[x] * weight, a vector of bytes at a time (integer sums: the order does not change them).</summary>
    private static void AddWeightedRow(ReadOnlySpan<byte> row, int weight, int[] sums)
    {
        var x = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var weights = new Vector<int>(weight);
            var sumSpan = MemoryMarshal.Cast<int, Vector<int>>(sums.AsSpan(0, row.Length - row.Length % Vector<byte>.Count));
            var v = 0;
            for (; x <= row.Length - Vector<byte>.Count; x += Vector<byte>.Count)
            {
                Vector.Widen(new Vector<byte>(row[x..]), out var low, out var high);
                Vector.Widen(low, out var a, out var b);
                Vector.Widen(high, out var c, out var d);
                sumSpan[v] += Vector.AsVectorInt32(a) * weights;
                sumSpan[v + 1] += Vector.AsVectorInt32(b) * weights;
                sumSpan[v + 2] += Vector.AsVectorInt32(c) * weights;
                sumSpan[v + 3] += Vector.AsVectorInt32(d) * weights;
                v += 4;
            }
        }
        for (; x < row.Length; x++) sums[x] += row[x] * weight;
    }

    /// <summary>PIL's nearest: the source pixel under each output pixel's centre, floor((o + 0.5) * scale).</summary>
    private static void ResizeNearest(ReadOnlySpan<byte> pixels, int width, int height, int channels, int outWidth, int outHeight, Span<byte> result)
    {
        var xScale = (double)width / outWidth;
        var yScale = (double)height / outHeight;
        for (var y = 0; y < outHeight; y++)
        {
            var sourceY = Math.Min(height - 1, (int)Math.Floor((y + 0.5) * yScale));
            for (var x = 0; x < outWidth; x++)
            {
                var sourceX = Math.Min(width - 1, (int)Math.Floor((x + 0.5) * xScale));
                pixels.Slice((sourceY * width + sourceX) * channels, channels).CopyTo(result.Slice((y * outWidth + x) * channels, channels));
            }
        }
    }
}
