using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The contrast step's blank rule, on the values the trainer's tests use (tests/trainer/test_contrast.py): a picture with
/// nothing 16 levels brighter than its ground becomes all ground, one with 16 is stretched, at every ground level.
/// </summary>
public class ContrastNormalizerTests
{
    private static float[] Uniform(int level, int length) => Enumerable.Repeat(level / 255f, length).ToArray();

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(30)]
    [InlineData(100)]
    [InlineData(127)]
    [InlineData(128)]
    [InlineData(200)]
    [InlineData(254)]
    [InlineData(255)]
    public void ABlankPictureBecomesAllGround(int level)
    {
        var image = Uniform(level, 3 * 8 * 8);
        ContrastNormalizer.Normalize(image, 3, 8, 8);
        Assert.All(image, value => Assert.Equal(0f, value));
    }

    /// <summary>
    /// The ground is the border ring's lower median, as the trainer takes it (torch's median of an even count is the
    /// lower one): a ring half black and half at 100 has a black ground, so its 100s stay 100.
    /// </summary>
    [Fact]
    public void TheGroundIsTheLowerMedianOfTheBorder()
    {
        var image = new float[4 * 4];
        for (var i = 0; i < image.Length; i++)
        {
            var (y, x) = (i / 4, i % 4);
            var border = y is 0 or 3 || x is 0 or 3;
            image[i] = !border ? 1f : y == 0 || (y < 3 && x == 0) ? 100 / 255f : 0f;   // 6 of the 12 ring pixels at 100
        }
        Assert.Equal(6, image.Count(v => v == 100 / 255f));
        var expected = image.ToArray();
        Assert.False(ContrastNormalizer.Normalize(image, 1, 4, 4));
        Assert.Equal(expected, image);   // ground 0 and peak 1: unchanged
    }

    [Fact]
    public void FaintNoiseOnALightWallIsBlankAndInverted()
    {
        var random = new Random(1);
        var wall = Enumerable.Range(0, 3 * 16 * 16).Select(_ => (200 + random.Next(-2, 3)) / 255f).ToArray();
        Assert.True(ContrastNormalizer.Normalize(wall, 3, 16, 16));
        Assert.All(wall, value => Assert.Equal(0f, value));

        // A garment 15 levels above a black ground is still nothing.
        var faint = new float[28 * 28];
        for (var y = 6; y < 22; y++)
        for (var x = 8; x < 20; x++) faint[y * 28 + x] = 15 / 255f;
        ContrastNormalizer.Normalize(faint, 1, 28, 28);
        Assert.All(faint, value => Assert.Equal(0f, value));
    }

    [Fact]
    public void SixteenLevelsFromTheGroundAreStretchedAtEveryGround()
    {
        for (var ground = 0; ground < 256; ground += 3)
        {
            // Lighter on a dark ground, darker on a light one (which is inverted).
            var image = new float[8 * 8];
            for (var i = 0; i < image.Length; i++)
            {
                var inside = i / 8 is >= 2 and < 6 && i % 8 is >= 2 and < 6;
                image[i] = (inside ? (ground <= 127 ? ground + 16 : ground - 16) : ground) / 255f;
            }
            Assert.Equal(ground > 127, ContrastNormalizer.Normalize(image, 1, 8, 8));
            Assert.Equal(1f, image.Max());
            Assert.Equal(0f, image.Min());
        }
    }
}
