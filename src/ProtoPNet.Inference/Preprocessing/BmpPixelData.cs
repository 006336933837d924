using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether a BMP's header and pixel data say something a reader can follow. ImageSharp decodes on where Pillow (the
/// trainer's decoder) refuses, so a damaged upload was classified while the trainer could not read it: an info header
/// of another size than Pillow reads, a bit depth no BMP has (or 2, which Pillow does not read), a compression past 5, a palette of more than 65536 colours, red, green and
/// blue masks (BITFIELDS) that overlap, leave gaps or reach past the pixel's bits, or that are not one of the layouts
/// Pillow reads, and RLE data that gives
/// fewer pixels than the header declares (ImageSharp leaves the rest black; Pillow follows the runs as here and
/// refuses, "not enough image data").
/// </summary>
public static class BmpPixelData
{
    private const uint MaxPaletteColours = 65536;

    /// <summary>The info headers Pillow 9.4 reads: OS/2's 12-byte core header, Windows' 40, OS/2 2.x's 64, and version 4's and 5's.</summary>
    private static readonly uint[] PillowHeaderSizes = [12, 40, 64, 108, 124];
    private const uint Rle8 = 1, Rle4 = 2, Bitfields = 3, EmbeddedJpeg = 4, EmbeddedPng = 5;

    /// <summary>What is wrong with the header or the RLE data (one sentence), or null (also for a header this check does not read).</summary>
    public static string? FindCorruption(ReadOnlySpan<byte> file)
    {
        if (file.Length < 54 || file[0] != 'B' || file[1] != 'M') return null;
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[14..]);
        // ImageSharp reads others too (OS/2 2.x's short 16 bytes, Adobe's 52 and 56, sizes between 108 and 124).
        if (!PillowHeaderSizes.Contains(headerSize))
        {
            return $"its info header of {headerSize} bytes is of a kind the trainer's Pillow does not read (it reads {string.Join(", ", PillowHeaderSizes)})";
        }
        if (headerSize < 40) return null;   // the OS/2 core header: no compression, no masks
        var width = BinaryPrimitives.ReadInt32LittleEndian(file[18..]);
        var height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(file[22..]));
        var bits = BinaryPrimitives.ReadUInt16LittleEndian(file[28..]);
        var compression = BinaryPrimitives.ReadUInt32LittleEndian(file[30..]);
        // A BMP holding a JPEG or PNG declares 0 bits: not corrupt, but a kind the decoder says it does not support.
        if (bits is not (1 or 2 or 4 or 8 or 16 or 24 or 32) && compression is not (EmbeddedJpeg or EmbeddedPng)) return $"its header declares {bits} bits per pixel";
        // Windows CE's 2 bits per pixel, and compressions past PNG (6, alpha bitfields): ImageSharp reads them, Pillow does not.
        if (bits == 2 && compression is not (EmbeddedJpeg or EmbeddedPng)) return "its header declares 2 bits per pixel, a depth the trainer's Pillow does not read";
        if (compression > EmbeddedPng) return $"its compression {compression} is not one the trainer's Pillow reads (0 to 3: none, RLE8, RLE4, bitfields)";
        // Pillow reads a palette of at most 65536 colours (a count of 0 means 2^bits); ImageSharp reads on past a larger count.
        var colours = BinaryPrimitives.ReadUInt32LittleEndian(file[46..]);
        if (bits is 1 or 2 or 4 or 8 && colours > MaxPaletteColours)
        {
            return $"its header declares a palette of {colours} colours, more than the {MaxPaletteColours} a BMP may have";
        }
        // Of a longer palette Pillow keeps only a grey ramp (entry i the grey i, counted modulo 256) and refuses any other;
        // with a ramp it reads the pixels as 8-bit greys, so a picture of fewer bits gets other pixels there than here.
        if (bits is 1 or 2 or 4 && colours > 256) return $"its palette of {colours} colours is more than the {1 << bits} a {bits}-bit picture can use";
        if (bits == 8 && colours > 256 && !IsGreyRamp(file, 14 + headerSize, colours))
        {
            return $"its palette of {colours} colours is more than the 256 a palette holds, and not a ramp of greys";
        }
        if (compression == Bitfields && bits is 16 or 32 && file.Length >= 66)
        {
            // The red, green and blue masks: an alpha mask beside them is not judged (Pillow reads past a bad one too).
            uint seen = 0;
            for (var i = 0; i < 3; i++)
            {
                var mask = BinaryPrimitives.ReadUInt32LittleEndian(file[(54 + i * 4)..]);
                if (mask == 0) continue;   // a channel the pixels do not have
                if ((bits == 16 && mask > 0xFFFF) || !IsContiguous(mask) || (seen & mask) != 0)
                {
                    return $"its {"RGB"[i]} colour mask 0x{mask:X} does not fit its {bits}-bit pixels beside the others";
                }
                seen |= mask;
            }
        }
        if (compression == Bitfields && headerSize is 40 or 64 or 108 or 124 && file.Length >= (headerSize > 40 ? 70 : 66) && !IsPillowLayout(file, bits, headerSize))
        {
            return $"its {bits}-bit colour masks are not one of the layouts the trainer's Pillow reads (16 bits: 565 or 555; 24 bits: 8 each; 32 bits: 8 each, in BGRX, XBGR, ABGR, RGBA or BGRA order)";
        }
        if (compression is Rle8 or Rle4 && width > 0 && height > 0)
        {
            var start = BinaryPrimitives.ReadUInt32LittleEndian(file[10..]);
            var wanted = width * height;
            var pixels = RlePixels(file, start, width, wanted, compression == Rle4);
            if (pixels < wanted) return $"its RLE data gives {pixels} of the {width}x{height} pixels it declares";
        }
        return null;
    }

    /// <summary>Whether the palette's <paramref name="colours"/> entries (blue, green, red and a spare byte) from <paramref name="start"/> are the greys 0, 1, 2, ... (modulo 256), all within the file.</summary>
    private static bool IsGreyRamp(ReadOnlySpan<byte> file, long start, uint colours)
    {
        if (start + 4L * colours > file.Length) return false;
        for (var i = 0; i < colours; i++)
        {
            var entry = file.Slice((int)(start + 4L * i), 3);
            var grey = (byte)i;
            if (entry[0] != grey || entry[1] != grey || entry[2] != grey) return false;
        }
        return true;
    }

    /// <summary>
    /// Whether the BITFIELDS masks are a layout Pillow reads: they lie after the header's 40 bytes (red, green, blue; a
    /// 40-byte header has no alpha mask), and only these layouts are read.
    /// </summary>
    private static bool IsPillowLayout(ReadOnlySpan<byte> file, ushort bits, uint headerSize)
    {
        var (r, g, b) = (BinaryPrimitives.ReadUInt32LittleEndian(file[54..]), BinaryPrimitives.ReadUInt32LittleEndian(file[58..]), BinaryPrimitives.ReadUInt32LittleEndian(file[62..]));
        var a = headerSize > 40 ? BinaryPrimitives.ReadUInt32LittleEndian(file[66..]) : 0;
        return (bits, r, g, b, a) switch
        {
            (16, 0xF800, 0x7E0, 0x1F, _) or (16, 0x7C00, 0x3E0, 0x1F, _) => true,
            (24, 0xFF0000, 0xFF00, 0xFF, _) => true,
            (32, 0xFF0000, 0xFF00, 0xFF, 0) or (32, 0xFF000000, 0xFF0000, 0xFF00, 0) or (32, 0xFF000000, 0xFF0000, 0xFF00, 0xFF)
                or (32, 0xFF, 0xFF00, 0xFF0000, 0xFF000000) or (32, 0xFF0000, 0xFF00, 0xFF, 0xFF000000) or (32, 0, 0, 0, 0) => true,
            _ => false,
        };
    }

    /// <summary>Whether the mask's bits are one run (0x07E0, not 0x07A0): shifted down to its lowest set bit, it is one less than a power of two.</summary>
    private static bool IsContiguous(uint mask)
    {
        var shifted = mask >> System.Numerics.BitOperations.TrailingZeroCount(mask);
        return (shifted & (shifted + 1)) == 0;
    }

    /// <summary>
    /// How many pixels RLE data starting at <paramref name="start"/> gives, at most <paramref name="wanted"/>, counted
    /// as Pillow decodes it: an encoded run is cut at its row's end, an end of line fills the row, a delta skips pixels,
    /// an absolute run counts its pixels; an end of bitmap or the data's end stops. One difference, on purpose: a delta's
    /// offsets are its own two bytes, as the format says and ImageSharp reads them (Pillow 9.4 passes over those two and
    /// reads the next two as the offsets).
    /// </summary>
    private static long RlePixels(ReadOnlySpan<byte> file, long start, long width, long wanted, bool rle4)
    {
        long pixels = 0, x = 0, position = start;
        while (pixels < wanted)
        {
            if (position + 2 > file.Length) return pixels;
            int count = file[(int)position], value = file[(int)position + 1];
            position += 2;
            if (count > 0)
            {
                var run = Math.Max(0, Math.Min(count, width - x));
                pixels += run;
                x += run;
            }
            else if (value == 0)
            {
                pixels += (width - pixels % width) % width;
                x = 0;
            }
            else if (value == 1)
            {
                return pixels;
            }
            else if (value == 2)
            {
                if (position + 2 > file.Length) return pixels;
                pixels += file[(int)position] + (long)file[(int)position + 1] * width;
                position += 2;
                x = pixels % width;
            }
            else
            {
                var bytes = rle4 ? value / 2 : value;
                var read = Math.Min(bytes, file.Length - position);
                position += read;
                pixels += rle4 ? read * 2 : read;
                if (read < bytes) return pixels;
                x += value;
                if (position % 2 != 0) position++;
            }
        }
        return pixels;
    }
}
