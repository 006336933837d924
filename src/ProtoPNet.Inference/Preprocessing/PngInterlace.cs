using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A PNG whose header (IHDR) gives an interlace method other than 0 and 1: Pillow (the trainer's decoder) reads any
/// method but 0 as Adam7, ImageSharp refused it ("Invalid interlace method"). The method is written as 1 in a copy, its
/// CRC anew; a header whose CRC fails is left as it is (refused, as Pillow refuses it).
/// </summary>
public static class PngInterlace
{
    private const int HeaderDataAt = 16, InterlaceAt = HeaderDataAt + 12, HeaderLength = 13, Adam7 = 1;

    /// <summary>The file itself when it is no such PNG; otherwise a copy whose header says Adam7.</summary>
    public static ReadOnlyMemory<byte> WithAdam7ForAnyMethod(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!PngChunks.IsPng(file) || file.Length < HeaderDataAt + HeaderLength + 4 || !file[12..16].SequenceEqual("IHDR"u8)) return bytes;
        var length = (long)BinaryPrimitives.ReadUInt32BigEndian(file[8..]);
        if (length < HeaderLength || file[InterlaceAt] <= Adam7 || HeaderDataAt + length + 4 > file.Length) return bytes;   // cut: the checks say so
        var crcAt = HeaderDataAt + (int)length;
        if (BinaryPrimitives.ReadUInt32BigEndian(file[crcAt..]) != PngChecksums.Crc(file[12..crcAt])) return bytes;
        var copy = file.ToArray();
        copy[InterlaceAt] = Adam7;
        BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(crcAt), PngChecksums.Crc(copy.AsSpan(12, crcAt - 12)));
        return copy;
    }
}
