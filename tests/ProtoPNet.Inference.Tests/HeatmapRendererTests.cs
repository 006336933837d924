using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Tests;

public class HeatmapRendererTests
{
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
}
