using System.Buffers.Binary;
using SixLabors.ImageSharp;
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
/// </list>
/// </summary>
public static class BmpPixelsAsPillow
{
    private const int InfoHeaderAt = 14, BitCountAt = 28, CoreBitCountAt = 24, CompressionAt = 30, GreenMaskAt = 58;
    private const uint CoreHeader = 12, Uncompressed = 0, Bitfields = 3;

    private static readonly byte[] FiveBits = PillowLevels(5), SixBits = PillowLevels(6);

    /// <summary>Makes <paramref name="image"/>, decoded by ImageSharp from the BMP <paramref name="file"/>, the pixels Pillow reads from it.</summary>
    public static void Apply(Image<Rgba32> image, ReadOnlySpan<byte> file)
    {
        if (GreenBits(file) is { } greenBits) ToPillowLevels(image, greenBits);
        else if (IsBgrx(file)) MakeOpaque(image);
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
