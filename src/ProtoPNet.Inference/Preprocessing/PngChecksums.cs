using System.Buffers.Binary;
using System.IO.Hashing;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the chunks before a PNG's image data are sound: each named by four letters, digits or underscores, each with
/// the CRC of its type and data. ImageSharp checks the CRC of the critical chunks only and skips a damaged ancillary one
/// (gAMA, cHRM, bKGD, tIME...); Pillow (the trainer's decoder) refuses the file ("broken PNG file"), so a damaged upload
/// was classified while the trainer could not read it. After the first IDAT Pillow reads no more CRCs, nor does this;
/// the zlib header that begins the image data is judged too. The compressed text and ICC chunks (zTXt, iTXt, iCCP) are
/// dropped before this check runs (PngText), so a bad CRC in one of them goes unseen here, where Pillow refuses the file.
/// </summary>
public static class PngChecksums
{
    /// <summary>What is wrong with a chunk before the image data (one sentence), or null: its name, its CRC, or a value Pillow cannot use (<see cref="PngChunkFields"/>).</summary>
    public static string? FindCorruption(ReadOnlySpan<byte> file)
    {
        var fields = PngChunkFields.Of(file);
        for (long position = 8; position + 12 <= file.Length;)
        {
            var length = BinaryPrimitives.ReadUInt32BigEndian(file[(int)position..]);
            var type = file.Slice((int)position + 4, 4);
            if (type.SequenceEqual("IDAT"u8)) return length >= 2 && position + 10 <= file.Length ? ZlibHeaderFault(file[(int)(position + 8)], file[(int)(position + 9)]) : null;
            if (type.SequenceEqual("IEND"u8)) return null;
            foreach (var letter in type)
            {
                if (letter is not ((>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'0' and <= (byte)'9') or (byte)'_'))
                {
                    return $"the chunk at byte {position} has no chunk name (bytes {Convert.ToHexString(type)})";
                }
            }
            if (position + 12 + length > file.Length) return null;   // the completeness check says so
            var stored = BinaryPrimitives.ReadUInt32BigEndian(file[(int)(position + 8 + length)..]);
            if (Crc(file.Slice((int)position + 4, (int)length + 4)) != stored)
            {
                return $"its {System.Text.Encoding.ASCII.GetString(type)} chunk at byte {position} fails its CRC check";
            }
            if (fields?.Judge(type, file.Slice((int)position + 8, (int)length)) is { } unusable) return unusable;
            position += 12 + length;
        }
        return null;
    }

    /// <summary>
    /// What is wrong with the zlib header that begins the image data, or null: zlib (Pillow's inflater) refuses a header
    /// whose check bits fail, another method than deflate, and a preset dictionary (which PNG does not allow);
    /// ImageSharp decoded on past each.
    /// </summary>
    private static string? ZlibHeaderFault(byte method, byte flags)
    {
        if ((method << 8 | flags) % 31 != 0) return $"its image data's zlib header (bytes {method:X2} {flags:X2}) fails its check";
        if ((method & 0x0F) != 8 || method >> 4 > 7) return $"its image data's zlib header (bytes {method:X2} {flags:X2}) names no deflate stream";
        if ((flags & 0x20) != 0) return $"its image data's zlib header (bytes {method:X2} {flags:X2}) asks for a preset dictionary, which PNG does not allow";
        return null;
    }

    /// <summary>
    /// The CRC-32 a PNG chunk carries, of its type and data: vectorised (about 0.1 ns a byte here, against 2.7 for a
    /// byte-wise table), since every image data chunk of an upload is checked (<see cref="PngImageData"/>).
    /// </summary>
    internal static uint Crc(ReadOnlySpan<byte> bytes) => Crc32.HashToUInt32(bytes);
}
