namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A PNG's compressed metadata chunks (zTXt, iTXt, iCCP) are inflated by the decoder without a limit, while the service
/// uses none of them: 300 KB of zTXt inflated to 300 MB cost half a minute and 2 GB. They are left out before decoding.
/// </summary>
public static class PngText
{
    /// <summary>The file itself when it is not a PNG or has no such chunk; otherwise a copy without them.</summary>
    public static ReadOnlyMemory<byte> WithoutCompressedChunks(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!PngChunks.IsPng(file)) return bytes;
        List<(int Start, int End)>? dropped = null;
        foreach (var chunk in new PngChunks(file))
        {
            if (chunk.Is("zTXt"u8) || chunk.Is("iTXt"u8) || chunk.Is("iCCP"u8)) (dropped ??= []).Add((chunk.Start, chunk.End));
            if (chunk.Is("IEND"u8)) break;
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
