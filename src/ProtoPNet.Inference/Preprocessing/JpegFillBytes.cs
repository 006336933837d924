namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Fill bytes (FF) before a JPEG marker, which the standard allows and libjpeg (and so Pillow) reads: ImageSharp takes
/// the second FF for a marker of its own and refuses the sound file ("not enough bytes to parse declared contents of the
/// FF marker"). They are left out of the segments before the first scan, before the header is read.
/// </summary>
public static class JpegFillBytes
{
    private const byte Marker = 0xFF, StartOfScan = 0xDA;

    /// <summary>The file itself when it is not a JPEG or has no fill bytes before its first scan; otherwise a copy without them.</summary>
    public static ReadOnlyMemory<byte> Without(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (file.Length < 4 || file[0] != Marker || file[1] != 0xD8) return bytes;
        List<(int Start, int End)>? fills = null;
        var position = 2;
        while (position + 1 < file.Length && file[position] == Marker)
        {
            var code = position + 1;
            while (code < file.Length && file[code] == Marker) code++;
            // FF 00 is no marker (a damaged file, which libjpeg reads past with a warning): left as it is.
            if (code >= file.Length || file[code] == 0x00) break;
            if (code > position + 1) (fills ??= []).Add((position, code - 1));   // every FF but the marker's own
            // A marker without a segment (a restart, TEM) has no place here: the rest is left as it is, for the decoders to judge.
            if (file[code] == StartOfScan || file[code] is >= 0xD0 and <= 0xD7 or 0x01 || code + 2 >= file.Length) break;
            // Every other marker before the first scan starts a segment with its length.
            position = code + 1 + (file[code + 1] << 8 | file[code + 2]);
        }
        if (fills is null) return bytes;
        var kept = new byte[file.Length - fills.Sum(fill => fill.End - fill.Start)];
        int from = 0, to = 0;
        foreach (var (start, end) in fills)
        {
            file[from..start].CopyTo(kept.AsSpan(to));
            to += start - from;
            from = end;
        }
        file[from..].CopyTo(kept.AsSpan(to));
        return kept;
    }
}
