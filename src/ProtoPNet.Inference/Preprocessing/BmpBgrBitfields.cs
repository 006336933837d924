using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A 24-bit BMP with BITFIELDS compression whose masks are red 0xFF0000, green 0xFF00 and blue 0xFF, the one 24-bit
/// layout Pillow (the trainer's decoder) reads with masks (others it refuses, as <see cref="BmpPixelData"/> does): Pillow
/// reads its pixels as blue, green and red bytes, as an uncompressed one; ImageSharp read them otherwise, to other
/// pixels than the trainer's. The compression is written 0 (the masks stay where they lie, unread), and a pixel data
/// offset of 0 is given where Pillow reads the pixels from: right after the header, and the masks after a 40-byte one.
/// </summary>
public static class BmpBgrBitfields
{
    private const int PixelDataOffsetAt = 10, InfoHeaderAt = 14, BitCountAt = 28, CompressionAt = 30, RedMaskAt = 54;
    private const uint WindowsHeader = 40, Uncompressed = 0, Bitfields = 3;

    /// <summary>The file itself when it is no such BMP; otherwise a copy that says it is uncompressed.</summary>
    public static ReadOnlyMemory<byte> AsUncompressed(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (file.Length < RedMaskAt + 12 || file[0] != 'B' || file[1] != 'M') return bytes;
        var headerSize = BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]);
        // The headers Pillow reads masks in or after (OS/2 2.x's 64-byte one is made a version 4 one before: BmpOs2Bitfields).
        if (headerSize is not (WindowsHeader or 108 or 124) || BinaryPrimitives.ReadUInt16LittleEndian(file[BitCountAt..]) != 24) return bytes;
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[CompressionAt..]) != Bitfields) return bytes;
        var masks = (BinaryPrimitives.ReadUInt32LittleEndian(file[RedMaskAt..]), BinaryPrimitives.ReadUInt32LittleEndian(file[(RedMaskAt + 4)..]),
            BinaryPrimitives.ReadUInt32LittleEndian(file[(RedMaskAt + 8)..]));
        if (masks != (0xFF0000, 0xFF00, 0xFF)) return bytes;

        var copy = file.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(CompressionAt), Uncompressed);
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[PixelDataOffsetAt..]) == 0)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(PixelDataOffsetAt), InfoHeaderAt + headerSize + (headerSize == WindowsHeader ? 12u : 0));
        }
        return copy;
    }
}
