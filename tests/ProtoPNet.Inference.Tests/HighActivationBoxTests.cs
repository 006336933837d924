using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;

namespace ProtoPNet.Inference.Tests;

public class HighActivationBoxTests
{
    [Fact]
    public void PercentileIsNumpyLinear()
    {
        // np.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == 9.55
        float[] values = [10, 3, 5, 1, 2, 4, 6, 9, 8, 7];
        Assert.Equal(9.55, HighActivationBox.Percentile(values, 95), 6);
        Assert.Equal(5.5, HighActivationBox.Percentile(values, 50), 6);
        Assert.Equal(10, HighActivationBox.Percentile(values, 100), 6);
        Assert.Equal(1, HighActivationBox.Percentile(values, 0), 6);
    }

    [Fact]
    public void SingleHotPixelGivesOnePixelBox()
    {
        // 4 x 5 = 20 values: rank 0.95 * 19 = 18.05 lies between the two largest, so only the hot pixel is kept.
        var map = Enumerable.Range(0, 20).Select(i => i * 0.01f).ToArray();
        map[2 * 5 + 3] = 5f;
        Assert.Equal(new PixelBox(3, 2, 1, 1), HighActivationBox.Find(map, 4, 5));
    }

    [Fact]
    public void SeveralEqualMaximaAreAllInsideTheBox()
    {
        var map = new float[4 * 5];
        for (var i = 0; i < map.Length; i++) map[i] = 0.001f * i;
        map[0 * 5 + 1] = 3f;   // row 0, column 1
        map[3 * 5 + 4] = 3f;   // row 3, column 4
        var box = HighActivationBox.Find(map, 4, 5);
        Assert.Equal(new PixelBox(1, 0, 4, 4), box);
    }

    [Fact]
    public void FlatMapGivesTheWholeMap()
    {
        var map = Enumerable.Repeat(0.7f, 7 * 9).ToArray();
        Assert.Equal(new PixelBox(0, 0, 9, 7), HighActivationBox.Find(map, 7, 9));
    }

    [Fact]
    public void BoxHoldsExactlyThePixelsAtOrAboveThePercentile()
    {
        var random = new Random(7);
        var map = Enumerable.Range(0, 28 * 28).Select(_ => (float)random.NextDouble()).ToArray();
        var box = HighActivationBox.Find(map, 28, 28);
        var sorted = map.OrderBy(v => v).ToArray();
        var rank = 0.95 * (sorted.Length - 1);
        var threshold = sorted[(int)rank] + (sorted[(int)rank + 1] - sorted[(int)rank]) * (rank - (int)rank);
        var hot = Enumerable.Range(0, map.Length).Where(i => map[i] >= threshold).ToArray();
        Assert.Equal(hot.Min(i => i % 28), box.X);
        Assert.Equal(hot.Min(i => i / 28), box.Y);
        Assert.Equal(hot.Max(i => i % 28), box.X + box.Width - 1);
        Assert.Equal(hot.Max(i => i / 28), box.Y + box.Height - 1);
    }

    /// <summary>
    /// Maps of 4,096 values or more are boxed from their highest values alone (a threshold estimated from a sample);
    /// the box must be the definition's whatever the map holds: smooth upsampled maps, ties, NaN, infinities, flat maps,
    /// and percentiles that leave the estimate too few values.
    /// </summary>
    [Theory]
    [InlineData("upsampled", 224, 224)]
    [InlineData("upsampled", 97, 61)]
    [InlineData("uniform", 224, 224)]
    [InlineData("few levels", 224, 224)]
    [InlineData("NaN", 150, 90)]
    [InlineData("infinities", 224, 224)]
    [InlineData("flat with spikes", 128, 64)]
    [InlineData("mostly NaN", 100, 100)]
    [InlineData("sampled high", 224, 224)]
    public void LargeMapsGetTheDefinitionsBox(string kind, int height, int width)
    {
        var random = new Random(height * 1000 + width + kind.Length);
        for (var trial = 0; trial < 20; trial++)
        {
            var map = kind switch
            {
                "upsampled" => BicubicUpsampler.Resize(
                    Enumerable.Range(0, 49).Select(_ => random.Next(4) == 0 ? 2f : (float)random.NextDouble()).ToArray(), 7, 7, height, width),
                _ => Enumerable.Range(0, height * width).Select(i => kind switch
                {
                    "uniform" => (float)random.NextDouble(),
                    "few levels" => random.Next(4),
                    "NaN" => random.Next(8) == 0 ? float.NaN : (float)random.NextDouble(),
                    // A block of +inf holding both ranks of the 95th percentile: inf - inf makes it NaN, which no pixel reaches.
                    "infinities" => i % width < width / 3 && i / width < height / 3 ? float.PositiveInfinity
                        : random.Next(3) == 0 ? float.NegativeInfinity : (float)random.NextDouble(),
                    // High exactly where the threshold's sample reads: the estimate keeps too few values.
                    "sampled high" => i % (height * width / 128) == 0 ? 10f : (float)random.NextDouble(),
                    "flat with spikes" => i % 97 == 0 ? 5f : 1f,
                    _ => random.Next(10) == 0 ? (float)random.NextDouble() : float.NaN,
                }).ToArray(),
            };
            foreach (var percentile in new[] { 95, 50, 99.9, random.NextDouble() * 100 })
            {
                Assert.Equal(DefinitionsBox(map, height, width, percentile), HighActivationBox.Find(map, height, width, percentile));
            }
        }
    }

    /// <summary>The box by definition: numpy's percentile from a full sort (NaN lowest), every pixel at least it.</summary>
    private static PixelBox DefinitionsBox(float[] map, int height, int width, double percentile)
    {
        var sorted = map.Select(v => float.IsNaN(v) ? float.NegativeInfinity : v).Order().ToArray();
        var rank = percentile / 100 * (sorted.Length - 1);
        var lower = (int)Math.Floor(rank);
        var upper = Math.Min(lower + 1, sorted.Length - 1);
        var threshold = rank == lower ? sorted[lower] : sorted[lower] + (sorted[upper] - (double)sorted[lower]) * (rank - lower);
        var hot = Enumerable.Range(0, map.Length).Where(i => map[i] >= threshold).ToArray();
        if (hot.Length == 0) return new PixelBox(0, 0, width, height);
        var (left, top) = (hot.Min(i => i % width), hot.Min(i => i / width));
        return new PixelBox(left, top, hot.Max(i => i % width) - left + 1, hot.Max(i => i / width) - top + 1);
    }

    [Fact]
    public void UpsampledHotCellBoxSurroundsTheCell()
    {
        // A 7x7 map with one hot cell, upsampled to 224x224 as for a ResNet bundle: the box covers that cell's area.
        var map = new float[49];
        map[2 * 7 + 5] = 1f;
        var upsampled = BicubicUpsampler.Resize(map, 7, 7, 224, 224);
        var box = HighActivationBox.Find(upsampled, 224, 224);
        var cellCentreX = 5 * 32 + 16;
        var cellCentreY = 2 * 32 + 16;
        Assert.InRange(cellCentreX, box.X, box.X + box.Width - 1);
        Assert.InRange(cellCentreY, box.Y, box.Y + box.Height - 1);
        Assert.InRange(box.Width, 10, 64);
        Assert.InRange(box.Height, 10, 64);
    }

    [Theory]
    [InlineData(0, 0, 28, 28, 600, 800, 0, 0, 600, 800)]
    [InlineData(14, 7, 1, 1, 56, 28, 28, 7, 2, 1)]
    [InlineData(27, 27, 1, 1, 30, 30, 28, 28, 2, 2)]
    [InlineData(3, 4, 5, 6, 28, 28, 3, 4, 5, 6)]
    [InlineData(21, 21, 1, 1, 68, 68, 51, 51, 3, 3)]   // 21 x 68 / 28 = 51 exactly, which 21 x (68 / 28.0) misses by a rounding (50.99999999999999)
    [InlineData(20, 20, 1, 1, 36, 36, 25, 25, 2, 2)]   // the box ends at 21 x 36 / 28 = 27 exactly, which 21 x (36 / 28.0) overshoots (27.000000000000004)
    public void ScaleMapsToStretchedImagePixels(int x, int y, int w, int h, int toW, int toH, int ex, int ey, int ew, int eh)
    {
        var scaled = HighActivationBox.Scale(new PixelBox(x, y, w, h), 28, 28, toW, toH);
        Assert.Equal(new PixelBox(ex, ey, ew, eh), scaled);
        Assert.True(scaled.X + scaled.Width <= toW && scaled.Y + scaled.Height <= toH);
    }
}

public class PercentileSelectionTests
{
    [Theory]
    [InlineData(1, 0)]
    [InlineData(20, 1)]
    [InlineData(784, 2)]
    [InlineData(50176, 3)]
    public void SelectionEqualsSortingDefinition(int count, int seed)
    {
        var random = new Random(seed);
        // Many ties as well as distinct values, like real activation maps with saturated regions.
        var values = Enumerable.Range(0, count).Select(_ => random.Next(4) == 0 ? 1f : (float)random.NextDouble()).ToArray();
        foreach (var p in new[] { 0.0, 12.5, 50, 95, 99.9, 100 })
        {
            var sorted = values.OrderBy(v => v).ToArray();
            var rank = p / 100 * (count - 1);
            var lower = (int)Math.Floor(rank);
            var upper = Math.Min(lower + 1, count - 1);
            var expected = sorted[lower] + (sorted[upper] - (double)sorted[lower]) * (rank - lower);
            Assert.Equal(expected, HighActivationBox.Percentile(values, p), 1e-12);
        }
    }
}
