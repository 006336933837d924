using System.Buffers;
using ProtoPNet.Inference.Explanation;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Rendering;

/// <summary>
/// The reference implementation's overlay, as the trainer draws a prototype's activation.png: the activation map
/// upsampled bicubically to the image's size, min-max normalised, coloured with matplotlib's JET and blended as
/// 0.5 image + 0.3 colour.
/// </summary>
public static class HeatmapRenderer
{
    private static readonly PngEncoder Encoder = new() { CompressionLevel = PngCompressionLevel.BestSpeed, ColorType = PngColorType.Rgb };

    /// <summary>
    /// Renders the overlay at the image's own size and returns it as PNG bytes, in a buffer of
    /// <see cref="PngCapacity"/> (no copies while it grows, none at the end); the overlay is freed before it returns.
    /// </summary>
    public static ArraySegment<byte> RenderPng(Image<Rgb24> image, ActivationMap map)
    {
        using var overlay = Render(image, map);
        using var stream = new MemoryStream(PngCapacity(image.Width, image.Height));
        overlay.SaveAsPng(stream, Encoder);
        return stream.TryGetBuffer(out var png) ? png : throw new InvalidOperationException("A MemoryStream given its capacity exposes its buffer.");
    }

    /// <summary>
    /// The most bytes rendering an overlay holds for a <paramref name="width"/> x <paramref name="height"/> image and a map
    /// <paramref name="mapHeight"/> rows high: the overlay (3 a pixel), the map upsampled across (a float a column per map
    /// row, and one row), and the taps of both directions (4 indices and 4 weights, 48 bytes, per column and per row).
    /// </summary>
    public static long OverlayBytes(int width, int height, int mapHeight) =>
        3L * width * height + sizeof(float) * (BicubicUpsampler.PooledLength((long)width * mapHeight) + BicubicUpsampler.PooledLength(width))
        + BicubicUpsampler.Taps.RentedBytes(width) + BicubicUpsampler.Taps.RentedBytes(height);

    /// <summary>How a PNG is sent in JSON: a data URI of its base64.</summary>
    public const string PngDataUriPrefix = "data:image/png;base64,";

    /// <summary>The length of the data URI of <paramref name="pngBytes"/> PNG bytes, quoted as a JSON string.</summary>
    public static long QuotedPngDataUriLength(long pngBytes) => 2 + PngDataUriPrefix.Length + 4 * ((pngBytes + 2) / 3);

    /// <summary>
    /// Room for the PNG of a <paramref name="width"/> x <paramref name="height"/> RGB picture: its rows as stored (a filter
    /// byte and 3 a pixel), which compression at worst grows by a fraction of a percent, and room for the chunks around them.
    /// </summary>
    public static int PngCapacity(int width, int height)
    {
        var stored = (long)height * (3L * width + 1);
        return (int)Math.Min(Array.MaxLength, stored + stored / 100 + 64 * 1024);
    }

    /// <summary>The overlay at the image's own size.</summary>
    public static Image<Rgb24> Render(Image<Rgb24> image, ActivationMap map) => Render(image, map.Values, map.Height, map.Width);

    public static Image<Rgb24> Render(Image<Rgb24> image, ReadOnlySpan<float> map, int mapHeight, int mapWidth)
    {
        var width = image.Width;
        var height = image.Height;
        // Rows are produced one at a time so a large image never needs a full float map in memory. The taps and rows
        // are rented: a large upload's heatmaps would each allocate them anew (about 250 KB for 2000x2000, on the
        // large object heap).
        BicubicUpsampler.Taps? columns = null, rows = null;
        float[]? horizontal = null, rented = null;
        try
        {
            columns = BicubicUpsampler.Taps.Rent(mapWidth, width);
            rows = BicubicUpsampler.Taps.Rent(mapHeight, height);
            horizontal = ArrayPool<float>.Shared.Rent(mapHeight * width);
            rented = ArrayPool<float>.Shared.Rent(width);
            BicubicUpsampler.ResampleColumns(map, mapHeight, mapWidth, columns, horizontal.AsSpan(0, mapHeight * width));
            var row = rented.AsSpan(0, width);
            float min = float.PositiveInfinity, max = float.NegativeInfinity;
            for (var y = 0; y < height; y++)
            {
                BicubicUpsampler.CombineRows(horizontal, width, rows, y, row);
                foreach (var value in row)
                {
                    min = Math.Min(min, value);
                    max = Math.Max(max, value);
                }
            }
            var range = max - min;
            var inverseRange = range > 0 && float.IsFinite(range) ? 1f / range : 0f;

            var overlay = new Image<Rgb24>(width, height);
            try
            {
                PaintOverlay(image, overlay, horizontal, rows, rented, min, inverseRange);
            }
            catch
            {
                overlay.Dispose();
                throw;
            }
            return overlay;
        }
        finally
        {
            if (rented is not null) ArrayPool<float>.Shared.Return(rented);
            if (horizontal is not null) ArrayPool<float>.Shared.Return(horizontal);
            rows?.Return();
            columns?.Return();
        }
    }

    /// <summary>Each pixel of the overlay: the image's blended with the JET colour of the upsampled map there, min-max normalised (<paramref name="line"/>: a row's buffer).</summary>
    private static void PaintOverlay(Image<Rgb24> image, Image<Rgb24> overlay, float[] horizontal, BicubicUpsampler.Taps rows, float[] line, float min, float inverseRange)
    {
        var (width, height) = (image.Width, image.Height);
        image.ProcessPixelRows(overlay, (sourceRows, targetRows) =>
        {
            var row = line.AsSpan(0, width);
            for (var y = 0; y < height; y++)
            {
                BicubicUpsampler.CombineRows(horizontal, width, rows, y, row);
                var source = sourceRows.GetRowSpan(y);
                var target = targetRows.GetRowSpan(y);
                for (var x = 0; x < width; x++)
                {
                    var (r, g, b) = Jet((row[x] - min) * inverseRange);
                    target[x] = new Rgb24(Blend(source[x].R, r), Blend(source[x].G, g), Blend(source[x].B, b));
                }
            }
        });
    }

    /// <summary>
    /// The JET colour map as matplotlib draws it (the trainer's activation.png is drawn with it): dark blue (0) through
    /// cyan and yellow to dark red (1), in 256 steps, each the colour of matplotlib's segments at i / 255.
    /// </summary>
    public static (float R, float G, float B) Jet(float value)
    {
        var index = value > 0 ? (int)Math.Min(value * JetSteps, JetSteps - 1) : 0;   // NaN reads as 0
        return JetTable[index];
    }

    private const int JetSteps = 256;

    private static readonly (float R, float G, float B)[] JetTable = Enumerable.Range(0, JetSteps).Select(i =>
    {
        var x = i / (JetSteps - 1.0);
        return ((float)Segments(x, [0, 0.35, 0.66, 0.89, 1], [0, 0, 1, 1, 0.5]),
                (float)Segments(x, [0, 0.125, 0.375, 0.64, 0.91, 1], [0, 0, 1, 1, 0, 0]),
                (float)Segments(x, [0, 0.11, 0.34, 0.65, 1], [0.5, 1, 1, 0, 0]));
    }).ToArray();

    /// <summary>The piecewise-linear function through (<paramref name="knots"/>, <paramref name="values"/>) at <paramref name="x"/> in [0, 1].</summary>
    private static double Segments(double x, double[] knots, double[] values)
    {
        var k = 1;
        while (k < knots.Length - 1 && x > knots[k]) k++;
        return values[k - 1] + (values[k] - values[k - 1]) * (x - knots[k - 1]) / (knots[k] - knots[k - 1]);
    }

    private static byte Blend(byte image, float colour) => (byte)Math.Clamp(MathF.Round(0.5f * image + 0.3f * 255f * colour), 0f, 255f);
}
