using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Inference.Tests;

/// <summary>The resizer's bounds on images far from square (its pixel-exactness against PIL is tested with the trainer's pixels in the service tests).</summary>
public class ResamplersTests
{
    [Theory]
    [InlineData(ResampleFilter.Bilinear)]
    [InlineData(ResampleFilter.Bicubic)]
    [InlineData(ResampleFilter.Lanczos)]
    public void AnImageOneColumnWideAtTheSideLimitResizesToItsColour(ResampleFilter filter)
    {
        const int height = 65_535, channels = 3;
        var pixels = new byte[height * channels];
        for (var i = 0; i < pixels.Length; i += channels) (pixels[i], pixels[i + 1], pixels[i + 2]) = (200, 17, 90);
        var resized = new byte[224 * 224 * channels];

        Resamplers.Resize(pixels, 1, height, channels, 224, 224, filter, resized);

        for (var i = 0; i < resized.Length; i += channels) Assert.Equal((200, 17, 90), (resized[i], resized[i + 1], resized[i + 2]));
    }

    [Fact]
    public void AResizeWhosePassesWouldNotFitInAnArrayIsRefusedBeforeAllocating()
    {
        // 1 x 4,000,000 to 224 x 224 RGB: the row pass would hold 4,000,000 x 224 x 3 bytes (its size overflowed an int).
        var pixels = new byte[4_000_000 * 3];
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Resamplers.Resize(pixels, 1, 4_000_000, 3, 224, 224, ResampleFilter.Bilinear, new byte[224 * 224 * 3]));
        Assert.Contains("2688000000 bytes", error.Message);
    }
}
