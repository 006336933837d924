using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A BMP's decoded pixels made those Pillow (the trainer's decoder) reads, where ImageSharp reads them otherwise:
/// <list type="bullet">
/// <item>16 bits a pixel: Pillow widens level v of a 5- or 6-bit channel to v * 255 / max, rounded down; ImageSharp
/// repeats the level's bits (v &lt;&lt; 3 | v &gt;&gt; 2 for 5 bits), so about half the levels came out one higher
/// than the trainer saw them (a 5-bit 16 is 131 to Pillow, 132 to ImageSharp). The levels are mapped back.</item>
/// <item>32 bits without masks: each pixel is blue, green, red and an unused byte, which Pillow passes over (BGRX);
/// ImageSharp takes that byte for alpha unless it is 0 everywhere, so a file whose unused bytes hold anything came out
/// partly transparent, paler over white (white where they are 0). The pixels are made opaque.</item>
/// <item>32 bits with masks (BITFIELDS) that are all 0: Pillow reads blue, green, red and alpha (BGRA); ImageSharp read
/// every channel through its empty mask, black. The pixels are read from the file as Pillow reads them.</item>
/// </list>
/// </summary>
public static class BmpPixelsAsPillow
{
    private const int PixelDataOffsetAt = 10, InfoHeaderAt = 14, WidthAt = 18, HeightAt = 22, BitCountAt = 28, CoreBitCountAt = 24, CompressionAt = 30,
        RedMaskAt = 54, GreenMaskAt = 58, AlphaMaskAt = 66;
    private const uint CoreHeader = 12, Uncompressed = 0, Bitfields = 3;

    private static readonly byte[] FiveBits = PillowLevels(5), SixBits = PillowLevels(6);

    /// <summary>Makes <paramref name="image"/>, decoded by ImageSharp from the BMP <paramref name="file"/>, the pixels Pillow reads from it.</summary>
    public static void Apply(Image<Rgba32> image, ReadOnlySpan<byte> file)
    {
        if (GreenBits(file) is { } greenBits) ToPillowLevels(image, greenBits);
        else if (IsBgrx(file)) MakeOpaque(image);
        else if (HasEmptyMasks(file)) ReadBgra(image, file);
    }

    /// <summary>How many bits a 16-bit BMP's green has (5: the default 555, or 555 masks; 6: 565 masks); null for any other file.</summary>
    internal static int? GreenBits(ReadOnlySpan<byte> file)
    {
        if (file.Length < InfoHeaderAt + 4 || file[0] != 'B' || file[1] != 'M') return null;
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]);
        // OS/2's core header has no compression: 16 bits are 555.
        if (headerSize == CoreHeader) return file.Length >= CoreBitCountAt + 2 && BinaryPrimitives.ReadUInt16LittleEndian(file[CoreBitCountAt..]) == 16 ? 5 : null;
        if (headerSize < 40 || file.Length < CompressionAt + 4 || BinaryPrimitives.ReadUInt16LittleEndian(file[BitCountAt..]) != 16) return null;
        return BinaryPrimitives.ReadUInt32LittleEndian(file[CompressionAt..]) switch
        {
            Uncompressed => 5,
            // The only masks Pillow reads (BmpPixelData refuses others).
            Bitfields when file.Length >= GreenMaskAt + 4 => BinaryPrimitives.ReadUInt32LittleEndian(file[GreenMaskAt..]) switch { 0x7E0 => 6, 0x3E0 => 5, _ => null },
            _ => null,
        };
    }

    /// <summary>Whether the file is a 32-bit BMP without masks (its fourth byte unused), OS/2's core header included.</summary>
    private static bool IsBgrx(ReadOnlySpan<byte> file)
    {
        if (file.Length < InfoHeaderAt + 4 || file[0] != 'B' || file[1] != 'M') return false;
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]);
        if (headerSize == CoreHeader) return file.Length >= CoreBitCountAt + 2 && BinaryPrimitives.ReadUInt16LittleEndian(file[CoreBitCountAt..]) == 32;
        return headerSize >= 40 && file.Length >= CompressionAt + 4 && BinaryPrimitives.ReadUInt16LittleEndian(file[BitCountAt..]) == 32
            && BinaryPrimitives.ReadUInt32LittleEndian(file[CompressionAt..]) == Uncompressed;
    }

    /// <summary>Whether the file is a 32-bit BITFIELDS BMP whose masks (red, green, blue, and alpha where its header has one) are all 0.</summary>
    private static bool HasEmptyMasks(ReadOnlySpan<byte> file)
    {
        if (file.Length < AlphaMaskAt + 4 || file[0] != 'B' || file[1] != 'M') return false;
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]);
        if (headerSize < 40 || BinaryPrimitives.ReadUInt16LittleEndian(file[BitCountAt..]) != 32
            || BinaryPrimitives.ReadUInt32LittleEndian(file[CompressionAt..]) != Bitfields) return false;
        var masks = file.Slice(RedMaskAt, headerSize > 40 ? 16 : 12);
        return !masks.ContainsAnyExcept((byte)0);
    }

    /// <summary>
    /// Reads the pixels as blue, green, red and alpha, from the header's pixel data offset, rows bottom-up (top-down for a negative height), into
    /// <paramref name="image"/>; left as decoded when the file does not hold every row (the completeness check judges it).
    /// </summary>
    private static void ReadBgra(Image<Rgba32> image, ReadOnlySpan<byte> file)
    {
        var offset = BinaryPrimitives.ReadUInt32LittleEndian(file[PixelDataOffsetAt..]);
        // An offset of 0 is where Pillow's reading of the header ends: after the masks, which follow a 40-byte header.
        if (offset == 0)
        {
            var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]);
            offset = InfoHeaderAt + headerSize + (headerSize == 40 ? 12u : 0u);
        }
        var (width, height) = (BinaryPrimitives.ReadInt32LittleEndian(file[WidthAt..]), BinaryPrimitives.ReadInt32LittleEndian(file[HeightAt..]));
        var rows = Math.Abs((long)height);
        if (width != image.Width || rows != image.Height || offset + 4L * width * rows > file.Length) return;
        var pixels = file[(int)offset..];
        for (var row = 0; row < rows; row++)
        {
            var source = pixels.Slice(row * 4 * width, 4 * width);
            var target = image.DangerousGetPixelRowMemory(height < 0 ? row : (int)rows - 1 - row).Span;
            for (var x = 0; x < width; x++) target[x] = new Rgba32(source[4 * x + 2], source[4 * x + 1], source[4 * x], source[4 * x + 3]);
        }
    }

    private static void ToPillowLevels(Image<Rgba32> image, int greenBits)
    {
        var green = greenBits == 6 ? SixBits : FiveBits;
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                foreach (ref var pixel in rows.GetRowSpan(y))
                {
                    pixel.R = FiveBits[pixel.R];
                    pixel.G = green[pixel.G];
                    pixel.B = FiveBits[pixel.B];
                }
            }
        });
    }

    private static void MakeOpaque(Image<Rgba32> image) => image.ProcessPixelRows(rows =>
    {
        for (var y = 0; y < rows.Height; y++)
        {
            foreach (ref var pixel in rows.GetRowSpan(y)) pixel.A = byte.MaxValue;
        }
    });

    /// <summary>For each 8-bit value ImageSharp gives a level of <paramref name="bits"/> bits (its bits repeated), Pillow's (v * 255 / max, rounded down).</summary>
    private static byte[] PillowLevels(int bits)
    {
        var max = (1 << bits) - 1;
        var levels = Enumerable.Range(0, 256).Select(value => (byte)value).ToArray();
        for (var level = 0; level <= max; level++) levels[level << (8 - bits) | level >> (2 * bits - 8)] = (byte)(level * 255 / max);
        return levels;
    }
}
