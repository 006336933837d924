using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A WebP is one RIFF container, and what follows the size its header declares is not part of it. ImageSharp reads on
/// past the end of an extended (VP8X) WebP and refused a sound file followed by a few bytes ("Invalid Webp data");
/// Pillow reads such a file, as a complete file followed by extra bytes is read in every format.
/// </summary>
public static class WebpRiff
{
    private const int Header = 12;   // "RIFF", the size, "WEBP"

    /// <summary>
    /// The file without the bytes after its RIFF container, when its chunks end within the container; any other file as
    /// it is (a container that its own chunks contradict is the other checks' and the decoder's to judge).
    /// </summary>
    public static ReadOnlyMemory<byte> WithoutTrailingBytes(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (file.Length < Header || !file.StartsWith("RIFF"u8) || !file[8..12].SequenceEqual("WEBP"u8)) return bytes;
        var end = 8L + BinaryPrimitives.ReadUInt32LittleEndian(file[4..]);
        if (end < Header + 8 || end >= file.Length) return bytes;   // no chunk at all, or nothing after the container
        for (long position = Header; position < end;)
        {
            if (position + 8 > end) return bytes;
            var size = BinaryPrimitives.ReadUInt32LittleEndian(file[(int)(position + 4)..]);
            position += 8 + size + (size & 1);   // chunks are padded to an even size
            if (position > end && position - (size & 1) > end) return bytes;   // a chunk past the container's end
        }
        return bytes[..(int)end];
    }
}
