using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A BMP of more than 8 bits per pixel whose header still counts colours used (biClrUsed), which only a palette image
/// has: Pillow (the trainer's decoder) passes over the count and reads the pixels where the file header says they
/// begin; ImageSharp reads that many palette entries first and refused the file when they do not fit before the pixels
/// ("Reading the color map would read beyond the bitmap offset"). The count is cleared in a copy: the pixels are the same.
/// </summary>
public static class BmpColourCount
{
    private const int InfoHeaderAt = 14, BitCountAt = 28, ColoursUsedAt = 46;

    /// <summary>BITMAPINFOHEADER and its successors (40 bytes and more) have the count; the 12-byte core header of OS/2 has none.</summary>
    private const uint SmallestInfoHeader = 40;

    /// <summary>The file itself when it is no BMP of more than 8 bits a pixel that counts colours; otherwise a copy with the count 0.</summary>
    public static ReadOnlyMemory<byte> WithoutColourCount(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (file.Length < ColoursUsedAt + 4 || file[0] != 'B' || file[1] != 'M') return bytes;
        if (BinaryPrimitives.ReadUInt32LittleEndian(file[InfoHeaderAt..]) < SmallestInfoHeader) return bytes;
        if (BinaryPrimitives.ReadUInt16LittleEndian(file[BitCountAt..]) <= 8 || BinaryPrimitives.ReadUInt32LittleEndian(file[ColoursUsedAt..]) == 0) return bytes;
        var copy = file.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(ColoursUsedAt), 0);
        return copy;
    }
}
