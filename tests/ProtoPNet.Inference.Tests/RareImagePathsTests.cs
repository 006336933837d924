using System.Buffers.Binary;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The rarer layouts of GIF, WebP, TIFF and BMP that the decoder rewrites or judges before ImageSharp reads them, each
/// decoded to the trainer's own pixels (Pillow, through its open_image) or refused as the trainer's Pillow refuses it.
/// Written for the branches a mutation audit changed without any test noticing.
/// </summary>
public class RareImagePathsTests
{
    private readonly ImageDecoder _decoder = new(new ImageLimits());

    /// <summary>Decodes <paramref name="file"/> here and with the trainer's open_image, and asserts the same pixels.</summary>
    private void AssertDecodesToTheTrainersPixels(byte[] file, string extension, string what)
    {
        using var temporary = new TemporaryDirectory("protopnet-rare-");
        var path = Path.Combine(temporary.Path, "image." + extension);
        File.WriteAllBytes(path, file);
        var trainers = ImageDecoderTests.TrainersPixels(path);
        using var decoded = _decoder.Decode(file);
        ImageDecoderTests.AssertTheTrainersPixels(trainers, decoded, what);
    }

    /// <summary>
    /// LZW codes as a GIF stores them (least significant bit first), each pixel a literal after a clear code, so that the
    /// code width never grows: (2^minimumCodeSize, pixel)*, end code; then cut into sub-blocks and a terminator.
    /// </summary>
    private static byte[] GifImageData(int minimumCodeSize, IEnumerable<int> pixels)
    {
        var (clear, width) = (1 << minimumCodeSize, minimumCodeSize + 1);
        var codes = pixels.SelectMany(p => new[] { clear, p }).Append(clear + 1);
        var packed = new List<byte>();
        var (bits, count) = (0L, 0);
        foreach (var code in codes)
        {
            bits |= (long)code << count;
            for (count += width; count >= 8; count -= 8, bits >>= 8) packed.Add((byte)bits);
        }
        if (count > 0) packed.Add((byte)bits);
        var data = new List<byte> { (byte)minimumCodeSize };
        foreach (var block in packed.Chunk(255)) data.AddRange([(byte)block.Length, .. block]);
        data.Add(0);
        return [.. data];
    }

    /// <summary>
    /// A GIF89a: the screen (with a global table when given), a graphic control extension when a transparent index is
    /// given, one image descriptor and its data (with a local table when given), the trailer.
    /// </summary>
    private static byte[] Gif(int screenWidth, int screenHeight, byte[]? globalTable, int left, int top, int width, int height, byte[]? localTable,
        byte[] imageData, int? transparentIndex = null)
    {
        static byte TableFlags(byte[]? table) => table is null ? (byte)0 : (byte)(0x80 | (BitOperations(table.Length / 3) - 1));
        var file = new List<byte>("GIF89a"u8.ToArray());
        file.AddRange(BitConverter.GetBytes((ushort)screenWidth));
        file.AddRange(BitConverter.GetBytes((ushort)screenHeight));
        file.AddRange([TableFlags(globalTable), 0, 0]);
        file.AddRange(globalTable ?? []);
        if (transparentIndex is { } index) file.AddRange([0x21, 0xF9, 4, 1, 0, 0, (byte)index, 0]);
        file.Add(0x2C);
        foreach (var field in new[] { left, top, width, height }) file.AddRange(BitConverter.GetBytes((ushort)field));
        file.Add(TableFlags(localTable));
        file.AddRange(localTable ?? []);
        file.AddRange(imageData);
        file.Add(0x3B);
        return [.. file];
    }

    /// <summary>log2 of a colour table's entry count (2, 4, ... 256).</summary>
    private static int BitOperations(int entries) => System.Numerics.BitOperations.Log2((uint)entries);

    /// <summary>Four colours, colour 0's red far above the 11 an LZW minimum code size may be (a byte misread as one is refused).</summary>
    private static readonly byte[] FourColours = [200, 30, 30, 20, 180, 40, 10, 20, 240, 250, 250, 250];

    /// <summary>
    /// An LZW minimum code size of 11, the largest GIF's 12-bit codes allow (a clear code of 2048): Pillow reads it, and
    /// so is it read here; only sizes above it are refused (DamagedImageTests: 12 and 13).
    /// </summary>
    [Fact]
    public void AGifOfTheLargestLzwCodeSizeDecodesToTheTrainersPixels()
    {
        var gif = Gif(3, 2, FourColours, 0, 0, 3, 2, null, GifImageData(11, [0, 1, 2, 3, 2, 1]));
        Assert.Null(GifBlocks.FindCorruption(gif));
        AssertDecodesToTheTrainersPixels(gif, "gif", "code size 11");
    }

    /// <summary>
    /// A first image with a colour table of its own and none on the screen (as some encoders write every frame): the LZW
    /// code size follows the local table, whose bytes (here a red of 200 first) are no code size.
    /// </summary>
    [Fact]
    public void AGifWhoseFirstImageHasItsOwnColourTableDecodesToTheTrainersPixels()
    {
        var gif = Gif(3, 2, null, 0, 0, 3, 2, FourColours, GifImageData(2, [3, 2, 1, 0, 1, 2]));
        Assert.Null(GifBlocks.FindCorruption(gif));
        AssertDecodesToTheTrainersPixels(gif, "gif", "a local colour table");
    }

    /// <summary>
    /// A first frame placed to the right on a screen of its own size, so that it reaches past the screen's right edge
    /// only: Pillow opens the image wide enough to hold it (its left plus its width), not taller, and the frame's pixels
    /// are the trainer's. (The columns left of the frame are not compared: Pillow fills them with colour 0, the decoder
    /// here with black, a difference of its own.)
    /// </summary>
    [Fact]
    public void AGifFrameMovedRightPastItsScreenWidensTheImageAsPillowDoes()
    {
        var gif = Gif(3, 2, FourColours, 2, 0, 3, 2, null, GifImageData(2, [1, 2, 3, 3, 2, 1]));
        Assert.Equal((5L, 2L), GifScreen.Extent(gif));
        using var decoded = _decoder.Decode(gif);
        Assert.Equal((5, 2), (decoded.Width, decoded.Height));
        // Columns 0 and 1, outside the image, are colour 0 as in Pillow (ImageSharp painted them black).
        AssertDecodesToTheTrainersPixels(gif, "gif", "a frame moved past its screen's right edge");
    }

    /// <summary>
    /// A first image that covers only part of its screen: Pillow makes the rest index 0, colour 0 of the image's own
    /// table when it has one and of the screen's otherwise, or the transparent index when one is given (white once
    /// composited); ImageSharp painted it black.
    /// </summary>
    [Theory]
    [InlineData("the screen's table", false, null)]
    [InlineData("the image's own table", true, null)]
    [InlineData("a transparent index", false, 2)]
    public void AGifsScreenOutsideItsFirstImageIsFilledAsPillowFillsIt(string what, bool localTable, int? transparentIndex)
    {
        byte[] otherColours = [90, 60, 120, 0, 0, 0, 30, 200, 90, 140, 140, 20];
        var gif = Gif(6, 5, FourColours, 2, 1, 3, 2, localTable ? otherColours : null, GifImageData(2, [1, 2, 3, 3, 2, 1]), transparentIndex);
        AssertDecodesToTheTrainersPixels(gif, "gif", what);
        using var decoded = _decoder.Decode(gif);
        var corner = decoded.Pixels[0, 0];
        var expected = transparentIndex is not null ? (255, 255, 255) : localTable ? (90, 60, 120) : (200, 30, 30);
        Assert.Equal(expected, (corner.R, corner.G, corner.B));
    }

    /// <summary>
    /// RLE8 BMPs as Pillow follows their runs: an absolute run of an odd number of pixels is followed by a pad byte to
    /// the next 16-bit word; an end of line right after a full row adds no pixel, so data for three rows of four stays
    /// short and is refused by both.
    /// </summary>
    [Fact]
    public void Rle8BmpRunsArePaddedAndEndedAsPillowFollowsThem()
    {
        using var temporary = new TemporaryDirectory("protopnet-bmp-rle-");
        var verdicts = TrainerParity.Verdicts(Pillow.RunPython(TrainerParity.Script + """
            def rle_bmp(name, rows, width=5, height=4):
                # The rows' runs bottom-up, then an end of bitmap; a palette whose colours are each unlike their neighbours.
                palette = b"".join(bytes((g * 7 % 256, 255 - g, g, 0)) for g in range(256))
                data = b"".join(rows) + b"\0\1"
                header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 256, 0)
                start = 14 + 40 + len(palette)
                open(path(name), "wb").write(b"BM" + struct.pack("<IHHI", start + len(data), 0, 0, start) + header + palette + data)
            # An absolute run of 3 pixels and its pad byte, a run of 2, an end of line.
            row = lambda y: bytes((0, 3, 10 + y, 80 + y, 160 + y, 0, 2, 240 - y, 0, 0))
            rle_bmp("rle8-absolute-odd.bmp", [row(y) for y in range(4)])
            rle_bmp("refused-rle8-three-rows.bmp", [row(y) for y in range(3)])
            verdicts()
            """, temporary.Path));
        Assert.Equal(2, verdicts.Count);
        TrainerParity.AssertRefusedByName(verdicts);
        TrainerParity.AssertJudgedAlike(_decoder, temporary.Path, verdicts);
    }
}
