using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A PNG's compressed metadata chunks (zTXt, iTXt, iCCP) are inflated by the decoder without a limit, while the service
/// uses none of them: 300 KB of zTXt inflated to 300 MB cost half a minute and 2 GB. They are left out before decoding.
/// </summary>
public static class PngText
{
    /// <summary>The eight bytes every PNG begins with.</summary>
    internal static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The file itself when it is not a PNG or has no such chunk; otherwise a copy without them.</summary>
    public static ReadOnlyMemory<byte> WithoutCompressedChunks(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!file.StartsWith(Signature)) return bytes;
        List<(int Start, int End)>? dropped = null;
        long position = Signature.Length;
        while (position + 8 <= file.Length)
        {
            var length = BinaryPrimitives.ReadUInt32BigEndian(file[(int)position..]);
            var type = file.Slice((int)position + 4, 4);
            var end = position + 12 + length;
            if (end > file.Length) break;   // truncated: the completeness check says so
            if (type.SequenceEqual("zTXt"u8) || type.SequenceEqual("iTXt"u8) || type.SequenceEqual("iCCP"u8))
            {
                (dropped ??= []).Add(((int)position, (int)end));
            }
            if (type.SequenceEqual("IEND"u8)) break;
            position = end;
        }
        if (dropped is null) return bytes;
        var kept = new byte[file.Length - dropped.Sum(range => range.End - range.Start)];
        var from = 0;
        var to = 0;
        foreach (var (start, end) in dropped)
        {
            file[from..start].CopyTo(kept.AsSpan(to));
            to += start - from;
            from = end;
        }
        file[from..].CopyTo(kept.AsSpan(to));
        return kept;
    }
}
