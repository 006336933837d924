using System.Buffers.Binary;
using System.Text;
using ProtoPNet.Inference.Bundles;
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
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Inference.Tests;

public class ImageDecoderTests
{
    private readonly ImageDecoder _decoder = new(new ImageLimits());

    /// <summary>
    /// An exception of the decoder's own code (not a refusal) is refused as not decodable, and reported to the fault
    /// callback (the service logs it and counts it in /metrics): a 400 to the client, not a 500. The header's pixel count,
    /// which the service asks before decoding (on a socket thread), is then unknown.
    /// </summary>
    [Fact]
    public void ADecodersOwnFaultIsRefusedAsNotDecodableAndReported()
    {
        var faults = new List<Exception>();
        var decoder = new ImageDecoder(new ImageLimits(), faults.Add);
        var refusal = Assert.Throws<ImageRejectedException>(() => decoder.Decode(new UnreadableBytes(1000).Memory));
        Assert.Equal(ImageRejection.NotDecodable, refusal.Rejection);
        Assert.StartsWith("The image cannot be decoded here: the decoder failed on it (InvalidOperationException)", refusal.Message);
        Assert.Equal("these bytes cannot be read", Assert.Single(faults).Message);
        Assert.Same(faults[0], refusal.InnerException);
        Assert.Null(ImageDecoder.PixelCount(new UnreadableBytes(1000).Memory));   // a hint before decoding: the decode reports the fault

        // Refusals are not faults.
        Assert.Throws<ImageRejectedException>(() => decoder.Decode(new byte[] { 1, 2, 3 }));
        Assert.Throws<ImageRejectedException>(() => decoder.Decode(TestImages.PngHeaderOnly(4, 4)));
        Assert.Single(faults);
    }

    public static TheoryData<string> Formats => ["png", "jpeg", "gif", "bmp", "webp", "tiff"];

    /// <summary>The image file at <paramref name="path"/> as the trainer reads it (its open_image: EXIF applied, transparency over white): its size, and its RGB bytes row by row.</summary>
    internal static (int Width, int Height, byte[] Rgb) TrainersPixels(string path)
    {
        var lines = Pillow.RunPython(
            "import sys\nfrom protopnet_trainer.image_files import open_image\nim = open_image(sys.argv[1])\nprint(im.width, im.height)\nprint(' '.join(str(v) for p in im.getdata() for v in p))",
            path).Trim().Split('\n');
        var size = lines[0].Split(' ').Select(int.Parse).ToArray();
        return (size[0], size[1], lines[1].Split(' ').Select(byte.Parse).ToArray());
    }

    /// <summary>Asserts that <paramref name="decoded"/> is, pixel for pixel, the picture the trainer reads from the same file.</summary>
    internal static void AssertTheTrainersPixels((int Width, int Height, byte[] Rgb) trainers, DecodedImage decoded, string what)
    {
        Assert.Equal((trainers.Width, trainers.Height), (decoded.Pixels.Width, decoded.Pixels.Height));
        for (var y = 0; y < trainers.Height; y++)
        for (var x = 0; x < trainers.Width; x++)
        {
            var i = 3 * (y * trainers.Width + x);
            var expected = new Rgb24(trainers.Rgb[i], trainers.Rgb[i + 1], trainers.Rgb[i + 2]);
            Assert.True(expected == decoded.Pixels[x, y], $"{what}: pixel ({x}, {y}) is {decoded.Pixels[x, y]}, the trainer's is {expected}");
        }
    }

    /// <summary>Asserts that each named file in <paramref name="folder"/> decodes to the trainer's pixels.</summary>
    private void AssertEachDecodesToTheTrainersPixels(string folder, params string[] names)
    {
        foreach (var name in names)
        {
            var path = Path.Combine(folder, name);
            using var decoded = _decoder.Decode(File.ReadAllBytes(path));
            AssertTheTrainersPixels(TrainersPixels(path), decoded, name);
        }
    }

    /// <summary>
    /// What lies before a GIF's first image that Pillow reads, or passes over, and ImageSharp would not read as it does:
    /// stray bytes and extensions of undefined labels (ImageSharp refused them, "No data", a mutation fuzzer's find),
    /// graphic control extensions of another size than 4 bytes or with more data (ImageSharp reads one at a fixed size),
    /// and two of them, a transparent one first (Pillow keeps its transparent index, ImageSharp only the last one's). The
    /// decoded pixels are the trainer's own (its open_image: the first frame, transparency over white).
    /// </summary>
    [Theory]
    [InlineData("stray bytes", new byte[] { 0x00, 0x07, 0x13 })]
    [InlineData("an extension of label 0", new byte[] { 0x21, 0x00, 0x02, 0x61, 0x62, 0x00 })]
    [InlineData("an extension of label 99 between two stray bytes", new byte[] { 0x05, 0x21, 0x99, 0x01, 0x7A, 0x00, 0x06 })]
    [InlineData("a graphic control extension of 3 bytes, its fourth left over as a stray", new byte[] { 0x21, 0xF9, 0x03, 0x00, 0x0A, 0x00, 0x00, 0x00 })]
    [InlineData("a graphic control extension of 3 bytes, right before the image", new byte[] { 0x21, 0xF9, 0x03, 0x00, 0x0A, 0x00, 0x00 })]
    [InlineData("a graphic control extension with more data", new byte[] { 0x21, 0xF9, 0x04, 0x00, 0x0A, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x00 })]
    [InlineData("a transparent graphic control extension, then an opaque one", new byte[] { 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00, 0x21, 0xF9, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00 })]
    public void WhatPillowReadsBeforeAGifsFirstImageIsReadAsPillowReadsIt(string what, byte[] before)
    {
        using var pattern = TestImages.Pattern(6, 5);
        var clean = TestImages.Encode(pattern, new GifEncoder());
        Assert.True(GifBlocks.WithoutStrayBlocks(clean).Span.SequenceEqual(clean), "a regular GIF is written anew");
        var at = GifBlocks.FirstImageDescriptor(clean) ?? throw new Xunit.Sdk.XunitException("no image descriptor");
        byte[] changed = [.. clean.AsSpan(0, at), .. before, .. clean.AsSpan(at)];
        using var temporary = new TemporaryDirectory("protopnet-gif-prelude-");
        var path = Path.Combine(temporary.Path, "changed.gif");
        File.WriteAllBytes(path, changed);
        var trainers = TrainersPixels(path);
        Assert.Equal((6, 5), (trainers.Width, trainers.Height));
        using var decoded = _decoder.Decode(changed);
        AssertTheTrainersPixels(trainers, decoded, what);
    }

    /// <summary>
    /// A BMP of 16, 24 or 32 bits per pixel whose header counts palette colours (biClrUsed), which no such image has:
    /// Pillow passes over the count, ImageSharp refused the file ("Reading the color map would read beyond the bitmap
    /// offset", a mutation fuzzer's find). It decodes to the trainer's pixels, as the same file without the count does.
    /// </summary>
    [Theory]
    [InlineData(24, 17u)]
    [InlineData(24, 256u)]
    [InlineData(32, 16u)]
    [InlineData(16, 257u)]
    public void AColourCountInABmpOfMoreThan8BitsIsPassedOverAsPillowDoes(int bitsPerPixel, uint coloursUsed)
    {
        using var pattern = TestImages.Pattern(7, 5);
        var uncounted = TestImages.Encode(pattern, new BmpEncoder { BitsPerPixel = (BmpBitsPerPixel)bitsPerPixel });
        Assert.Equal(bitsPerPixel, BitConverter.ToUInt16(uncounted, 28));
        var file = (byte[])uncounted.Clone();
        BitConverter.TryWriteBytes(file.AsSpan(46), coloursUsed);
        using var temporary = new TemporaryDirectory("protopnet-bmp-colours-");
        var path = Path.Combine(temporary.Path, "counted.bmp");
        File.WriteAllBytes(path, file);
        var trainers = TrainersPixels(path);
        using var decoded = _decoder.Decode(file);
        using var withoutCount = _decoder.Decode(uncounted);
        for (var y = 0; y < 5; y++)
        for (var x = 0; x < 7; x++) Assert.Equal(withoutCount.Pixels[x, y], decoded.Pixels[x, y]);
        AssertTheTrainersPixels(trainers, decoded, $"{bitsPerPixel} bits, {coloursUsed} colours used");
    }

    /// <summary>
    /// A 32-bit BMP without masks holds blue, green, red and an unused byte: Pillow passes over that byte, ImageSharp took
    /// it for alpha unless it was 0 everywhere (a pixel whose byte is 0 beside one whose byte is 128 came out white, over
    /// white). It decodes to the trainer's pixels, whatever the unused bytes hold, with a 40- or a 124-byte header.
    /// </summary>
    [Fact]
    public void A32BitBmpsUnusedByteIsNotTakenForAlpha()
    {
        using var temporary = new TemporaryDirectory("protopnet-bmp32-");
        Pillow.RunPython("""
            import os, struct, sys
            def bmp(name, pixels, header_size):
                row = b"".join(bytes(pixel) for pixel in pixels)
                header = struct.pack("<IiiHHIIiiII", header_size, len(pixels), 1, 1, 32, 0, len(row), 2835, 2835, 0, 0) + bytes(header_size - 40)
                open(os.path.join(sys.argv[1], name), "wb").write(b"BM" + struct.pack("<IHHI", 14 + header_size + len(row), 0, 0, 14 + header_size) + header + row)
            pixels = [(10, 20, 30, 0), (200, 100, 50, 128), (5, 250, 90, 255), (60, 60, 60, 7)]
            bmp("v3.bmp", pixels, 40)
            bmp("v5.bmp", pixels, 124)
            row = b"".join(bytes(pixel) for pixel in pixels)   # OS/2's core header: 16-bit sizes, read as BGRX too
            open(os.path.join(sys.argv[1], "core.bmp"), "wb").write(b"BM" + struct.pack("<IHHI", 26 + len(row), 0, 0, 26) + struct.pack("<IHHHH", 12, len(pixels), 1, 1, 32) + row)
            """, temporary.Path);
        AssertEachDecodesToTheTrainersPixels(temporary.Path, "v3.bmp", "v5.bmp", "core.bmp");
    }

    /// <summary>
    /// A 32-bit BITFIELDS BMP whose masks are all 0 is read by Pillow as blue, green, red and alpha (its BGRA layout);
    /// ImageSharp read every channel through its empty mask, black. It decodes to the trainer's pixels (alpha over
    /// white), with a 40-, 108- or 124-byte header, rows bottom-up or top-down, a pixel data offset of 0 (after the header) too.
    /// </summary>
    [Fact]
    public void A32BitBmpWithEmptyMasksIsReadAsBgra()
    {
        using var temporary = new TemporaryDirectory("protopnet-bmp-masks-");
        Pillow.RunPython("""
            import os, struct, sys
            def bmp(name, header_size, top_down, offset_zero=False):
                width, height = 3, 2
                pixels = b"".join(struct.pack("<BBBB", 40 * i, 250 - 30 * i, 7 * i + 3, (0, 128, 255, 64, 200, 17)[i]) for i in range(width * height))
                header = struct.pack("<IiiHHIIiiII", header_size, width, -height if top_down else height, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
                masks = bytes(12 if header_size == 40 else header_size - 40)   # red, green, blue (and alpha) masks of 0
                start = 14 + len(header) + len(masks)
                # An offset of 0: Pillow reads the pixels from where the header (and the masks after a 40-byte one) end.
                open(os.path.join(sys.argv[1], name), "wb").write(b"BM" + struct.pack("<IHHI", start + len(pixels), 0, 0, 0 if offset_zero else start) + header + masks + pixels)
            for size in (40, 108, 124):
                bmp(f"v{size}.bmp", size, False)
                bmp(f"v{size}-top-down.bmp", size, True)
                bmp(f"v{size}-offset-0.bmp", size, False, offset_zero=True)
            """, temporary.Path);
        AssertEachDecodesToTheTrainersPixels(temporary.Path, "v40.bmp", "v40-top-down.bmp", "v40-offset-0.bmp", "v108.bmp", "v108-top-down.bmp",
            "v108-offset-0.bmp", "v124.bmp", "v124-top-down.bmp", "v124-offset-0.bmp");
    }

    /// <summary>
    /// A BMP with OS/2 2.x's 64-byte info header and compression 3 (Huffman 1D to OS/2) is read by Pillow as BITFIELDS,
    /// its red, green, blue and alpha masks from the OS/2 fields after the first 40 bytes; ImageSharp took it for Huffman
    /// and refused it. Every 16- and 32-bit layout Pillow reads so (BGRX, XBGR, ABGR, RGBA, BGRA, masks all 0; 565, 555)
    /// decodes to the trainer's pixels, bottom-up and top-down, the pixels after a gap or at offset 0 (right after the
    /// header); masks of another layout, or compression 3 at 8 bits, are refused by both.
    /// </summary>
    [Fact]
    public void AnOs2BmpWithCompression3IsReadWithItsMasksAsPillowReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-bmp-os2-");
        var verdicts = TrainerParity.Verdicts(Pillow.RunPython(TrainerParity.Script + """
            def bmp(name, bits, masks=(0, 0, 0, 0), top_down=False, offset=None):
                width, height = 5, 3
                row = ((width * bits + 31) >> 3) & ~3
                pixels = b"".join(bytes((x * 37 + y * 101 + k * 53 + 7) % 256 for x in range(width) for k in range(bits // 8)).ljust(row, b"\0") for y in range(height))
                header = struct.pack("<IiiHHIIiiII4I", 64, width, -height if top_down else height, 1, bits, 3, len(pixels), 2835, 2835, 0, 0, *masks).ljust(64, b"\0")
                start = 14 + len(header) + (6 if offset == "gap" else 0)
                head = b"BM" + struct.pack("<IHHI", start + len(pixels), 0, 0, 0 if offset == "zero" else start)
                open(path(name), "wb").write((head + header).ljust(start, b"\0") + pixels)
            layouts = {"bgrx": (0xFF0000, 0xFF00, 0xFF, 0), "xbgr": (0xFF000000, 0xFF0000, 0xFF00, 0), "abgr": (0xFF000000, 0xFF0000, 0xFF00, 0xFF),
                       "rgba": (0xFF, 0xFF00, 0xFF0000, 0xFF000000), "bgra": (0xFF0000, 0xFF00, 0xFF, 0xFF000000), "zero": (0, 0, 0, 0)}
            for layout, masks in layouts.items():
                bmp(f"32-{layout}.bmp", 32, masks)
                bmp(f"32-{layout}-top-down.bmp", 32, masks, top_down=True)
            bmp("32-bgra-gap.bmp", 32, layouts["bgra"], offset="gap")
            bmp("32-bgrx-offset-0.bmp", 32, layouts["bgrx"], offset="zero")
            bmp("16-565.bmp", 16, (0xF800, 0x7E0, 0x1F, 0))
            bmp("16-555.bmp", 16, (0x7C00, 0x3E0, 0x1F, 0))
            bmp("16-555-top-down.bmp", 16, (0x7C00, 0x3E0, 0x1F, 0), top_down=True)
            bmp("refused-32-grb.bmp", 32, (0xFF00, 0xFF0000, 0xFF, 0))
            bmp("refused-16-zero.bmp", 16)
            bmp("refused-8-bits.bmp", 8)
            verdicts()
            """, temporary.Path));
        Assert.Equal(20, verdicts.Count);
        TrainerParity.AssertRefusedByName(verdicts);
        TrainerParity.AssertJudgedAlike(_decoder, temporary.Path, verdicts);
    }

    /// <summary>
    /// A 24-bit BITFIELDS BMP whose masks are red 0xFF0000, green 0xFF00 and blue 0xFF, the one 24-bit layout Pillow reads
    /// with masks, is read by Pillow as blue, green and red bytes; ImageSharp read it to other pixels. It decodes to the
    /// trainer's pixels with a 40-byte header (the masks after it), OS/2 2.x's 64 and versions 4 and 5, the pixels right
    /// after the header, after a gap, or at offset 0; masks in another order are refused by both.
    /// </summary>
    [Fact]
    public void A24BitBmpWithBitfieldsIsReadAsPillowReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-bmp-24-masks-");
        var verdicts = TrainerParity.Verdicts(Pillow.RunPython(TrainerParity.Script + """
            def bmp(name, header_size, masks, offset=None):
                width, height = 5, 3
                pixels = b"".join(bytes((x * 37 + y * 101 + k * 53 + 7) % 256 for x in range(width) for k in range(3)).ljust(16, b"\0") for y in range(height))
                header = struct.pack("<IiiHHIIiiII", header_size, width, height, 1, 24, 3, len(pixels), 2835, 2835, 0, 0)
                # A 40-byte header's masks follow it; the others' lie within it, an alpha mask of 0 beside them.
                header += struct.pack("<3I", *masks) if header_size == 40 else struct.pack("<4I", *masks, 0).ljust(header_size - 40, b"\0")
                start = 14 + len(header) + (10 if offset == "gap" else 0)
                head = b"BM" + struct.pack("<IHHI", start + len(pixels), 0, 0, 0 if offset == "zero" else start)
                open(path(name), "wb").write((head + header).ljust(start, b"\0") + pixels)
            for size in (40, 64, 108, 124):
                bmp(f"{size}.bmp", size, (0xFF0000, 0xFF00, 0xFF))
                bmp(f"{size}-gap.bmp", size, (0xFF0000, 0xFF00, 0xFF), offset="gap")
                bmp(f"{size}-offset-0.bmp", size, (0xFF0000, 0xFF00, 0xFF), offset="zero")
                bmp(f"refused-{size}-rgb.bmp", size, (0xFF, 0xFF00, 0xFF0000))
            verdicts()
            """, temporary.Path));
        Assert.Equal(16, verdicts.Count);
        TrainerParity.AssertRefusedByName(verdicts);
        TrainerParity.AssertJudgedAlike(_decoder, temporary.Path, verdicts);
    }

    /// <summary>
    /// Every level of a 16-bit BMP's channels, 555 (the default and its masks) and 565, decodes to the trainer's value:
    /// Pillow widens level v of max to v * 255 / max rounded down, ImageSharp repeats its bits (a 5-bit 16 was 132 here,
    /// 131 to the trainer).
    /// </summary>
    [Fact]
    public void EveryLevelOfA16BitBmpDecodesToTheTrainersValue()
    {
        using var temporary = new TemporaryDirectory("protopnet-bmp16-");
        Pillow.RunPython("""
            import os, struct, sys
            def bmp(name, pixels, masks):
                row = b"".join(struct.pack("<H", pixel) for pixel in pixels)
                row += bytes(-len(row) % 4)
                header = struct.pack("<IiiHHIIiiII", 40, len(pixels), 1, 1, 16, 3 if masks else 0, len(row), 2835, 2835, 0, 0)
                masks = struct.pack("<III", *masks) if masks else b""
                start = 14 + len(header) + len(masks)
                open(os.path.join(sys.argv[1], name), "wb").write(b"BM" + struct.pack("<IHHI", start + len(row), 0, 0, start) + header + masks + row)
            bmp("555.bmp", [v << 10 | v << 5 | v for v in range(32)], None)
            bmp("555-masks.bmp", [v << 10 | (31 - v) << 5 | v for v in range(32)], (0x7C00, 0x3E0, 0x1F))
            bmp("565.bmp", [(v >> 1) << 11 | v << 5 | (v >> 1) for v in range(64)], (0xF800, 0x7E0, 0x1F))
            bmp("one-pixel.bmp", [16 << 10 | 16 << 5 | 16], None)   # 58 bytes: no room for masks it does not have
            # OS/2's 12-byte core header, read as 555.
            row = b"".join(struct.pack("<H", v << 10 | v << 5 | v) for v in range(32))
            open(os.path.join(sys.argv[1], "core.bmp"), "wb").write(b"BM" + struct.pack("<IHHI", 26 + len(row), 0, 0, 26) + struct.pack("<IHHHH", 12, 32, 1, 1, 16) + row)
            """, temporary.Path);
        AssertEachDecodesToTheTrainersPixels(temporary.Path, "555.bmp", "555-masks.bmp", "565.bmp", "one-pixel.bmp", "core.bmp");
    }

    /// <summary>
    /// A GIF whose LZW minimum code size is 0 (1-bit codes that never widen: a clear code 1, an end code 2, and one
    /// colour) is refused, a size GIF does not allow: Pillow refuses one whose codes end before its pixels, which the
    /// service decoded (a fuzzer's find: a real GIF's code size changed to 0), and reads one whose codes give every pixel
    /// as colour 0 everywhere, which ImageSharp decodes as black (another picture than the trainer's).
    /// </summary>
    [Fact]
    public void AGifOfCodeSize0IsRefused()
    {
        // One colour on 1,280 pixels: a few dozen bytes of codes, read as 1-bit codes, give a pixel for each 0 bit, far fewer.
        using var plain = new Image<Rgba32>(40, 32, new Rgba32(200, 30, 30));
        var real = TestImages.Encode(plain, new GifEncoder());
        var at = GifBlocks.FirstImageDescriptor(real) ?? throw new Xunit.Sdk.XunitException("no image descriptor");
        var changed = (byte[])real.Clone();
        changed[at + 10 + GifBlocks.ColourTableBytes(real[at + 9])] = 0;
        // Two pixels of colour 0, (200, 30, 30): a clear code, two literals 0 and the end code, a bit each but the end's two.
        byte[] whole = [.. "GIF89a"u8, 2, 0, 1, 0, 0x80, 0, 0, 200, 30, 30, 255, 255, 255, 0x2C, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 1, 0b1001, 0, 0x3B];
        using var temporary = new TemporaryDirectory("protopnet-gif-size0-");
        File.WriteAllBytes(Path.Combine(temporary.Path, "changed.gif"), changed);
        File.WriteAllBytes(Path.Combine(temporary.Path, "whole.gif"), whole);

        Assert.Throws<InvalidOperationException>(() => TrainersPixels(Path.Combine(temporary.Path, "changed.gif")));
        Assert.Equal(new byte[] { 200, 30, 30, 200, 30, 30 }, TrainersPixels(Path.Combine(temporary.Path, "whole.gif")).Rgb);
        foreach (var gif in new[] { changed, whole })
        {
            var refused = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(gif).Dispose());
            Assert.Equal("The GIF image is corrupt: its first image's LZW minimum code size is 0, below the 2 GIF allows (the decoder here reads no colour from it).", refused.Message);
        }
    }

    /// <summary>
    /// Whatever lies before a GIF's first image, a file written anew holds one graphic control extension there at most:
    /// a megabyte of stray bytes, or 300 graphic control extensions, cost nothing more (one entry per stray byte let a
    /// 20 MB upload grow a list of hundreds of megabytes).
    /// </summary>
    [Fact]
    public void AGifsPreludeIsWrittenAnewFromWhatPillowReadsInIt()
    {
        using var pattern = TestImages.Pattern(6, 5);
        var clean = TestImages.Encode(pattern, new GifEncoder());
        var at = GifBlocks.FirstImageDescriptor(clean) ?? throw new Xunit.Sdk.XunitException("no image descriptor");
        byte[] Strayed(byte[] before) => [.. clean.AsSpan(0, at), .. before, .. clean.AsSpan(at)];

        var megabyte = Strayed(new byte[1 << 20]);
        Assert.True(GifBlocks.WithoutStrayBlocks(megabyte).Length <= clean.Length, "the stray bytes are left out");
        using (var expected = _decoder.Decode(clean))
        using (var decoded = _decoder.Decode(megabyte))
        {
            Assert.Equal(expected.Pixels[5, 4], decoded.Pixels[5, 4]);
        }
        byte[] control = [0x21, 0xF9, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00];
        var manyControls = Strayed([0x00, .. Enumerable.Range(0, 300).SelectMany(_ => control)]);
        Assert.True(GifBlocks.WithoutStrayBlocks(manyControls).Length <= clean.Length + control.Length, "300 graphic control extensions are written as one");
    }

    /// <summary>
    /// A WebP's bytes after its container are left off only when its chunks end within it: a RIFF size smaller than its
    /// own chunks (or than a chunk at all) is left for the other checks and the decoder, rather than cut to look truncated.
    /// </summary>
    [Fact]
    public void AWebpIsCutToItsContainerOnlyWhenItsChunksFitIt()
    {
        byte[] Webp(uint riffSize, uint chunkSize, int chunkBytes, int after) =>
            [.. "RIFF"u8, .. BitConverter.GetBytes(riffSize), .. "WEBP"u8, .. "VP8L"u8, .. BitConverter.GetBytes(chunkSize), .. new byte[chunkBytes], .. new byte[after]];
        Assert.Equal(30, WebpRiff.WithoutTrailingBytes(Webp(22, 10, 10, after: 7)).Length);   // cut after its 30 bytes
        Assert.Equal(30, WebpRiff.WithoutTrailingBytes(Webp(22, 9, 10, after: 7)).Length);    // an odd chunk, its pad byte inside
        Assert.Equal(29, WebpRiff.WithoutTrailingBytes(Webp(21, 9, 9, after: 8)).Length);     // its pad byte left out of the size, as writers may
        Assert.Equal(45, WebpRiff.WithoutTrailingBytes(Webp(22, 20, 20, after: 5)).Length);   // a chunk past the container: as it is
        Assert.Equal(30, WebpRiff.WithoutTrailingBytes(Webp(2, 10, 10, after: 0)).Length);    // a size under the header: as it is
    }

    /// <summary>
    /// A grey TIFF without PhotometricInterpretation: Pillow reads it as WhiteIsZero, its default (0 is white, the greys
    /// inverted); ImageSharp refused it, saying its BitsPerSample was not supported (a mutation fuzzer's find). It is
    /// given that default before decoding, and decodes to Pillow's pixels.
    /// </summary>
    [Fact]
    public void AGreyTiffWithoutPhotometricInterpretationIsReadAsPillowReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-photometric-");
        var path = Path.Combine(temporary.Path, "grey.tif");
        Pillow.RunPython("""
            import struct, sys
            from PIL import Image
            grey = Image.new("L", (12, 7))
            grey.putdata([(x * 20 + y * 9) % 256 for y in range(7) for x in range(12)])
            grey.save(sys.argv[1])
            data = bytearray(open(sys.argv[1], "rb").read())
            directory = struct.unpack("<I", data[4:8])[0]
            for i in range(struct.unpack("<H", data[directory:directory + 2])[0]):
                entry = directory + 2 + 12 * i
                if struct.unpack("<H", data[entry:entry + 2])[0] == 262:
                    data[entry:entry + 2] = struct.pack("<H", 263)   # Threshholding: no PhotometricInterpretation left
            open(sys.argv[1], "wb").write(data)
            assert 262 not in Image.open(sys.argv[1]).tag_v2
            """, path);
        var trainers = TrainersPixels(path);
        Assert.Equal(255, trainers.Rgb[0]);   // 0 stored, read as white
        using var decoded = _decoder.Decode(File.ReadAllBytes(path));
        AssertTheTrainersPixels(trainers, decoded, "a grey TIFF without PhotometricInterpretation");
    }

    /// <summary>
    /// A refusal's detail is one line of printable text, whatever the file holds (a mutation fuzzer's finds): a damaged
    /// WebP chunk's name was written as its raw bytes (a NUL among them), and ImageSharp's message for a file it does not
    /// recognise went on, line after line, to list its decoders.
    /// </summary>
    [Theory]
    [InlineData("a WebP chunk whose name is not letters", "(bytes 50485700) chunk at byte 32", "UklGRnYBAABXRUJQVlA4WAwAAAAQAAAAJwAAHwAAQUxQSFcAAAABFyAQSPI3m2qNiAgHR7FtxdEtlkiJn/SkBilZ/r42mVEQ0f8J4GhNrVAbRTVXUVnZTFBaGR5/9/33gmi5yk46KDoseloXFJsZaCUgGgClyhWh0tbU2QkAVlA4IPgAAAAwBwCdASooACAAPmksk0WkIqIVXAb8QAaEtgBWGcmejH7Z83kvPwegDTAOlLugAEUecGeqP6USL/pEFD4q5qvHp2AA/u0MPz5knqYp15URbvmXxgaR9rw6YCfnZlPvwzkW0uv+l+2/5/5/47HeyBjPicnT+fM126chw1/rf5uvgVhz/59/Hbn+Js0H8faP0Ce///fKxgNG/tbStWVGCuT/O5AMOECqMWD/JNJTcBVp6sHvf80mElc6xWGR+CmO7pu9CVj0yVUtf0I5Wl/6JL+XkF/uC2p/+sA/4iWx/a1oYN/I+Ov2Ux0WFf2pv6GX/w/OrY6iI6AAAA==")]
    [InlineData("a TIFF the decoder does not recognise", "its data is not an image in any format read here", "SUkqAEYBAAAAF06dOnQ6HQ6HQ6HQ6HQ6HQ6HQ4AJqDYACag2AAmoLj4+Pj48PDwAJrD4+PjvwXABNQe0Oh1YIACah7Xq8fHx8AE1x4ehWnUIdOEABNQg6hWnXiAAmolqF6dDodjwAJrD46hQnQ6HQ6mMAE1G6hOnTqEOh1BAAmo7UJ06deh4fABNcedWnUJ06HQ6swATUrUJ0OrXpzABNSdQnVodQnVkACaw/ahOh1CtOox8AE1IdWoUIdOuTmACalCtOsTodDqCABNcetDp06HQ6onMAE1GOsTp06HQ6HVw+ACajhDqE6tcnIAE1h3ydQh1CHUDABNRB0OuWLBjoAE1Md2h1aHUKDHgATXHFHVodYoCgAmoeFiHUIcxzABNSHHCdWhzHGACaw5jj4MDoAE1DMHGPAAmox2OHHMcUAE1x8cNIAAJAAABAwABAAAAKAAAAAEBAwABAAAAIAAAAAIBAwABAAAAAQAAAAMBAwABAAAABwAAAAYBAwABAAAAAQAAABEBBAABAAAACAAAABYBAwABAAAAIAAAABcBBAABAAAAPQEAABwBAwABAAAAAQAAAAAAAAA=")]
    public void ARefusalOfADamagedFileIsOnePrintableLine(string what, string expected, string base64)
    {
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(Convert.FromBase64String(base64)).Dispose());
        Assert.Contains(expected, error.Message);
        Assert.True(error.Message.All(c => c >= ' ' && c < 0x7F), $"{what}: {error.Message}");
    }

    /// <summary>
    /// A JPEG whose sampling factors TurboJPEG 2 has no name for (here a chroma plane sampled 1x4, found by a mutation
    /// fuzzer) was refused with TurboJPEG's "Could not determine subsampling type"; libjpeg, and so the trainer's
    /// Pillow, decodes it. It is decoded by libjpeg-turbo still, to Pillow's pixels.
    /// </summary>
    [Fact]
    public void AJpegWhoseSamplingTurboJpegCannotNameIsDecoded()
    {
        var jpeg = Convert.FromBase64String(
            "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wAARCAAoADADASIAAhEBAxQB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwD1X/hH9FH/ADCLD/wGT/CquoWnhnSLRrq/s9MtoV/ikgQZOCcAYyTgHgcmta6uYbK0murh9kMMbSSNgnCgZJwOegr558QeJLzxXrAuLz5YVyILdW+WJf6k4GT39gAB0Rc5JzlJ2WrFTpKVSNOCV5NJfM7XUfiJ4Xt5tmneGobtQzBnkiSEEDoV+ViQeeoB6fhFZ/Enw88xF74Vigi28NAscpJ9MFV4685/CuA+zRf3P1NUnAEjAdATTw88NiW4xT07/wDDnXjsBicDFSqSWva/+SPorSZPDOuW5n0yLT7hF+8FhUMvJA3KRkZwcZHNXn0LSJG3PpVix6Za3Q/0r510XWr3QNTjv7CXZKnBU8q691Ydwf8A64wQDX0ToerQ65olpqUA2pcR7ivJ2sOGXJAzggjOOcVNXD+wlzw+/qcaquouWTuY/wARJZIfAeqNFIyMVjUlTg4Migj6EEg+xrwKAgTKSQBzyfpX07f2ceoadc2UpZYriJonKHBAYEHHvzXzdrWi3uganJYX8WyVOQw5V17Mp7g//WOCCK2w6U6cqT6/qCqOjVhVSvytP7ncXzY/76/nVCQ5lcjpk02irwmBjhm2ne515jm08dGMZRSsFe2fCOWSTwjOryMyx3jqgY5CjahwPQZJP1JrxuxsbrUr2Kzs4WmuJm2oi9Sf6DuSeAOa+jPDWj/2D4dstML73hj+ds5Bcks2OBxknHHTFVjJJQ5ep51Ja3NWsrXfDmmeI7RbfUrffsyYpFO14yRjIP5cHIOBkHFFFecm07o6GrnnGpfB68WbOl6nBJEWb5bpShQfwjKg7j6nA6dOeIbP4Pao8xF7qdnDFt4aFWlJPpgheOvOfwoorf61Vta5n7KJ6L4d8IaR4ZVjYQsZ3Xa9xK26RhnOOwA6dAM4Gc4rdoorCUnJ3ZaSWx//2Q==");
        Assert.True(TurboJpeg.IsAvailable, TurboJpeg.Description);
        using var temporary = new TemporaryDirectory("protopnet-sampling-");
        var path = Path.Combine(temporary.Path, "sampling.jpg");
        File.WriteAllBytes(path, jpeg);
        Assert.Equal("[(1, 2, 2, 0), (2, 1, 1, 1), (3, 1, 4, 1)]",
            Pillow.RunPython("import sys\nfrom PIL import Image\nprint(Image.open(sys.argv[1]).layer)", path).Trim());
        var trainers = TrainersPixels(path);
        Assert.Equal((48, 40), (trainers.Width, trainers.Height));
        using var decoded = _decoder.Decode(jpeg);
        AssertTheTrainersPixels(trainers, decoded, "a JPEG of unnamed sampling");
    }

    /// <summary>The pixel count from the header alone: a small file of many pixels counts them all; a non-image counts none.</summary>
    [Fact]
    public void PixelCountReadsTheHeaderOnly()
    {
        using var wide = new Image<Rgb24>(3000, 2000, new Rgb24(10, 200, 30));
        using var stream = new MemoryStream();
        wide.Save(stream, TestImages.Png);
        Assert.True(stream.Length < 64 * 1024, $"{stream.Length} bytes");
        Assert.Equal(6_000_000, ImageDecoder.PixelCount(stream.ToArray()));
        Assert.Null(ImageDecoder.PixelCount("not an image at all"u8.ToArray()));
        // An animated WebP: its canvas (40x30), read from its VP8X header.
        Assert.Equal(1_200, ImageDecoder.PixelCount(Convert.FromBase64String(
            "UklGRogAAABXRUJQVlA4WAoAAAACAAAAJwAAHQAAQU5JTQYAAAD/////AABBTk1GKgAAAAAAAAAAAAMAAAMAAGQAAABWUDhMEQAAAC8DwAAAB1CPIlem/4GI6H8AAEFOTUYqAAAAMgAAMgAAAwAAAwAAZAAAAFZQOEwRAAAALwPAAAAHUI8iV6b/gYjofwAA")));
    }

    private static IImageEncoder EncoderFor(string format) => format switch
    {
        "png" => TestImages.Png,
        "jpeg" => new JpegEncoder { Quality = 95 },
        "gif" => new GifEncoder(),
        "bmp" => new BmpEncoder(),
        "webp" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        "webp-lossy" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossy },
        "tiff" => new TiffEncoder(),
        _ => throw new ArgumentException(format),
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void DecodesEveryAcceptedFormat(string format)
    {
        using var image = TestImages.Pattern(40, 30);
        var bytes = TestImages.Encode(image, EncoderFor(format));
        using var decoded = _decoder.Decode(bytes);
        Assert.Equal(40, decoded.Width);
        Assert.Equal(30, decoded.Height);
        var corner = decoded.Pixels[2, 2];
        Assert.True(corner.B > 200 && corner.R < 60, $"{format}: top-left should be blue, was {corner}");
        var right = decoded.Pixels[39, 20];
        Assert.True(right.R > 200 && right.B < 60, $"{format}: right edge should be red, was {right}");
    }

    [Fact]
    public void GifTakesTheFirstFrame()
    {
        using var gif = new Image<Rgba32>(10, 10, new Rgba32(255, 0, 0));
        using var second = new Image<Rgba32>(10, 10, new Rgba32(0, 255, 0));
        gif.Frames.AddFrame(second.Frames.RootFrame);
        var bytes = TestImages.Encode(gif, new GifEncoder());
        using var decoded = _decoder.Decode(bytes);
        Assert.True(decoded.Pixels[5, 5].R > 200 && decoded.Pixels[5, 5].G < 50);
    }

    /// <summary>
    /// A GIF whose first frame reaches past its logical screen (smaller than the frame, or 0x0) is as large as the
    /// frame, as Pillow (the trainer's decoder) opens it; it was refused ("its fields contradict each other"). A frame
    /// too large is refused for its size, as any image, also where its size is beyond what the screen's fields can say.
    /// </summary>
    [Fact]
    public void AGifFrameLargerThanItsScreenIsDecodedAtTheFramesSize()
    {
        using var image = new Image<Rgba32>(20, 20, new Rgba32(200, 30, 30));
        for (var y = 0; y < 20; y++)
        {
            for (var x = 10; x < 20; x++) image[x, y] = new Rgba32(30, 30, 200);
        }
        var whole = TestImages.Encode(image, new GifEncoder());
        using var expected = _decoder.Decode(whole);
        byte[] WithScreen(byte[] file, ushort width, ushort height)
        {
            var copy = file.ToArray();
            BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(6), width);
            BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(8), height);
            return copy;
        }
        foreach (var (width, height) in new (ushort, ushort)[] { (10, 10), (0, 0), (20, 5) })
        {
            var file = WithScreen(whole, width, height);
            using var decoded = _decoder.Decode(file);
            Assert.Equal((20, 20), (decoded.Width, decoded.Height));
            for (var y = 0; y < 20; y++)
            {
                for (var x = 0; x < 20; x++) Assert.Equal(expected.Pixels[x, y], decoded.Pixels[x, y]);
            }
            var path = Path.Combine(Path.GetTempPath(), $"protopnet-gif-screen-{Guid.NewGuid():N}.gif");
            File.WriteAllBytes(path, file);
            try
            {
                Assert.Equal("20 20", Pillow.RunPython("import sys\nfrom PIL import Image\nprint(*Image.open(sys.argv[1]).size)", path).Trim());
            }
            finally
            {
                File.Delete(path);
            }
        }

        var descriptor = GifBlocks.FirstImageDescriptor(whole)!.Value;
        byte[] WithFrame(ushort left, ushort width, ushort height)
        {
            var copy = WithScreen(whole, 10, 10);
            BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(descriptor + 1), left);
            BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(descriptor + 5), width);
            BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(descriptor + 7), height);
            return copy;
        }
        var huge = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(WithFrame(0, 65535, 65535)));
        Assert.Equal(ImageRejection.TooManyPixels, huge.Rejection);
        Assert.StartsWith("The GIF image is 65535x65535 = 4294836225 pixels", huge.Message);
        var wide = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(WithFrame(65000, 1000, 1)));
        Assert.Equal(ImageRejection.SideTooLong, wide.Rejection);
        Assert.StartsWith("The GIF image is 66000x10 pixels", wide.Message);
    }

    [Fact]
    public void TransparencyIsCompositedOverWhite()
    {
        using var image = new Image<Rgba32>(4, 4, new Rgba32(0, 0, 0, 0));
        image[1, 1] = new Rgba32(0, 0, 0, 255);
        image[2, 2] = new Rgba32(0, 0, 0, 128);
        using var decoded = _decoder.Decode(TestImages.Encode(image, TestImages.Png));
        Assert.Equal(new Rgb24(255, 255, 255), decoded.Pixels[0, 0]);
        Assert.Equal(new Rgb24(0, 0, 0), decoded.Pixels[1, 1]);
        Assert.InRange(decoded.Pixels[2, 2].R, 120, 135);
    }

    [Theory]
    [InlineData(6, 90, "png")]   // orientation 6: stored rotated, display needs 90 degrees clockwise
    [InlineData(3, 180, "png")]
    [InlineData(8, 270, "png")]
    [InlineData(6, 90, "jpeg")]  // a JPEG is decoded straight to RGB: it must be turned upright too
    [InlineData(1, 0, "jpeg")]
    public void ExifOrientationIsApplied(ushort orientation, int storedRotation, string format)
    {
        using var upright = TestImages.Pattern(40, 20);
        using var stored = upright.Clone(context => context.Rotate((360 - storedRotation) % 360));
        stored.Metadata.ExifProfile = new ExifProfile();
        stored.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        var bytes = TestImages.Encode(stored, EncoderFor(format));
        using var decoded = _decoder.Decode(bytes);
        Assert.Equal(40, decoded.Width);
        Assert.Equal(20, decoded.Height);
        Assert.True(decoded.Pixels[1, 1].B > 200, $"top-left should be the blue corner after orientation, was {decoded.Pixels[1, 1]}");
        Assert.True(decoded.Pixels[39, 19].R > 200);
    }

    /// <summary>
    /// Every EXIF orientation, the mirrored ones too, gives back the upright image in both decoding paths (a JPEG is
    /// turned upright after its own decoder, other formats in ImageSharp's): the file stores the upright picture turned
    /// by the inverse of what its orientation tells a viewer to do.
    /// </summary>
    [Theory]
    [MemberData(nameof(EveryOrientation))]
    public void EveryExifOrientationGivesTheUprightImage(ushort orientation, string format)
    {
        using var upright = TestImages.Pattern(40, 20);
        using var stored = upright.Clone(context => _ = orientation switch
        {
            2 => context.Flip(FlipMode.Horizontal),
            3 => context.Rotate(RotateMode.Rotate180),
            4 => context.Flip(FlipMode.Vertical),
            5 => context.RotateFlip(RotateMode.Rotate90, FlipMode.Horizontal),    // transposed
            6 => context.Rotate(RotateMode.Rotate270),                           // a viewer turns it 90 degrees clockwise
            7 => context.RotateFlip(RotateMode.Rotate270, FlipMode.Horizontal),   // transversed
            8 => context.Rotate(RotateMode.Rotate90),
            _ => context,
        });
        stored.Metadata.ExifProfile = new ExifProfile();
        stored.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        using var decoded = _decoder.Decode(TestImages.Encode(stored, EncoderFor(format)));
        Assert.Equal((40, 20), (decoded.Width, decoded.Height));
        Assert.Equal((40, 20), (decoded.Pixels.Width, decoded.Pixels.Height));
        var difference = 0.0;
        for (var y = 0; y < 20; y++)
        for (var x = 0; x < 40; x++)
        {
            Rgba32 want = upright[x, y];
            var got = decoded.Pixels[x, y];
            difference += Math.Abs(want.R - got.R) + Math.Abs(want.G - got.G) + Math.Abs(want.B - got.B);
        }
        // A PNG is exact; a JPEG at quality 95 differs by a few levels (a mirrored one by about 40 a channel).
        Assert.InRange(difference / (40 * 20 * 3), 0, format == "png" ? 0 : 4);
    }

    public static TheoryData<ushort, string> EveryOrientation()
    {
        var data = new TheoryData<ushort, string>();
        foreach (var format in new[] { "png", "jpeg" })
        {
            for (ushort orientation = 1; orientation <= 8; orientation++) data.Add(orientation, format);
        }
        return data;
    }

    /// <summary>
    /// EXIF blocks ImageSharp's reader throws on when first asked: a directory that points at itself, and a tag that
    /// declares 2^31 values. Pillow, the trainer's decoder, reads no orientation from them and decodes the image; the
    /// service decodes it as stored too (it answered 500 for them), with the same pixels as the file without the block.
    /// </summary>
    [Theory]
    [InlineData("jpeg", "a directory that points at itself")]
    [InlineData("jpeg", "2^31 values")]
    [InlineData("png", "a directory that points at itself")]
    [InlineData("png", "2^31 values")]
    public void AnUnreadableExifBlockCountsAsNoOrientation(string format, string exif)
    {
        using var image = TestImages.Pattern(40, 20);
        var plain = TestImages.Encode(image, EncoderFor(format));
        var tiff = exif == "2^31 values" ? ExifDirectory(tag: 0x010E, type: 5, count: 0x7fffffff, value: 26, next: 0)
            : ExifDirectory(tag: 0x8769, type: 4, count: 1, value: 8, next: 8);   // the Exif sub-directory and the next one: itself
        byte[] withExif = format == "png"
            ? TestImages.WithChunkBeforeIdat(plain, "eXIf", tiff)
            : [.. plain[..2], 0xFF, 0xE1, .. BigEndian((ushort)(8 + tiff.Length)), .. "Exif\0\0"u8, .. tiff, .. plain[2..]];
        Assert.ThrowsAny<Exception>(() => Image.Identify(withExif)!.Metadata.ExifProfile!.GetValue(ExifTag.Orientation));

        using var decoded = _decoder.Decode(withExif);
        using var expected = _decoder.Decode(plain);
        Assert.Equal((40, 20), (decoded.Width, decoded.Height));
        for (var y = 0; y < 20; y++)
        for (var x = 0; x < 40; x++)
        {
            Assert.Equal(expected.Pixels[x, y], decoded.Pixels[x, y]);
        }
    }

    /// <summary>A little-endian TIFF header and one directory of one entry, as an EXIF block holds them.</summary>
    private static byte[] ExifDirectory(ushort tag, ushort type, uint count, uint value, uint next)
    {
        var block = new byte[8 + 2 + 12 + 4];
        "II*\0"u8.CopyTo(block);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(4), 8);
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(8), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(10), tag);
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(12), type);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(14), count);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(18), value);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(22), next);
        return block;
    }

    private static byte[] BigEndian(ushort value)
    {
        var bytes = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        return bytes;
    }

    /// <summary>
    /// A JPEG is decoded by libjpeg-turbo (TurboJpeg, installed by the test script and in the service image), the
    /// library Pillow decodes with: its pixels are Pillow's, to the last bit, for colour (both chroma subsamplings) and
    /// grey JPEGs. (ImageSharp's decoder, the fallback without the library, differs by a step in a few pixels.)
    /// </summary>
    /// <summary>
    /// A damaged JPEG is refused where Pillow refuses it (libjpeg's fatal errors: "broken data stream" to the trainer)
    /// and decoded where Pillow decodes it (libjpeg's warnings). ImageSharp, which decoded what it could of a file
    /// libjpeg-turbo found corrupt, classified files the trainer could not read.
    /// </summary>
    [Fact]
    public void ADamagedJpegIsRefusedWherePillowRefusesItAndDecodedWhereItDecodes()
    {
        Assert.True(TurboJpeg.IsAvailable, TurboJpeg.Description);
        using var picture = new Image<Rgba32>(48, 32);
        for (var y = 0; y < picture.Height; y++)
        for (var x = 0; x < picture.Width; x++) picture[x, y] = new Rgba32((byte)(x * 5), (byte)(y * 7), (byte)((x + y) * 3));
        var whole = TestImages.Encode(picture, new JpegEncoder { Quality = 90 });
        int Segment(byte marker) => Enumerable.Range(2, whole.Length - 3).First(i => whole[i] == 0xFF && whole[i + 1] == marker);
        var dqt = Segment(0xDB);
        var dqtLength = 2 + (whole[dqt + 2] << 8 | whole[dqt + 3]);
        var dht = Segment(0xC4);
        static byte[] With(byte[] bytes, Action<byte[]> change)
        {
            var copy = bytes.ToArray();
            change(copy);
            return copy;
        }
        var cases = new Dictionary<string, byte[]>
        {
            ["no quantization table"] = [.. whole[..dqt], .. whole[(dqt + dqtLength)..]],
            ["a Huffman table's counts overrun it"] = With(whole, bytes => bytes.AsSpan(dht + 5, 16).Fill(0xFF)),
            ["bytes before the end marker"] = [.. whole[..^2], .. Enumerable.Repeat((byte)0x55, 40), .. whole[^2..]],
        };
        var folder = Directory.CreateTempSubdirectory("protopnet-damaged-jpeg-").FullName;
        try
        {
            foreach (var (name, bytes) in cases) File.WriteAllBytes(Path.Combine(folder, name + ".jpg"), bytes);
            var pillow = Pillow.RunPython("""
                import os, sys
                from PIL import Image
                for name in sorted(os.listdir(sys.argv[1])):
                    try:
                        with Image.open(os.path.join(sys.argv[1], name)) as image:
                            image.convert("RGB")
                        print(name[:-4] + "|decoded")
                    except Exception:
                        print(name[:-4] + "|refused")
                """, folder).Trim().Split('\n').Select(line => line.Trim().Split('|')).ToDictionary(parts => parts[0], parts => parts[1]);
            Assert.Equal(new[] { "refused", "refused", "decoded" }, cases.Keys.Select(name => pillow[name]).ToArray());
            foreach (var (name, bytes) in cases)
            {
                if (pillow[name] == "decoded")
                {
                    _decoder.Decode(bytes).Dispose();
                    continue;
                }
                var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(bytes).Dispose());
                Assert.True(error.Rejection is ImageRejection.NotDecodable or ImageRejection.Truncated, $"{name}: {error.Rejection}: {error.Message}");
            }
            Assert.Contains("Quantization table 0x00 was not defined", Assert.Throws<ImageRejectedException>(() => _decoder.Decode(cases["no quantization table"]).Dispose()).Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData(JpegColorType.YCbCrRatio420)]
    [InlineData(JpegColorType.YCbCrRatio444)]
    [InlineData(JpegColorType.Luminance)]
    public void JpegPixelsArePillowsPixels(JpegColorType colorType)
    {
        Assert.True(TurboJpeg.IsAvailable, TurboJpeg.Description);
        var random = new Random(7);
        using var noisy = new Image<Rgba32>(67, 45);
        for (var y = 0; y < noisy.Height; y++)
        for (var x = 0; x < noisy.Width; x++)
        {
            noisy[x, y] = new Rgba32((byte)(x * 3), (byte)random.Next(256), (byte)(y * 5));
        }
        var bytes = TestImages.Encode(noisy, new JpegEncoder { Quality = 90, ColorType = colorType });
        using var decoded = _decoder.Decode(bytes);
        var ours = new byte[decoded.Width * decoded.Height * 3];
        decoded.Pixels.CopyPixelDataTo(ours);
        var folder = Directory.CreateTempSubdirectory("protopnet-jpeg-").FullName;
        byte[] pillows;
        try
        {
            var file = Path.Combine(folder, "noisy.jpg");
            File.WriteAllBytes(file, bytes);
            Pillow.RunPython("""
                import sys
                from PIL import Image
                with Image.open(sys.argv[1]) as image:
                    open(sys.argv[1] + ".rgb", "wb").write(image.convert("RGB").tobytes())
                """, file);
            pillows = File.ReadAllBytes(file + ".rgb");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }

        Assert.Equal(pillows.Length, ours.Length);
        var differing = Enumerable.Range(0, ours.Length).Count(i => ours[i] != pillows[i]);
        Assert.True(differing == 0, $"{differing} of {ours.Length} values differ from Pillow's");
        Assert.True(ours.Distinct().Count() > 100, $"only {ours.Distinct().Count()} distinct values");
    }

    /// <summary>
    /// Compressed metadata chunks are left out before decoding: 64 MiB of text squeezed into a small zTXt, iTXt or iCCP
    /// chunk is never inflated (the decoder did, without a limit), and the pixels are those of the file without it.
    /// </summary>
    [Theory]
    [InlineData("zTXt", "Comment\0\0")]
    [InlineData("iTXt", "Comment\0\u0001\0\0\0")]
    [InlineData("iCCP", "profile\0\0")]
    public void CompressedPngMetadataIsNotInflated(string type, string header)
    {
        using var image = TestImages.Pattern(40, 30);
        var plain = TestImages.Encode(image, TestImages.Png);
        using var squeezed = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(squeezed, System.IO.Compression.CompressionLevel.SmallestSize))
        {
            var text = new byte[1 << 20];
            text.AsSpan().Fill((byte)'A');
            for (var i = 0; i < 64; i++) zlib.Write(text);
        }
        var bomb = TestImages.WithChunkBeforeIdat(plain, type, [.. System.Text.Encoding.Latin1.GetBytes(header), .. squeezed.ToArray()]);
        Assert.True(bomb.Length < 200_000, $"{bomb.Length} bytes");
        Assert.Equal(plain, PngText.WithoutCompressedChunks(bomb).ToArray());

        var allocated = GC.GetAllocatedBytesForCurrentThread();
        using var decoded = _decoder.Decode(bomb);
        Assert.Equal(1200, ImageDecoder.PixelCount(bomb));
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.True(allocated < 16 << 20, $"decoding allocated {allocated} bytes");
        using var expected = _decoder.Decode(plain);
        Assert.Equal(PixelBytes(expected), PixelBytes(decoded));
    }

    private static byte[] PixelBytes(DecodedImage image)
    {
        var bytes = new byte[image.Width * image.Height * 3];
        image.Pixels.CopyPixelDataTo(bytes);
        return bytes;
    }

    /// <summary>
    /// A TIFF whose RowsPerStrip says far more rows than the image has (one strip, in the tag's own terms) has the tag
    /// clamped to the image's 5 rows before the decoder sizes its strip buffer by it, and decodes to the same pixels.
    /// (The decoder's buffers are not the GC's: an allocation count could not tell.)
    /// </summary>
    [Fact]
    public void ATiffDeclaringMoreRowsPerStripThanItHasDoesNotAllocateThem()
    {
        using var image = TestImages.Pattern(400, 5);   // 1,200-byte rows: one strip
        var plain = TestImages.Encode(image, new TiffEncoder());
        var huge = plain.ToArray();
        var ifd = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(huge.AsSpan(4));
        var entries = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(huge.AsSpan(ifd));
        var patched = new List<(int Field, ushort Type)>();
        for (var e = 0; e < entries; e++)
        {
            var entry = ifd + 2 + e * 12;
            if (System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(huge.AsSpan(entry)) != 278) continue;
            var type = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(huge.AsSpan(entry + 2));
            if (type == 3) System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(huge.AsSpan(entry + 8), ushort.MaxValue);
            else System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(huge.AsSpan(entry + 8), 1_000_000);
            patched.Add((entry + 8, type));
        }
        Assert.NotEmpty(patched);   // the encoder wrote a RowsPerStrip tag

        var clamped = TiffStrips.WithRowsPerStripClamped(huge).ToArray();
        foreach (var (field, type) in patched)
        {
            var rows = type == 3
                ? System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(clamped.AsSpan(field))
                : System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(clamped.AsSpan(field));
            Assert.Equal(5u, rows);
        }
        using var expected = _decoder.Decode(plain);
        using var decoded = _decoder.Decode(huge);
        Assert.Equal(PixelBytes(expected), PixelBytes(decoded));
    }

    /// <summary>
    /// The same in the forms the clamp once missed: BigTIFF (which the decoder reads too), and a directory naming
    /// RowsPerStrip twice, the oversized one first or last, in any of the tag's types: every entry the decoder could read
    /// says at most the image's 5 rows, and the image decodes to its pixels. (The decoder's buffers are not the GC's, so
    /// an allocation count cannot tell; a 39 KB BigTIFF of 8000x5000 declaring 100,000 rows took 0.9 GB before.)
    /// </summary>
    [Theory]
    [InlineData(true, new[] { 4 }, new[] { 10_000_000L })]
    [InlineData(true, new[] { 16 }, new[] { 10_000_000L })]
    [InlineData(true, new[] { 3 }, new[] { 60_000L })]
    [InlineData(false, new[] { 4, 4 }, new[] { 10_000_000L, 5L })]
    [InlineData(false, new[] { 4, 4 }, new[] { 5L, 10_000_000L })]
    [InlineData(false, new[] { 4 }, new[] { 10_000_000L })]
    [InlineData(true, new[] { 4, 16 }, new[] { 10_000_000L, 10_000_000L })]
    public void EveryRowsPerStripOfClassicOrBigTiffIsClamped(bool big, int[] types, long[] rows)
    {
        const int width = 400, height = 5;
        var pixels = Enumerable.Range(0, width * height).Select(i => (byte)(i * 7 % 251)).ToArray();
        var entries = types.Zip(rows, (type, value) => ((ushort)278, (ushort)type, (ulong)value)).ToArray();
        using var expected = _decoder.Decode(GreyTiff(big, width, height, pixels, ((ushort)278, (ushort)4, (ulong)height)));

        var file = GreyTiff(big, width, height, pixels, entries);
        var clamped = TiffStrips.WithRowsPerStripClamped(file).ToArray();
        var (countSize, entrySize, valueSize) = big ? (8, 20, 8) : (2, 12, 4);
        var directory = (big ? 16 : 8) + pixels.Length;
        for (var e = 0; e < entries.Length; e++)
        {
            var field = clamped.AsSpan(directory + countSize + (7 + e) * entrySize + 4 + valueSize);   // after the 7 entries before them
            var declared = types[e] switch
            {
                3 => System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(field),
                4 => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(field),
                _ => System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(field),
            };
            Assert.Equal((ulong)Math.Min(rows[e], height), declared);
        }

        using var decoded = _decoder.Decode(file);
        Assert.Equal((width, height), (decoded.Width, decoded.Height));
        Assert.Equal(PixelBytes(expected), PixelBytes(decoded));
    }

    /// <summary>
    /// An uncompressed 8-bit grey TIFF of one strip, little-endian, classic (42) or BigTIFF (43), with the RowsPerStrip
    /// entries given (tag, type, value), in order, among the entries a decoder needs.
    /// </summary>
    private static byte[] GreyTiff(bool big, int width, int height, byte[] pixels, params (ushort Tag, ushort Type, ulong Value)[] rowsEntries)
    {
        var offsetType = (ushort)(big ? 16 : 4);
        var header = big ? 16 : 8;
        var entries = new List<(ushort Tag, ushort Type, ulong Value)>
        {
            (256, 4, (ulong)width), (257, 4, (ulong)height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, offsetType, (ulong)header), (277, 3, 1),
        };
        entries.AddRange(rowsEntries);
        entries.Add((279, offsetType, (ulong)pixels.Length));
        var (countSize, entrySize, valueSize) = big ? (8, 20, 8) : (2, 12, 4);
        var directory = header + pixels.Length;
        var file = new byte[directory + countSize + entries.Count * entrySize + valueSize];
        var span = file.AsSpan();
        span[0] = (byte)'I';
        span[1] = (byte)'I';
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(span[2..], (ushort)(big ? 43 : 42));
        if (big)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(span[4..], 8);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(span[8..], (ulong)directory);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(span[directory..], (ulong)entries.Count);
        }
        else
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)directory);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(span[directory..], (ushort)entries.Count);
        }
        pixels.CopyTo(span[header..]);
        for (var e = 0; e < entries.Count; e++)
        {
            var (tag, type, value) = entries[e];
            var entry = span[(directory + countSize + e * entrySize)..];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(entry, tag);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(entry[2..], type);
            if (big) System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(entry[4..], 1);
            else System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], 1);
            var field = entry[(4 + valueSize)..];
            switch (type)
            {
                case 3: System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(field, (ushort)value); break;
                case 4: System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(field, (uint)value); break;
                default: System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(field, value); break;
            }
        }
        return file;
    }

    /// <summary>
    /// A file that declares far more pixels than its bytes could hold for any photograph (a one-colour lossless WebP: 25
    /// megapixels in a few hundred bytes, seconds of decoding) is refused before decoding; the same picture as a PNG, and
    /// a blank picture of a megapixel or less in any format, decode.
    /// </summary>
    [Fact]
    public void AFileDeclaringFarMorePixelsThanItsBytesHoldIsRefusedBeforeDecoding()
    {
        var decoder = new ImageDecoder(new ImageLimits());
        using var blank = new Image<Rgb24>(5000, 5000, new Rgb24(200, 200, 200));
        var webp = TestImages.Encode(blank, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless });
        Assert.True(webp.Length * ImageDecoder.MaxPixelsPerByte < 25_000_000, $"the WebP has {webp.Length} bytes");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var refused = Assert.Throws<ImageRejectedException>(() => decoder.Decode(webp));
        Assert.Equal(ImageRejection.TooManyPixels, refused.Rejection);
        Assert.Contains($"declares 25000000 pixels in {webp.Length} bytes, more than 4096 pixels a byte", refused.Message);
        Assert.True(watch.ElapsedMilliseconds < 500, $"refusing took {watch.ElapsedMilliseconds} ms");

        using var page = new Image<Rgb24>(1000, 1000, new Rgb24(200, 200, 200));   // a megapixel: not judged
        using (var decoded = decoder.Decode(TestImages.Encode(page, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }))) Assert.Equal(1000, decoded.Width);
        using var larger = new Image<Rgb24>(1500, 1500, new Rgb24(200, 200, 200));
        var png = TestImages.Encode(larger, new SixLabors.ImageSharp.Formats.Png.PngEncoder());   // deflate stays within about 1,000 pixels a byte
        using (var decoded = decoder.Decode(png)) Assert.Equal(1500, decoded.Width);
    }

    /// <summary>A progressive JPEG decodes; one whose last scan is repeated until it has more than 64 scans is refused.</summary>
    [Fact]
    public void AJpegWithHundredsOfScansIsRefused()
    {
        var folder = Directory.CreateTempSubdirectory("protopnet-scans-").FullName;
        byte[] progressive;
        try
        {
            var file = Path.Combine(folder, "progressive.jpg");
            Pillow.RunPython("""
                import sys
                from PIL import Image
                Image.radial_gradient("L").resize((64, 48)).convert("RGB").save(sys.argv[1], "JPEG", progressive=True, quality=90)
                """, file);
            progressive = File.ReadAllBytes(file);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
        using (var decoded = _decoder.Decode(progressive))
        {
            Assert.Equal(64, decoded.Width);
        }
        // The last scan, from its start-of-scan marker to the end-of-image marker, written 70 times.
        var lastScan = progressive.AsSpan().LastIndexOf([(byte)0xFF, (byte)0xDA]);
        var end = progressive.Length - 2;
        var scan = progressive[lastScan..end];
        var repeated = progressive[..end].Concat(Enumerable.Repeat(scan, 70).SelectMany(s => s)).Concat(progressive[end..]).ToArray();
        var refused = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(repeated));
        Assert.Equal(ImageRejection.NotDecodable, refused.Rejection);
        Assert.Contains($"scans; at most {ImageDecoder.MaxJpegScans} are decoded", refused.Message);
    }

    [Fact]
    public void TooManyBytesIsRejectedBeforeDecoding()
    {
        var decoder = new ImageDecoder(new ImageLimits { MaxBytes = 100 });
        using var image = TestImages.Pattern(40, 30);
        var error = Assert.Throws<ImageRejectedException>(() => decoder.Decode(TestImages.Encode(image, new BmpEncoder())));
        Assert.Equal(ImageRejection.TooManyBytes, error.Rejection);
    }

    [Fact]
    public void AnImageOfExactlyThePixelLimitIsDecodedAndOneColumnMoreIsRefused()
    {
        var decoder = new ImageDecoder(new ImageLimits { MaxPixels = 1000 });
        foreach (var (width, height) in new[] { (40, 25), (25, 40), (1000, 1) })
        {
            using var atLimit = TestImages.Pattern(width, height);
            using var decoded = decoder.Decode(TestImages.Encode(atLimit, TestImages.Png));
            Assert.Equal((width, height), (decoded.Width, decoded.Height));
        }
        using var over = TestImages.Pattern(41, 25);
        var error = Assert.Throws<ImageRejectedException>(() => decoder.Decode(TestImages.Encode(over, TestImages.Png)));
        Assert.Equal(ImageRejection.TooManyPixels, error.Rejection);
        Assert.Contains("41x25 = 1025 pixels; the limit is 1000 pixels", error.Message);
    }

    [Fact]
    public void PixelLimitIsCheckedFromTheHeader()
    {
        // 100000 x 100000 declared in a 45-byte file: refused without allocating 40 GB.
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(TestImages.PngHeaderOnly(100_000, 100_000)));
        Assert.Equal(ImageRejection.TooManyPixels, error.Rejection);
        Assert.Contains("10000000000 pixels", error.Message);
    }

    /// <summary>
    /// A header that declares a zero side, or more pixels than the limit, is refused as such in every format, also where
    /// ImageSharp refuses to identify such a header at all (a JPEG, GIF or lossy WebP side of 0, a BMP of 100000 x 100000).
    /// </summary>
    [Theory]
    [InlineData("png", 0, 30, ImageRejection.ZeroSized)]
    [InlineData("png", 100_000, 100_000, ImageRejection.TooManyPixels)]
    [InlineData("png", 4_000_000_000, 4_000_000_000, ImageRejection.TooManyPixels)]   // a product past long's range
    [InlineData("jpeg", 40, 0, ImageRejection.ZeroSized)]
    [InlineData("jpeg", 0, 30, ImageRejection.ZeroSized)]
    [InlineData("jpeg", 60_000, 60_000, ImageRejection.TooManyPixels)]
    [InlineData("gif", 0, 30, ImageRejection.ZeroSized)]
    [InlineData("gif", 40, 0, ImageRejection.ZeroSized)]
    [InlineData("gif", 65_535, 65_535, ImageRejection.TooManyPixels)]
    [InlineData("bmp", 0, 30, ImageRejection.ZeroSized)]
    [InlineData("bmp", 40, 0, ImageRejection.ZeroSized)]
    [InlineData("bmp", 100_000, 100_000, ImageRejection.TooManyPixels)]
    [InlineData("webp-lossy", 0, 30, ImageRejection.ZeroSized)]
    [InlineData("webp-lossy", 40, 0, ImageRejection.ZeroSized)]
    [InlineData("webp-lossy", 16_383, 16_383, ImageRejection.TooManyPixels)]
    [InlineData("webp", 16_384, 16_384, ImageRejection.TooManyPixels)]
    [InlineData("png", 1, 70_000, ImageRejection.SideTooLong)]
    [InlineData("png", 10_000_000, 2, ImageRejection.SideTooLong)]
    [InlineData("bmp", 1, 100_000, ImageRejection.SideTooLong)]
    public void DeclaredSizeIsJudgedBeforeDecoding(string format, long width, long height, ImageRejection expected)
    {
        using var image = TestImages.Pattern(40, 30);
        var bytes = TestImages.Encode(image, EncoderFor(format));
        TestImages.DeclareSize(bytes, format, width, height);
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(bytes));
        Assert.True(expected == error.Rejection, $"{format} {width}x{height}: {error.Rejection}, {error.Message}");
        Assert.Contains($"{width}x{height}", error.Message);
    }

    /// <summary>
    /// An animated WebP is its first frame (API.md: WebP, an animation's first frame), placed by the size its image
    /// declares (as libwebp does; not its ANMF header's); one libwebp would not show is refused as not decodable, saying
    /// why (these files come from an audit that sent them: the first of them was a 500).
    /// </summary>
    [Fact]
    public void AnAnimatedWebPIsDecodedAsItsFirstFrameAndAMalformedOneIsRefusedSayingWhy()
    {
        // Two 8x8 lossless frames, red then blue, written by Pillow (save_all=True, append_images=[...]).
        var animated = Convert.FromBase64String(
            "UklGRoQAAABXRUJQVlA4WAoAAAACAAAABwAABwAAQU5JTQYAAAAAAAAAAABBTk1GKAAAAAAAAAAAAAcAAAcAAGQAAAJWUDhMDwAAAC8HwAEABxD9j/4HIqL/AQBB"
            + "Tk1GKAAAAAAAAAAAAAcAAAcAAGQAAABWUDhMDwAAAC8HwAEABxDR//4HIqL/AQA=");
        using (var decoded = _decoder.Decode(animated))
        {
            Assert.Equal(("WebP", 8, 8), (decoded.Format, decoded.Width, decoded.Height));
            Assert.Equal(new Rgb24(255, 0, 0), decoded.Pixels[3, 5]);
        }

        // The first frame's ANMF header says 16 wide (byte 58): libwebp goes by the image's own 8, and so does the service.
        var headerSaysWider = animated.ToArray();
        headerSaysWider[58] = 15;
        using (var decoded = _decoder.Decode(headerSaysWider)) Assert.Equal((8, 8), (decoded.Width, decoded.Height));

        // An "Exif\0\0" marker twice before the frames: still the first frame (the second one was taken).
        var exifBeforeFrames = Convert.FromBase64String(
            "UklGRpgAAABXRUJQVlA4WAoAAAAKAAAAJwAAHQAAQU5JTQYAAAD/////AABFWElGDAAAAEV4aWYAAEV4aWYAAEFOTUYoAAAAAAAAAAAAAwAAAwAAZAAAAFZQOEwP"
            + "AAAALwPAAAAHEP2P/gciov8BAEFOTUYoAAAAAAAAAAAAJwAAHQAAZAAAAFZQOEwPAAAALydABwAHENH//gciov8BAA==");
        using (var decoded = _decoder.Decode(exifBeforeFrames)) Assert.Equal(new Rgb24(255, 0, 0), decoded.Pixels[1, 1]);

        foreach (var (file, reason) in new (string Base64, string Reason)[]
                 {
                     // A 40x30 canvas whose first frame's header says 10x10 but whose image is 100x100: a 500 from the canvas copy.
                     ("UklGRlwAAABXRUJQVlA4WAoAAAACAAAAJwAAHQAAQU5JTQYAAAD/////AABBTk1GMAAAAAAAAAAAAAkAAAkAAGQAAABWUDhMFwAAAC9jwBgAB1CPIlem/2EAEsL//VJE/1OJAA==",
                      "a frame (100x100 at 0,0) does not fit its 40x30 canvas"),
                     // A second frame off the canvas (it was served from its first).
                     ("UklGRogAAABXRUJQVlA4WAoAAAACAAAAJwAAHQAAQU5JTQYAAAD/////AABBTk1GKgAAAAAAAAAAAAMAAAMAAGQAAABWUDhMEQAAAC8DwAAAB1CPIlem/4GI6H8AAEFOTUYqAAAAMgAAMgAAAwAAAwAAZAAAAFZQOEwRAAAALwPAAAAHUI8iV6b/gYjofwAA",
                      "a frame (4x4 at 100,100) does not fit its 40x30 canvas"),
                     // A 7-byte VP8X (the height was read from the ANIM chunk's bytes: a 422 for too many pixels).
                     ("UklGRlQAAABXRUJQVlA4WAcAAAACAAAAJwAAAEFOSU0GAAAA/////wAAQU5NRioAAAAAAAAAAAADAAADAABkAAAAVlA4TBEAAAAvA8AAAAdQjyJXpv+BiOh/AAA=",
                      "its VP8X header is not 10 bytes long"),
                 })
        {
            var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(Convert.FromBase64String(file)));
            Assert.Equal(ImageRejection.NotDecodable, error.Rejection);
            Assert.Equal($"The WebP animation cannot be decoded: {reason}.", error.Message);
        }

        // Bytes after the size the RIFF header gives are not the file's (libwebp reads no further): an off-canvas frame
        // there is not looked at.
        var offCanvas = Convert.FromBase64String(
            "UklGRogAAABXRUJQVlA4WAoAAAACAAAAJwAAHQAAQU5JTQYAAAD/////AABBTk1GKgAAAAAAAAAAAAMAAAMAAGQAAABWUDhMEQAAAC8DwAAAB1CPIlem/4GI6H8AAEFOTUYqAAAAMgAAMgAAAwAAAwAAZAAAAFZQOEwRAAAALwPAAAAHUI8iV6b/gYjofwAA");
        var lastFrame = offCanvas.AsSpan().LastIndexOf("ANMF"u8);
        using (var decoded = _decoder.Decode((byte[])[.. animated, .. offCanvas.AsSpan(lastFrame)]))
        {
            Assert.Equal((8, 8), (decoded.Width, decoded.Height));
            Assert.Equal(new Rgb24(255, 0, 0), decoded.Pixels[3, 5]);
        }

        // The ANIM chunk renamed: frames with no animation header; both frames renamed: no frame.
        var noAnim = animated.ToArray();
        "XXXX"u8.CopyTo(noAnim.AsSpan(30));
        Assert.Equal("The WebP animation cannot be decoded: its frames come before its ANIM chunk.",
            Assert.Throws<ImageRejectedException>(() => _decoder.Decode(noAnim)).Message);
        var noFrames = animated.ToArray();
        for (var at = 0; at + 4 <= noFrames.Length; at++)
        {
            if (noFrames.AsSpan(at, 4).SequenceEqual("ANMF"u8)) "XXXX"u8.CopyTo(noFrames.AsSpan(at));
        }
        Assert.Equal("The WebP animation cannot be decoded: it has no frame.",
            Assert.Throws<ImageRejectedException>(() => _decoder.Decode(noFrames)).Message);
    }

    /// <summary>
    /// Bytes that begin with a format's signature but hold none of its structure are not decodable: no size is made up
    /// from them (they were refused as images of 1634886241x1734698849 or 0x0 pixels).
    /// </summary>
    [Theory]
    [InlineData("png-garbage")]
    [InlineData("png-zeros")]
    [InlineData("png-other-chunk")]
    [InlineData("bmp-garbage")]
    [InlineData("webp-lossy-garbage")]
    [InlineData("webp-lossless-garbage")]
    public void ASignatureFollowedByGarbageIsNotDecodableRatherThanOfAMadeUpSize(string kind)
    {
        byte[] pngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        static byte[] Riff(string chunk, byte[] body) =>
            [.. "RIFF"u8, .. BitConverter.GetBytes(4 + 8 + body.Length), .. "WEBP"u8, .. Encoding.ASCII.GetBytes(chunk), .. BitConverter.GetBytes(body.Length), .. body];
        var garbage = Encoding.ASCII.GetBytes("garbage, not a header; garbage, not a header; garbage, not a header");
        var file = kind switch
        {
            "png-garbage" => [.. pngSignature, .. garbage],
            "png-zeros" => [.. pngSignature, .. new byte[40]],
            // A chunk of the right length but another type where IHDR must come first.
            "png-other-chunk" => [.. pngSignature, 0, 0, 0, 13, .. "tEXt"u8, 0, 0, 0x10, 0, 0, 0, 0x10, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 0],
            "bmp-garbage" => [.. "BM"u8, .. Enumerable.Repeat((byte)'x', 60)],
            "webp-lossy-garbage" => Riff("VP8 ", garbage),
            "webp-lossless-garbage" => Riff("VP8L", garbage),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(file));
        Assert.True(error.Rejection == ImageRejection.NotDecodable, $"{kind}: {error.Rejection}, {error.Message}");
        Assert.DoesNotContain("pixels", error.Message);
    }

    /// <summary>
    /// A PackBits TIFF whose first run repeats a byte past its strip makes ImageSharp index out of its buffer: refused as
    /// not decodable with a reason a client can read, not the runtime's words; a compression ImageSharp does not support
    /// keeps its own words. (Such a strip is written anew after the file's end, cut at its rows as libtiff reads it, so
    /// ImageSharp meets it only where that cannot be done: here its StripOffsets are SHORTs and the file is longer than
    /// they reach, as no common writer makes it.) (A BMP of 0 bits per pixel, which made ImageSharp divide by zero, is refused before decoding:
    /// no BMP has that depth.)
    /// </summary>
    [Fact]
    public void ADecoderFaultOnAMalformedFileIsExplainedInPlainWords()
    {
        using var small = TestImages.Pattern(4, 2);
        var packBits = TestImages.Encode(small, new TiffEncoder { Compression = TiffCompression.PackBits, BitsPerPixel = TiffBitsPerPixel.Bit24 })
            .Concat(new byte[70_000]).ToArray();
        var strip = (int)TiffStripOffset(packBits);
        packBits[strip] = 0x81;   // repeat the next byte 128 times, in a strip of 24
        var offsets = TiffEntry(packBits, 273);
        Assert.Equal((4, 1u), (BinaryPrimitives.ReadUInt16LittleEndian(packBits.AsSpan(offsets + 2)), BinaryPrimitives.ReadUInt32LittleEndian(packBits.AsSpan(offsets + 4))));
        BinaryPrimitives.WriteUInt16LittleEndian(packBits.AsSpan(offsets + 2), 3);   // one LONG offset below 65,536 read as a SHORT: the same number
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(packBits));
        Assert.Equal(ImageRejection.NotDecodable, error.Rejection);
        Assert.Equal("The TIFF image is truncated or corrupt: its fields contradict each other (the decoder stopped on them)", error.Message);

        using var image = TestImages.Pattern(40, 30);
        var bytes = TestImages.Encode(image, EncoderFor("bmp"));
        var unsupported = bytes.ToArray();
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(28), 0);   // biBitCount
        error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(bytes));
        Assert.Equal("The BMP image is corrupt: its header declares 0 bits per pixel.", error.Message);

        BinaryPrimitives.WriteUInt32LittleEndian(unsupported.AsSpan(30), 4);   // biCompression: a JPEG inside, a kind BMP has
        error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(unsupported));
        Assert.Contains("Does not support this kind of bitmap", error.Message);
        BinaryPrimitives.WriteUInt32LittleEndian(unsupported.AsSpan(30), 99);  // a kind no BMP has, nor Pillow reads
        error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(unsupported));
        Assert.Equal("The BMP image is corrupt: its compression 99 is not one the trainer's Pillow reads (0 to 3: none, RLE8, RLE4, bitfields).", error.Message);
    }

    /// <summary>Where the first strip of a little-endian TIFF's first directory starts (its StripOffsets tag, 273).</summary>
    private static uint TiffStripOffset(byte[] tiff)
    {
        var entry = TiffEntry(tiff, 273);
        var type = BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(entry + 2));
        return type == 3 ? BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(entry + 8)) : BinaryPrimitives.ReadUInt32LittleEndian(tiff.AsSpan(entry + 8));
    }

    /// <summary>Where the first directory's entry of <paramref name="tag"/> lies in a little-endian TIFF.</summary>
    private static int TiffEntry(byte[] tiff, ushort tag)
    {
        var directory = (int)BinaryPrimitives.ReadUInt32LittleEndian(tiff.AsSpan(4));
        for (var entry = directory + 2; entry < directory + 2 + 12 * BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(directory)); entry += 12)
        {
            if (BinaryPrimitives.ReadUInt16LittleEndian(tiff.AsSpan(entry)) == tag) return entry;
        }
        throw new InvalidDataException($"the TIFF has no field {tag}");
    }

    [Fact]
    public void NotAnImageIsNotDecodable()
    {
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode("hello, this is text"u8.ToArray()));
        Assert.Equal(ImageRejection.NotDecodable, error.Rejection);
    }

    [Fact]
    public void TruncatedPngIsTruncated()
    {
        using var image = TestImages.Pattern(64, 64);
        var bytes = TestImages.Encode(image, TestImages.Png);
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(bytes.AsMemory(0, bytes.Length / 2)));
        Assert.Equal(ImageRejection.Truncated, error.Rejection);
    }

    [Fact]
    public void HeaderWithoutPixelDataIsNotDecodable()
    {
        var error = Assert.Throws<ImageRejectedException>(() => _decoder.Decode(TestImages.PngHeaderOnly(10, 10)));
        Assert.Equal(ImageRejection.NotDecodable, error.Rejection);
    }

    [Fact]
    public void GrayscaleUsesPilLuma()
    {
        using var rgb = new Image<Rgb24>(2, 1);
        rgb[0, 0] = new Rgb24(255, 0, 0);
        rgb[1, 0] = new Rgb24(10, 200, 30);
        using var gray = InputTensorWriter.ToGray(rgb);
        Assert.Equal(76, gray[0, 0].PackedValue);              // PIL: Image.new('RGB',(1,1),(255,0,0)).convert('L') -> 76
        Assert.Equal((10 * 19595 + 200 * 38470 + 30 * 7471 + 32768) >> 16, gray[1, 0].PackedValue);
    }

    [Fact]
    public void InputTensorIsChannelMajorInUnitRange()
    {
        using var image = new Image<Rgb24>(3, 2, new Rgb24(255, 0, 51));
        var input = new InputSection { Channels = 3, Height = 2, Width = 3, ColorSpace = "rgb" };
        var tensor = new float[1 + 18];
        InputTensorWriter.Write(image, input, tensor, 1);
        Assert.Equal(0f, tensor[0]);
        Assert.All(tensor.AsSpan(1, 6).ToArray(), v => Assert.Equal(1f, v));
        Assert.All(tensor.AsSpan(7, 6).ToArray(), v => Assert.Equal(0f, v));
        Assert.All(tensor.AsSpan(13, 6).ToArray(), v => Assert.Equal(0.2f, v, 1e-6f));
    }

    [Fact]
    public void InputTensorIsResizedToTheModelSize()
    {
        using var image = new Image<Rgb24>(280, 140, new Rgb24(128, 128, 128));
        var input = new InputSection { Channels = 1, Height = 28, Width = 28, ColorSpace = "gray", Interpolation = "bilinear" };
        var tensor = new float[28 * 28];
        InputTensorWriter.Write(image, input, tensor, 0);
        Assert.All(tensor, v => Assert.Equal(128f / 255f, v, 1e-3f));
    }

    [Theory]
    [InlineData(2100, 2000, 2049, 1951)]
    [InlineData(2000, 2000, 2000, 2000)]
    [InlineData(7300, 5475, 2309, 1732)]
    [InlineData(40_000_000, 1, 4_000_000, 1)]
    [InlineData(1, 40_000_000, 1, 4_000_000)]
    [InlineData(8_000_000, 2, 4_000_000, 1)]
    public void AnImageIsDrawnOnAtItsOwnSizeOrScaledDownToTheBound(int width, int height, int drawnWidth, int drawnHeight)
    {
        Assert.Equal((drawnWidth, drawnHeight), DecodedImage.DrawingSize(width, height, 4_000_000));
    }

    [Fact]
    public void TheDrawingSizeStaysWithinTheBoundAndKeepsTheAspect()
    {
        for (var width = 1; width <= 9000; width += 37)
        for (var height = 1; height <= 9000; height += 41)
        {
            var (w, h) = DecodedImage.DrawingSize(width, height, 4_000_000);
            Assert.True((long)w * h <= 4_000_000 && w <= width && h <= height, $"{width}x{height} -> {w}x{h}");
            if ((long)width * height <= 4_000_000) Assert.Equal((width, height), (w, h));
            else if (w > 1 && h > 1) Assert.InRange((double)width / height, (double)w / (h + 1), (double)(w + 1) / h);   // both sides rounded down
        }
        using var image = new DecodedImage(new Image<Rgb24>(2100, 2000), "PNG");
        image.ShrinkForDrawing(4_000_000);
        Assert.Equal((2049, 1951), (image.Pixels.Width, image.Pixels.Height));
        Assert.Equal((2100, 2000), (image.Width, image.Height));   // the upload's size stays, for boxes
        Assert.Equal((2100, 2000), image.Decoded);
    }
}
