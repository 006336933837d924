using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Tests;

public class HeatmapRendererTests
{
    /// <summary>
    /// The drawing budget's count of a heatmap covers what it rents, which the pools round up to a power of two (a
    /// 2049x1025 heatmap rents 376,832 bytes beside its overlay where 213,120 were asked for).
    /// </summary>
    [Fact]
    public void TheBudgetCountsWhatAHeatmapRents()
    {
        var (width, height, mapHeight) = (2049, 1025, 7);
        var columns = BicubicUpsampler.Taps.Rent(7, width);
        var rows = BicubicUpsampler.Taps.Rent(mapHeight, height);
        var horizontal = System.Buffers.ArrayPool<float>.Shared.Rent(mapHeight * width);
        var row = System.Buffers.ArrayPool<float>.Shared.Rent(width);
        try
        {
            long Taps(BicubicUpsampler.Taps taps) => 4L * taps.Indices.Length + 8L * taps.Weights.Length;
            var rented = 3L * width * height + 4L * (horizontal.Length + row.Length) + Taps(columns) + Taps(rows);
            Assert.True(HeatmapRenderer.OverlayBytes(width, height, mapHeight) >= rented,
                $"{HeatmapRenderer.OverlayBytes(width, height, mapHeight)} counted, {rented} held");
            Assert.Equal((width, height), (columns.Count, rows.Count));
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(row);
            System.Buffers.ArrayPool<float>.Shared.Return(horizontal);
            rows.Return();
            columns.Return();
        }
        // Rented taps may be longer than asked: a destination of another width than theirs is refused, not read with stale taps.
        var taps = BicubicUpsampler.Taps.Rent(3, 5);
        try
        {
            Assert.Throws<ArgumentException>(() => BicubicUpsampler.ResampleColumns(new float[6], 2, 3, taps, new float[12]));
        }
        finally
        {
            taps.Return();
        }
    }

    /// <summary>
    /// A heatmap rents its taps and rows: each of a large upload's heatmaps allocated them anew (about 250 KB for
    /// 2000x2000, on the large object heap), outside the memory budget's count of a drawing.
    /// </summary>
    [Fact]
    public void AHeatmapAllocatesNothingThatGrowsWithTheImage()
    {
        using var image = new Image<Rgb24>(2000, 1500);
        var map = new ActivationMap(Enumerable.Range(0, 49).Select(i => i / 49f).ToArray(), 7, 7);
        for (var i = 0; i < 2; i++) HeatmapRenderer.Render(image, map).Dispose();   // the pools and the decoder warmed

        var before = GC.GetAllocatedBytesForCurrentThread();
        HeatmapRenderer.Render(image, map).Dispose();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 16 * 1024, $"a 2000x1500 heatmap allocated {allocated} bytes");
    }

    [Theory]
    [InlineData(300, 200)]
    [InlineData(1, 1)]
    [InlineData(2000, 3)]
    public void AHeatmapPngIsWrittenIntoTheRoomMadeForItWithoutGrowing(int width, int height)
    {
        // Noise is the worst case for PNG: it does not compress, so the file is about as large as the pixels.
        var random = new Random(7);
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                foreach (ref var pixel in rows.GetRowSpan(y)) pixel = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
            }
        });
        var values = Enumerable.Range(0, 49).Select(_ => (float)random.NextDouble()).ToArray();
        var map = new ActivationMap(values, 7, 7);

        var png = HeatmapRenderer.RenderPng(image, map);

        // The buffer is the one made with room for the worst case: the PNG never outgrew it (no copy while it was written).
        Assert.Equal(HeatmapRenderer.PngCapacity(width, height), png.Array!.Length);
        Assert.Equal(0, png.Offset);
        Assert.True(png.Count > 3 * width * height / 2, $"noise should barely compress: {png.Count} bytes for {width}x{height}");
        using var decoded = Image.Load<Rgb24>(png.AsSpan());
        using var overlay = HeatmapRenderer.Render(image, map);
        Assert.Equal((width, height), (decoded.Width, decoded.Height));
        for (var y = 0; y < height; y += Math.Max(1, height / 5))
        {
            for (var x = 0; x < width; x += Math.Max(1, width / 7)) Assert.Equal(overlay[x, y], decoded[x, y]);
        }
    }

    [Fact]
    public void TheOverlayIsTheUpsampledMapInJetBlendedOverTheImage()
    {
        // Derived apart from the renderer: the whole map upsampled at once (BicubicUpsampler.Resize, tested against
        // PyTorch), min-max normalised, matplotlib's jet (its 256 colours, from its segment table, and colours printed by
        // matplotlib itself), blended as 0.5 image + 0.3 colour (the reference's overlay; the trainer's activation.png).
        const int width = 50, height = 40;
        var random = new Random(11);
        var values = Enumerable.Range(0, 35).Select(_ => (float)random.NextDouble()).ToArray();
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++) image[x, y] = new Rgb24((byte)(5 * x), (byte)(6 * y), (byte)(255 - 5 * x));
        }

        using var overlay = HeatmapRenderer.Render(image, new ActivationMap(values, 5, 7));

        var upsampled = BicubicUpsampler.Resize(values, 5, 7, height, width);
        var (min, max) = (upsampled.Min(), upsampled.Max());
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var colour = MatplotlibJet((upsampled[y * width + x] - min) / (max - min));
                var source = image[x, y];
                var expected = (Blend(source.R, colour.R), Blend(source.G, colour.G), Blend(source.B, colour.B));
                var actual = overlay[x, y];
                Assert.True(Math.Abs(actual.R - expected.Item1) <= 1 && Math.Abs(actual.G - expected.Item2) <= 1 && Math.Abs(actual.B - expected.Item3) <= 1,
                    $"({x}, {y}): {actual} against {expected}");
            }
        }
        // The hottest pixel is tinted dark red (0.3 x 255 x 0.5 = 38.25 levels of red), the coldest dark blue.
        var (hottest, coldest) = (Array.IndexOf(upsampled, max), Array.IndexOf(upsampled, min));
        AssertTint(hottest % width, hottest / width, (38.25, 0, 0));
        AssertTint(coldest % width, coldest / width, (0, 0, 38.25));

        void AssertTint(int x, int y, (double R, double G, double B) tint)
        {
            var (shown, under) = (overlay[x, y], image[x, y]);
            Assert.True(Math.Abs(shown.R - under.R / 2.0 - tint.R) <= 0.5 && Math.Abs(shown.G - under.G / 2.0 - tint.G) <= 0.5
                && Math.Abs(shown.B - under.B / 2.0 - tint.B) <= 0.5, $"({x}, {y}): {shown} over {under}");
        }
    }

    [Theory]
    [InlineData(0f, 0, 0, 0.5)]
    [InlineData(0.5f, 0.49019608, 1, 0.47754586)]
    [InlineData(0.999f, 0.5, 0, 0)]
    [InlineData(1f, 0.5, 0, 0)]
    [InlineData(0.00390625f, 0, 0, 0.51782531)]
    public void JetIsMatplotlibsJet(float value, double red, double green, double blue)
    {
        // matplotlib.colormaps["jet"](value)[:3], printed by matplotlib.
        var (r, g, b) = HeatmapRenderer.Jet(value);
        Assert.Equal(red, r, 1e-6);
        Assert.Equal(green, g, 1e-6);
        Assert.Equal(blue, b, 1e-6);
        Assert.Equal(MatplotlibJet(value), (r, g, b));
    }

    /// <summary>matplotlib's jet: 256 colours, colour i the segments' value at i / 255, value v taking colour floor(256 v).</summary>
    private static (float R, float G, float B) MatplotlibJet(double v)
    {
        var x = Math.Min((int)(v * 256), 255) / 255.0;
        return ((float)Linear([0, 0.35, 0.66, 0.89, 1], [0, 0, 1, 1, 0.5], x), (float)Linear([0, 0.125, 0.375, 0.64, 0.91, 1], [0, 0, 1, 1, 0, 0], x),
            (float)Linear([0, 0.11, 0.34, 0.65, 1], [0.5, 1, 1, 0, 0], x));
    }

    private static double Blend(byte image, double colour) => Math.Round(0.5 * image + 0.3 * 255 * colour);

    private static double Linear(double[] knots, double[] values, double v)
    {
        for (var k = 1; k < knots.Length; k++)
        {
            if (v <= knots[k]) return values[k - 1] + (values[k] - values[k - 1]) * (v - knots[k - 1]) / (knots[k] - knots[k - 1]);
        }
        return values[^1];
    }
}
