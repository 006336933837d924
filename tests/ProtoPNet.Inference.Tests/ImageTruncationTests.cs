using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Tiff.Constants;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// An upload cut short is refused as truncated in every accepted format, wherever the cut falls; a complete file with
/// extra bytes after it still decodes to the same pixels. ImageSharp alone decodes most of these cut files without
/// complaint (it fills the missing part with grey), which is what these tests guard against.
/// </summary>
public class ImageTruncationTests
{
    private readonly ImageDecoder _decoder = new(new ImageLimits());

    /// <summary>Real files of a noisy 96 x 72 picture: the pixel data, not the headers, makes up most of each file.</summary>
    private static readonly Lazy<Dictionary<string, byte[]>> Files = new(() =>
    {
        using var image = NoisyPicture(96, 72);
        using var animation = NoisyPicture(96, 72);
        using (var second = NoisyPicture(96, 72, seed: 2)) animation.Frames.AddFrame(second.Frames.RootFrame);
        var png = TestImages.Encode(image, TestImages.Png);
        return new Dictionary<string, byte[]>
        {
            ["png"] = png,
            ["jpeg-baseline"] = TestImages.Encode(image, new JpegEncoder { Quality = 90 }),
            ["jpeg-progressive"] = Pillow.Reencode(png, "JPEG", "quality=90, progressive=True"),
            ["gif"] = TestImages.Encode(image, new GifEncoder()),
            ["gif-two-frames"] = TestImages.Encode(animation, new GifEncoder()),
            ["bmp-24bit"] = TestImages.Encode(image, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 }),
            ["bmp-8bit-palette"] = TestImages.Encode(image, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel8 }),
            ["webp-lossless"] = TestImages.Encode(image, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }),
            ["webp-lossy"] = TestImages.Encode(image, new WebpEncoder { FileFormat = WebpFileFormatType.Lossy, Quality = 90 }),
            ["tiff"] = TestImages.Encode(image, new TiffEncoder()),
            ["tiff-deflate"] = TestImages.Encode(image, new TiffEncoder { Compression = TiffCompression.Deflate }),
            // Pillow writes the directory first and the pixels last (ImageSharp the other way round).
            ["tiff-directory-first"] = Pillow.Reencode(png, "TIFF", "compression='raw'"),
        };
    });

    private static readonly string[] Names = ["png", "jpeg-baseline", "jpeg-progressive", "gif", "gif-two-frames", "bmp-24bit",
        "bmp-8bit-palette", "webp-lossless", "webp-lossy", "tiff", "tiff-deflate", "tiff-directory-first"];

    public static TheoryData<string> FileNames => new(Names);

    public static TheoryData<string, double> Cuts()
    {
        var cuts = new TheoryData<string, double>();
        foreach (var name in Names)
        foreach (var fraction in new[] { 0.5, 0.8, 0.95 })
            cuts.Add(name, fraction);
        return cuts;
    }

    [Theory]
    [MemberData(nameof(Cuts))]
    public void FileCutAtAFractionIsTruncated(string name, double fraction)
    {
        var bytes = Files.Value[name];
        AssertTruncated(name, bytes.AsMemory(0, (int)(bytes.Length * fraction)));
    }

    /// <summary>
    /// Only the last bytes missing: the end marker (JPEG FFD9, GIF 0x3B, PNG IEND), the last pixel row, the last TIFF
    /// value. ImageSharp's TIFF ends with one padding byte after its last value, so there the smallest real cut is 2 bytes.
    /// </summary>
    [Theory]
    [MemberData(nameof(FileNames))]
    public void FileMissingOnlyItsLastBytesIsTruncated(string name)
    {
        var bytes = Files.Value[name];
        var smallestCut = name is "tiff" or "tiff-deflate" ? 2 : 1;
        foreach (var missing in new[] { smallestCut, smallestCut + 1, 16 })
        {
            AssertTruncated($"{name} without its last {missing} bytes", bytes.AsMemory(0, bytes.Length - missing));
        }
    }

    [Fact]
    public void TheProgressiveJpegIsProgressive()
    {
        var bytes = Files.Value["jpeg-progressive"];
        var frameMarker = bytes.AsSpan().IndexOf([(byte)0xFF, (byte)0xC2]); // SOF2: progressive DCT
        Assert.True(frameMarker > 0, "Pillow did not write a progressive JPEG");
        Assert.True(bytes.AsSpan().Count([(byte)0xFF, (byte)0xDA]) > 1, "a progressive JPEG has several scans");
    }

    [Fact]
    public void ImageSharpTiffEndsWithOnePaddingByteThatIsNotImageData()
    {
        var bytes = Files.Value["tiff"];
        using var decoded = _decoder.Decode(bytes.AsMemory(0, bytes.Length - 1));
        Assert.Equal(96, decoded.Width);
    }

    [Theory]
    [MemberData(nameof(FileNames))]
    public void CompleteFileWithTrailingBytesDecodesToTheSamePixels(string name)
    {
        var bytes = Files.Value[name];
        using var whole = _decoder.Decode(bytes);
        Assert.Equal((96, 72), (whole.Width, whole.Height));
        var random = new Random(3);
        var garbage = new byte[300];
        random.NextBytes(garbage);
        foreach (var trailer in new[] { new byte[1], new byte[64], garbage })
        {
            using var withTrailer = _decoder.Decode(bytes.Concat(trailer).ToArray());
            Assert.Equal((96, 72), (withTrailer.Width, withTrailer.Height));
            for (var y = 0; y < 72; y++)
            for (var x = 0; x < 96; x++)
                Assert.True(whole.Pixels[x, y] == withTrailer.Pixels[x, y], $"{name} + {trailer.Length} bytes: pixel ({x}, {y}) differs");
        }
    }

    private void AssertTruncated(string what, ReadOnlyMemory<byte> cut)
    {
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(cut).Dispose());
        Assert.True(error.Rejection == ImageRejection.Truncated, $"{what}: {error.Rejection}: {error.Message}");
        Assert.Contains("truncated", error.Message);
    }

    private static Image<Rgba32> NoisyPicture(int width, int height, int seed = 1)
    {
        var random = new Random(seed);
        var image = new Image<Rgba32>(width, height);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
            image[x, y] = new Rgba32((byte)(255 * x / (width - 1)), (byte)random.Next(256), (byte)(255 * y / (height - 1)));
        return image;
    }
}
