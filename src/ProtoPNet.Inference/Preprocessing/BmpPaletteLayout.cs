using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A palette BMP (1, 4 or 8 bits a pixel, RLE too) laid out as Pillow (the trainer's decoder) reads it. Pillow reads the
/// palette right after the info header, as many entries as the header counts (biClrUsed, or 2^bits without a count), of
/// 4 bytes (3 for OS/2's 12-byte header), and the pixels from where the file header says, whether or not the two overlap
/// (and, when that is right after the info header, after a palette of 4-byte entries; when it is 0, after the palette).
/// An index past the entries it has (fewer counted, or the file ends) it shows as the grey (i, i, i). ImageSharp refused
/// a palette that reaches past the pixels' offset ("Reading the color map would read beyond the bitmap offset") and an
/// index past the palette ("Bitmap does not have a valid format"), and without a count sized the entries from the gap
/// before the pixels. The file is written anew as its info header, a palette of all 2^bits entries (or of all those counted) as Pillow shows them
/// and the bytes from Pillow's pixel offset on, the count and the offset written to match; a file whose pixels Pillow
/// would read past its end is left as it is, and so is one whose palette Pillow takes for greys of another depth.
/// </summary>
public static class BmpPaletteLayout
{
    private const int FileSizeAt = 2, PixelDataOffsetAt = 10, InfoHeaderAt = 14;
    private const int Os2BitCountAt = 24, BitCountAt = 28, ColoursUsedAt = 46;
    private const uint Os2Header = 12;

    /// <summary>The info header sizes Pillow reads (others it refuses, as the checks here do).</summary>
    private static readonly uint[] WindowsHeaders = [40, 64, 108, 124];

    /// <summary>The file itself when it is no palette BMP, or one already laid out so; otherwise a copy laid out so.</summary>
    public static ReadOnlyMemory<byte> AsPillowReadsIt(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (file.Length < InfoHeaderAt + 4 || file[0] != 'B' || file[1] != 'M') return bytes;
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]);
        var os2 = headerSize == Os2Header;
        if (!os2 && !WindowsHeaders.Contains(headerSize)) return bytes;
        var paletteAt = InfoHeaderAt + (int)headerSize;
        if (file.Length < paletteAt) return bytes;   // cut in its header: the completeness check says so
        int bits = BinaryPrimitives.ReadUInt16LittleEndian(file[(os2 ? Os2BitCountAt : BitCountAt)..]);
        if (bits is not (1 or 4 or 8)) return bytes;
        var counted = os2 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(file[ColoursUsedAt..]);
        var full = 1 << bits;
        var colours = counted != 0 ? counted : (uint)full;
        if (colours > 256) return bytes;   // refused, or read as greys, by the palette rules of the checks
        var entrySize = os2 ? 3 : 4;
        // All 2^bits entries, or as many as counted beyond them (which no index reaches).
        var written = Math.Max(full, (int)colours);
        var offset = (long)BinaryPrimitives.ReadUInt32LittleEndian(file[PixelDataOffsetAt..]);
        var pixelsFrom = paletteAt + written * entrySize;
        if (offset == pixelsFrom && (counted == 0 || counted == written)) return bytes;   // already so
        // Pillow reads as many entries as the file has of those counted; an index past them it shows as the grey (i, i, i).
        var entries = (int)Math.Min(colours, (uint)((file.Length - paletteAt) / entrySize));
        if (IsPillowsGreyscale(file.Slice(paletteAt, entries * entrySize), entrySize, colours) && !(bits == 8 && colours != 2 || bits == 1 && colours == 2))
        {
            return bytes;   // Pillow reads it as greys of another depth than its pixels': left to the checks as it is
        }
        var pixelsAt = offset == paletteAt ? offset + 4 * colours   // Pillow's own allowance for a palette the offset leaves out
            : offset == 0 ? paletteAt + colours * entrySize
            : offset;
        if (pixelsAt > file.Length) return bytes;   // the completeness check says so

        var copy = new byte[pixelsFrom + (file.Length - (int)pixelsAt)];
        file[..(paletteAt + entries * entrySize)].CopyTo(copy);
        for (var index = entries; index < written; index++) copy.AsSpan(paletteAt + index * entrySize, 3).Fill((byte)index);
        file[(int)pixelsAt..].CopyTo(copy.AsSpan(pixelsFrom));
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(PixelDataOffsetAt), (uint)pixelsFrom);
        if (!os2) BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(ColoursUsedAt), (uint)written);
        // The size the file header declares moves with the file, so a declared size beyond its end still says so.
        var declared = (long)BinaryPrimitives.ReadUInt32LittleEndian(file[FileSizeAt..]) + copy.Length - file.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(FileSizeAt), (uint)Math.Clamp(declared, 0, uint.MaxValue));
        return copy;
    }

    /// <summary>
    /// Whether Pillow takes the palette for greys and reads the pixels as such, at 8 bits or (of 2 colours, black and
    /// white) 1 bit a pixel whatever the BMP's own depth: its entries for the indices 0 to colours - 1 (0 and 255 for 2)
    /// are those greys. Only an 8-bit BMP of more than 2 greys and a 1-bit one of black and white are then its own depth.
    /// </summary>
    private static bool IsPillowsGreyscale(ReadOnlySpan<byte> palette, int entrySize, uint colours)
    {
        for (var index = 0; index < colours; index++)
        {
            var grey = colours == 2 ? index * 255 : index;
            var at = index * entrySize;
            if (at + 3 > palette.Length || palette[at] != grey || palette[at + 1] != grey || palette[at + 2] != grey) return false;
        }
        return true;
    }
}
