using ProtoPNet.Inference.Explanation;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The convention is PyTorch's F.interpolate(mode='bicubic', align_corners=False): Keys kernel a = -0.75,
/// source x = (i + 0.5) * in / out - 0.5, taps clamped at the border. Expected values come from an independent
/// direct 2-D sum over the piecewise kernel, and from numbers PyTorch 1.13 printed for the same map.
/// </summary>
public class BicubicUpsamplerTests
{
    private static readonly float[] Map =
    [
        0.1f, 0.9f, 0.3f, 0.0f,
        0.5f, 0.2f, 1.0f, 0.4f,
        0.0f, 0.7f, 0.6f, 0.8f,
    ];

    /// <summary>The Keys cubic convolution kernel in its textbook piecewise form.</summary>
    private static double Keys(double x, double a = -0.75)
    {
        x = Math.Abs(x);
        if (x <= 1) return (a + 2) * x * x * x - (a + 3) * x * x + 1;
        if (x < 2) return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
        return 0;
    }

    private static double Direct(float[] map, int inH, int inW, int outH, int outW, int oy, int ox)
    {
        var sy = (oy + 0.5) * inH / outH - 0.5;
        var sx = (ox + 0.5) * inW / outW - 0.5;
        var sum = 0.0;
        for (var y = (int)Math.Floor(sy) - 1; y <= (int)Math.Floor(sy) + 2; y++)
        for (var x = (int)Math.Floor(sx) - 1; x <= (int)Math.Floor(sx) + 2; x++)
        {
            var value = map[Math.Clamp(y, 0, inH - 1) * inW + Math.Clamp(x, 0, inW - 1)];
            sum += Keys(sy - y) * Keys(sx - x) * value;
        }
        return sum;
    }

    [Theory]
    [InlineData(7, 9)]
    [InlineData(28, 28)]
    [InlineData(3, 4)]
    [InlineData(224, 100)]
    public void MatchesDirectKernelSum(int outH, int outW)
    {
        var result = BicubicUpsampler.Resize(Map, 3, 4, outH, outW);
        for (var y = 0; y < outH; y++)
        for (var x = 0; x < outW; x++)
        {
            Assert.Equal(Direct(Map, 3, 4, outH, outW, y, x), result[y * outW + x], 1e-6);
        }
    }

    /// <summary>
    /// The row pass runs a vector of values at a time; it must give the scalar double arithmetic's floats to the last
    /// bit (a box edge is a threshold comparison), at a model's input width and at one with a scalar tail.
    /// </summary>
    [Theory]
    [InlineData(7, 7, 224, 224)]
    [InlineData(7, 7, 28, 28)]
    [InlineData(5, 9, 37, 101)]
    public void VectorisedRowsEqualTheScalarArithmetic(int inH, int inW, int outH, int outW)
    {
        var random = new Random(inH * 100 + outW);
        var map = Enumerable.Range(0, inH * inW).Select(_ => (float)(random.NextDouble() * 4 - 1)).ToArray();

        var result = BicubicUpsampler.Resize(map, inH, inW, outH, outW);

        var horizontal = new float[inH * outW];
        BicubicUpsampler.ResampleColumns(map, inH, inW, BicubicUpsampler.Taps.For(inW, outW), horizontal);
        var rows = BicubicUpsampler.Taps.For(inH, outH);
        for (var y = 0; y < outH; y++)
        for (var x = 0; x < outW; x++)
        {
            var i = y * 4;
            double Tap(int k) => rows.Weights[i + k] * horizontal[rows.Indices[i + k] * outW + x];
            var expected = (float)(Tap(0) + Tap(1) + Tap(2) + Tap(3));
            Assert.True(expected == result[y * outW + x], $"({y}, {x}): {result[y * outW + x]:R} instead of {expected:R}");
        }
    }

    [Fact]
    public void MatchesPyTorchNumbers()
    {
        // torch.nn.functional.interpolate(map[None, None].double(), size=(7, 9), mode='bicubic', align_corners=False)
        double[][] torch =
        [
            [-0.043734571651, 0.201416896124, 0.712828150808, 0.978260724484, 0.711324708455, 0.268468165485, 0.041058568489, -0.018457442501, -0.072767913382],
            [0.083910406094, 0.256058167315, 0.608744912207, 0.815419301171, 0.693148688047, 0.422643543014, 0.214038204568, 0.08564899174, 0.005463491614],
            [0.378370203902, 0.387382572076, 0.386633312937, 0.458195346775, 0.652396137026, 0.755505252513, 0.571873537775, 0.275498056365, 0.12944898859],
            [0.532600308642, 0.443055555556, 0.225565843621, 0.225278635117, 0.628125, 0.986526920439, 0.861728395062, 0.5, 0.334799382716],
            [0.331594747687, 0.322817460317, 0.272811461445, 0.362232887717, 0.649116253644, 0.891555175127, 0.856465284527, 0.662220602527, 0.577787450959],
            [0.004392130529, 0.146297477324, 0.41524776467, 0.652283120773, 0.687572886297, 0.653928411459, 0.697844174045, 0.743077320214, 0.767638877641],
            [-0.142612688815, 0.064933423766, 0.472221403626, 0.775406748531, 0.704391399417, 0.556062585234, 0.642653899817, 0.799031050912, 0.874969780681],
        ];
        var result = BicubicUpsampler.Resize(Map, 3, 4, 7, 9);
        for (var y = 0; y < 7; y++)
        for (var x = 0; x < 9; x++)
        {
            Assert.Equal(torch[y][x], result[y * 9 + x], 1e-6);
        }
    }

    [Fact]
    public void ConstantMapStaysConstant()
    {
        var flat = Enumerable.Repeat(2.5f, 49).ToArray();
        var result = BicubicUpsampler.Resize(flat, 7, 7, 224, 224);
        Assert.All(result, value => Assert.Equal(2.5, value, 1e-6));
    }

    [Fact]
    public void SameSizeIsIdentity()
    {
        var result = BicubicUpsampler.Resize(Map, 3, 4, 3, 4);
        for (var i = 0; i < Map.Length; i++) Assert.Equal(Map[i], result[i], 1e-7);
    }

    /// <summary>One plan serves every map of its size with the same values as a fresh resize, and refuses a smaller map.</summary>
    [Fact]
    public void APlanServesManyMapsOfItsSize()
    {
        var plan = BicubicUpsampler.Plan.For(3, 4, 28, 28);
        var other = Map.Select(v => 1 - v).ToArray();
        var destination = new float[28 * 28];
        foreach (var map in new[] { Map, other, Map })
        {
            BicubicUpsampler.Resize(map, plan, destination);
            Assert.Equal(BicubicUpsampler.Resize(map, 3, 4, 28, 28), destination);
        }
        var error = Assert.Throws<ArgumentException>(() => BicubicUpsampler.Resize(Map.AsSpan(0, 11), plan, destination));
        Assert.Contains("3 x 4", error.Message);
    }
}
