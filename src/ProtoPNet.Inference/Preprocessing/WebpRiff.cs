using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A WebP is one RIFF container, and what follows the size its header declares is not part of it. ImageSharp reads on
/// past the end of an extended (VP8X) WebP and refused a sound file followed by a few bytes ("Invalid Webp data");
/// Pillow reads such a file, as a complete file followed by extra bytes is read in every format.
/// </summary>
public static class WebpRiff
{
    /// <summary>The file without the bytes after its RIFF container; any other file as it is.</summary>
    public static ReadOnlyMemory<byte> WithoutTrailingBytes(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (file.Length < 12 || !file.StartsWith("RIFF"u8) || !file[8..12].SequenceEqual("WEBP"u8)) return bytes;
        var end = 8L + BinaryPrimitives.ReadUInt32LittleEndian(file[4..]);
        return end < file.Length ? bytes[..(int)end] : bytes;   // a shorter file is cut: the completeness check says so
    }
}
