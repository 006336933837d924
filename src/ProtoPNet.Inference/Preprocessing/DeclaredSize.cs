using System.Buffers.Binary;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// The width and height a file's header declares, read from its bytes. ImageSharp refuses to identify some headers
/// without saying their size (a JPEG, GIF or lossy WebP with a side of 0, a BMP larger than its bytes), and the size is what an
/// upload is refused for then: no pixels, or more pixels than the limit, rather than "corrupt" or "truncated". A size is
/// read only from a header whose structure is the format's (the chunk, header or frame it belongs to), so that bytes
/// that merely begin with a signature are "not decodable", not an image of a made-up size.
/// </summary>
public static class DeclaredSize
{
    /// <summary>(width, height) for PNG, JPEG, GIF, BMP, WebP and TIFF headers that hold one; null for other formats or a header cut short.</summary>
    public static (long Width, long Height)? Read(ReadOnlySpan<byte> file, IImageFormat format) => format switch
    {
        PngFormat => Png(file),
        JpegFormat => Jpeg(file),
        GifFormat => Gif(file),
        BmpFormat => Bmp(file),
        WebpFormat => Webp(file),
        TiffFormat => Tiff(file),
        _ => null,
    };

    /// <summary>TIFF: the first directory's ImageWidth (256) and ImageLength (257), as Pillow reads a tag.</summary>
    private static (long, long)? Tiff(ReadOnlySpan<byte> file) =>
        TiffDirectory.First(file) is { } directory && directory.FirstValueOf(file, 256) is { } width && directory.FirstValueOf(file, 257) is { } height
            ? ((long)Math.Min(width, long.MaxValue), (long)Math.Min(height, long.MaxValue))
            : null;

    /// <summary>PNG: the IHDR chunk (13 bytes long) comes first, its width and height big-endian.</summary>
    private static (long, long)? Png(ReadOnlySpan<byte> file) =>
        file.Length >= 24 && BinaryPrimitives.ReadUInt32BigEndian(file[8..]) == 13 && file[12..16].SequenceEqual("IHDR"u8)
            ? (BinaryPrimitives.ReadUInt32BigEndian(file[16..]), BinaryPrimitives.ReadUInt32BigEndian(file[20..]))
            : null;

    /// <summary>JPEG: the first start-of-frame segment (SOF0-SOF15 but DHT, JPG and DAC) holds height, then width.</summary>
    private static (long, long)? Jpeg(ReadOnlySpan<byte> file)
    {
        var position = 2;
        while (position + 9 <= file.Length)
        {
            if (file[position] != 0xFF) return null;
            var marker = file[position + 1];
            if (marker == 0xFF)
            {
                position++;   // fill byte
                continue;
            }
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                return (BinaryPrimitives.ReadUInt16BigEndian(file[(position + 7)..]), BinaryPrimitives.ReadUInt16BigEndian(file[(position + 5)..]));
            }
            if (marker is 0xD8 or (>= 0xD0 and <= 0xD7) or 0x01)
            {
                position += 2;   // markers without a segment
                continue;
            }
            if (marker == 0xDA) return null;   // scan data before any frame header
            position += 2 + BinaryPrimitives.ReadUInt16BigEndian(file[(position + 2)..]);
        }
        return null;
    }

    /// <summary>
    /// GIF: the logical screen's width and height, little-endian, after the 6-byte signature, enlarged to hold the
    /// first frame as Pillow does (<see cref="GifScreen"/>).
    /// </summary>
    private static (long, long)? Gif(ReadOnlySpan<byte> file) => GifScreen.Extent(file)
        ?? (file.Length >= 10 ? (BinaryPrimitives.ReadUInt16LittleEndian(file[6..]), BinaryPrimitives.ReadUInt16LittleEndian(file[8..])) : null);

    /// <summary>The sizes of the BMP info headers there are (core, OS/2 2.x short and long, Windows 3 to 5 and the Adobe ones).</summary>
    private static readonly uint[] BmpInfoHeaderSizes = [12, 16, 40, 52, 56, 64, 108, 124];

    /// <summary>Whether a BMP's info header of this size exists: any other is bytes that only begin like a BMP.</summary>
    internal static bool IsBmpInfoHeaderSize(uint size) => BmpInfoHeaderSizes.Contains(size);

    /// <summary>BMP: the info header's width and height (16-bit in the old 12-byte core header, else 32-bit; a negative height is top-down).</summary>
    private static (long, long)? Bmp(ReadOnlySpan<byte> file)
    {
        if (file.Length < 18) return null;
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[14..]);
        if (!IsBmpInfoHeaderSize(headerSize)) return null;
        if (headerSize == 12)
        {
            return file.Length >= 22 ? (BinaryPrimitives.ReadUInt16LittleEndian(file[18..]), BinaryPrimitives.ReadUInt16LittleEndian(file[20..])) : null;
        }
        if (file.Length < 26) return null;
        return (Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(file[18..])), Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(file[22..])));
    }

    /// <summary>
    /// WebP: after the RIFF header, the first chunk. A lossy frame (VP8) holds 14-bit sides after its frame tag and start
    /// code (9D 01 2A); a lossless one (VP8L, after its signature byte 2F) and the extended header (VP8X) hold each side
    /// minus one, so never 0.
    /// </summary>
    private static (long, long)? Webp(ReadOnlySpan<byte> file)
    {
        if (file.Length < 25) return null;
        var chunk = file[12..16];
        if (chunk.SequenceEqual("VP8 "u8))
        {
            return file.Length >= 30 && file[23..26].SequenceEqual((ReadOnlySpan<byte>)[0x9D, 0x01, 0x2A]) ? (BinaryPrimitives.ReadUInt16LittleEndian(file[26..]) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(file[28..]) & 0x3FFF) : null;
        }
        if (chunk.SequenceEqual("VP8L"u8) && file[20] == 0x2F)
        {
            var sides = BinaryPrimitives.ReadUInt32LittleEndian(file[21..]);
            return ((sides & 0x3FFF) + 1, ((sides >> 14) & 0x3FFF) + 1);
        }
        if (chunk.SequenceEqual("VP8X"u8) && file.Length >= 30)
        {
            static long Side(ReadOnlySpan<byte> bytes) => (bytes[0] | bytes[1] << 8 | bytes[2] << 16) + 1L;
            return (Side(file[24..]), Side(file[27..]));
        }
        return null;
    }
}
