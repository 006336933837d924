using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
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
            ["png-interlaced"] = Pillow.Reencode(png, "PNG", "interlace=1"),
            ["png-16bit"] = TestImages.Encode(image, new PngEncoder { BitDepth = PngBitDepth.Bit16, ColorType = PngColorType.Rgb }),
            ["jpeg-baseline"] = TestImages.Encode(image, new JpegEncoder { Quality = 90 }),
            ["jpeg-progressive"] = Pillow.Reencode(png, "JPEG", "quality=90, progressive=True"),
            ["gif"] = TestImages.Encode(image, new GifEncoder()),
            ["gif-two-frames"] = TestImages.Encode(animation, new GifEncoder()),
            ["gif-interlaced"] = Pillow.Reencode(png, "GIF", "interlace=True"),
            ["bmp-24bit"] = TestImages.Encode(image, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 }),
            ["bmp-8bit-palette"] = TestImages.Encode(image, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel8 }),
            ["webp-lossless"] = TestImages.Encode(image, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }),
            ["webp-lossy"] = TestImages.Encode(image, new WebpEncoder { FileFormat = WebpFileFormatType.Lossy, Quality = 90 }),
            // An ICC profile makes Pillow write the extended container (VP8X), which ImageSharp read past its end.
            ["webp-extended"] = Pillow.Reencode(png, "WEBP", "quality=90, icc_profile=bytes(8)"),
            ["tiff"] = TestImages.Encode(image, new TiffEncoder()),
            ["tiff-deflate"] = TestImages.Encode(image, new TiffEncoder { Compression = TiffCompression.Deflate }),
            // Pillow writes the directory first and the pixels last (ImageSharp the other way round).
            ["tiff-directory-first"] = Pillow.Reencode(png, "TIFF", "compression='raw'"),
        };
    });

    private static readonly string[] Names = ["png", "png-interlaced", "png-16bit", "jpeg-baseline", "jpeg-progressive", "gif",
        "gif-two-frames", "gif-interlaced", "bmp-24bit",
        "bmp-8bit-palette", "webp-lossless", "webp-lossy", "webp-extended", "tiff", "tiff-deflate", "tiff-directory-first"];

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

    /// <summary>
    /// A file whose every chunk or block is whole, but whose pixel data stops short (a tool that closed a cut file
    /// properly): ImageSharp leaves the missing rows grey or blank and reports success.
    /// </summary>
    [Theory]
    [InlineData("png")]
    [InlineData("png-interlaced")]
    [InlineData("png-16bit")]
    [InlineData("gif")]
    [InlineData("gif-two-frames")]
    [InlineData("gif-interlaced")]
    public void FileWhosePixelDataStopsShortIsTruncatedThoughItsStructureIsWhole(string name)
    {
        var bytes = Files.Value[name];
        var shortened = name.StartsWith("png", StringComparison.Ordinal) ? PngWithHalfItsImageData(bytes) : GifWithHalfItsFirstFrame(bytes);
        using (Image.Load(shortened)) { }   // ImageSharp alone takes it
        AssertTruncated(name, shortened);
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(shortened).Dispose());
        Assert.Contains(name.StartsWith("png", StringComparison.Ordinal) ? "its image data inflates to" : "its first frame's LZW data gives", error.Message);
    }

    /// <summary>
    /// A PNG whose image data is too short for its rows is refused before it is decoded: ImageSharp 2.1 waits forever
    /// for the rows an interlaced image lacks (an 8x8 one with empty image data, sent twice, held both decoding threads
    /// for good). The image data is the first run of IDAT chunks, as ImageSharp reads it: one after another chunk is not.
    /// </summary>
    [Theory]
    [InlineData("interlaced, empty image data")]
    [InlineData("png, image data split by a text chunk")]
    [InlineData("png-interlaced, image data split by a text chunk")]
    public async Task APngWhoseRowsTheImageDataLacksIsRefusedBeforeDecoding(string form)
    {
        var file = form.StartsWith("interlaced,", StringComparison.Ordinal)
            ? Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAAGWY9HBAAAACElEQVR4nAMAAAAAAUgGidIAAAAASUVORK5CYII=")
            : PngWithATextChunkInItsImageData(Files.Value[form[..form.IndexOf(',')]]);
        var decoding = Task.Run(() => Assert.Throws<ImageRejectedException>(() => _decoder.Decode(file).Dispose()));
        var error = await decoding.WaitAsync(TimeSpan.FromSeconds(20));   // a TimeoutException: the decoding did not end
        Assert.Equal(ImageRejection.Truncated, error.Rejection);
        Assert.Contains("its image data inflates to", error.Message);
    }

    /// <summary>
    /// A PNG whose image data zlib refuses before or right after its rows (a flipped bit, a wrong checksum) is refused as
    /// corrupt, as Pillow refuses it ("broken data stream"). ImageSharp painted what it lacked black, and for an
    /// interlaced image it waited forever: found by a mutation fuzzer, an 8x8 one with empty image data and a wrong
    /// checksum hung every time, two of them held both decoding threads.
    /// </summary>
    [Theory]
    [InlineData("interlaced, empty image data, wrong checksum", "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAAGWY9HBAAAACElEQVR4nAMA3q2+72LZxQIAAAAASUVORK5CYII=")]
    [InlineData("a bit flipped in the image data", "iVBORw0KGgoAAAANSUhEUgAAACgAAAAgAQAAAABI1getAAAAy0lEQVR4nAHAAD//ASRuGAAAAf8AAAAAAgAAAAAABAAAbkrAAO23gP//AP/8Kh//BAD0VgbcAN3EJFP/AP/RCQH/BACzNwr4Ae0kGVb/BBEzTpgVAf4TE1w7AdyoBaH1AfwmLjAfAPyJCiQ/AOwiUQkbBBHmaO9fAfxG/+kVBODnAdafAf6ExwvnAgCmRy0EAO8CRRR/AP+oEEH9AvwaddD6AuQmyzYIAH/xBRffAf3/TBcgAO+/gf/9Af8AAPgAAv/4AMcIANv/////z2tNONwhjPEAAAAASUVORK5CYII=")]
    [InlineData("every row, then a wrong checksum", "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAUElEQVR4nGNgYGRiZmFlY2fg4OTi5uHl42cQEBQSFhEVE2eQkJSSlpGVk2dQUFRSVlFVU2fQ0NTS1tHV02cwMDQyNjE1M2ewsLSytrG1swcA3q2+79BCcGoAAAAASUVORK5CYII=")]
    public async Task APngWhoseImageDataZlibRefusesIsRefusedAsCorrupt(string form, string base64)
    {
        var file = Convert.FromBase64String(base64);
        var path = Path.Combine(Path.GetTempPath(), $"protopnet-png-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(path, file);
        try
        {
            Assert.Contains("broken data stream", Pillow.RunPython(
                "import sys\nfrom PIL import Image\ntry:\n    Image.open(sys.argv[1]).load()\n    print('decoded')\nexcept Exception as e:\n    print(e)", path));
        }
        finally
        {
            File.Delete(path);
        }
        var decoding = Task.Run(() => Assert.Throws<ImageRejectedException>(() => _decoder.Decode(file).Dispose()));
        var error = await decoding.WaitAsync(TimeSpan.FromSeconds(20));   // a TimeoutException: the decoding did not end
        Assert.True(error.Rejection == ImageRejection.NotDecodable, $"{form}: {error.Rejection}, {error.Message}");
        Assert.StartsWith("The PNG image is corrupt: its image data is damaged: zlib refuses it before it gives the ", error.Message);
    }

    /// <summary>
    /// Damage in a PNG's image data well after its rows (here a 200-byte stored block, then a block of an invalid type) is
    /// not judged: Pillow inflates row by row and stops at the last, and reads the file; so does the service.
    /// </summary>
    [Fact]
    public void DamageInAPngsImageDataAfterItsRowsIsNotJudged()
    {
        var file = Convert.FromBase64String(
            "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAABJElEQVR4nABIALf/AAAePFp4lrTSAAclQ2F/nbvZAA4sSmiGpMLgABUzUW+Nq8nnABw6WHaUstDuACNBX32budf1ACpIZoSiwN78ADFPbYupx+UDAAAA//8AyAA3/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABwAASJcwygAAAABJRU5ErkJggg==");
        var path = Path.Combine(Path.GetTempPath(), $"protopnet-png-{Guid.NewGuid():N}.png");
        File.WriteAllBytes(path, file);
        try
        {
            Assert.Equal("0 30 60 90", Pillow.RunPython(
                "import sys\nfrom PIL import Image\nim = Image.open(sys.argv[1])\nprint(' '.join(str(v) for v in list(im.getdata())[:4]))", path).Trim());
        }
        finally
        {
            File.Delete(path);
        }
        using var decoded = _decoder.Decode(file);
        Assert.Equal(new Rgb24(30, 30, 30), decoded.Pixels[1, 0]);
        Assert.Equal(new Rgb24(90, 90, 90), decoded.Pixels[3, 0]);
    }

    /// <summary>The PNG with its image data in two IDAT chunks, a tEXt chunk between them.</summary>
    private static byte[] PngWithATextChunkInItsImageData(byte[] png)
    {
        var whole = PngWithHalfItsImageData(png, keep: 1.0);
        var idat = whole.AsSpan().IndexOf("IDAT"u8) - 4;
        var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(whole.AsSpan(idat));
        var data = whole.AsSpan(idat + 8, length).ToArray();
        return [.. whole.AsSpan(0, idat), .. TestImages.PngChunk("IDAT", data[..(length / 2)]), .. TestImages.PngChunk("tEXt", "Comment\0between"u8.ToArray()),
            .. TestImages.PngChunk("IDAT", data[(length / 2)..]), .. whole.AsSpan(idat + 12 + length)];
    }

    /// <summary>The PNG with its IDAT chunks replaced by one holding the first half (<paramref name="keep"/>) of their compressed data (with its CRC).</summary>
    private static byte[] PngWithHalfItsImageData(byte[] png, double keep = 0.5)
    {
        var (before, data, after) = (new List<byte>(), new List<byte>(), new List<byte>());
        for (var position = 8; position < png.Length;)
        {
            var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(position));
            var type = System.Text.Encoding.ASCII.GetString(png, position + 4, 4);
            var chunk = png.AsSpan(position, 12 + length);
            if (type == "IDAT") data.AddRange(chunk.Slice(8, length).ToArray());
            else (data.Count == 0 ? before : after).AddRange(chunk.ToArray());
            position += 12 + length;
        }
        var half = data.Take((int)(data.Count * keep)).ToArray();
        return [.. png.AsSpan(0, 8).ToArray(), .. before, .. TestImages.PngChunk("IDAT", half), .. after];
    }

    /// <summary>The GIF with its first frame's LZW data cut to the first half, in whole sub-blocks ended by a 0 block.</summary>
    private static byte[] GifWithHalfItsFirstFrame(byte[] gif)
    {
        static int ColorTable(byte flags) => (flags & 0x80) != 0 ? 3 << ((flags & 0x07) + 1) : 0;
        var position = 13 + ColorTable(gif[10]);
        while (gif[position] == 0x21)   // extensions before the first frame: a label, then sub-blocks
        {
            position += 2;
            while (gif[position] != 0) position += gif[position] + 1;
            position++;
        }
        Assert.Equal(0x2C, gif[position]);
        var dataStart = position + 10 + ColorTable(gif[position + 9]) + 1;   // after the descriptor, its colour table and the LZW code size
        var data = new List<byte>();
        var end = dataStart;
        while (gif[end] != 0)
        {
            data.AddRange(gif.AsSpan(end + 1, gif[end]).ToArray());
            end += gif[end] + 1;
        }
        var half = data.Take(data.Count / 2).ToArray();
        var blocks = half.Chunk(255).SelectMany(block => (byte[])[(byte)block.Length, .. block]);
        return [.. gif.AsSpan(0, dataStart).ToArray(), .. blocks, .. gif.AsSpan(end).ToArray()];
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
