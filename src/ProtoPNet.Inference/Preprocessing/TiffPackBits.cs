namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A PackBits strip (Compression 32773) read as libtiff reads it, which Pillow hands such TIFFs to: a header byte n of
/// 0 to 127 copies the next n + 1 bytes, one of -1 to -127 repeats the next byte 1 - n times, -128 is skipped; a run
/// that reaches past the strip's rows is cut at them, and a strip whose bytes run out before its rows are whole is
/// refused ("Not enough data for scanline"). ImageSharp painted the missing rows black, so the service classified
/// strips the trainer cannot open.
/// </summary>
internal static class TiffPackBits
{
    /// <summary>
    /// How many bytes of its rows <paramref name="strip"/> gives, at most <paramref name="needed"/>; how many of its
    /// bytes give them (PackBits has no end code: what follows the rows is not read); and whether its rows end inside
    /// a run, which libtiff cuts at them.
    /// </summary>
    public static (ulong Decoded, int Consumed, bool RunCut) Read(ReadOnlySpan<byte> strip, ulong needed) => Walk(strip, needed, []);

    /// <summary>
    /// A strip whose rows end inside a run, which ImageSharp decodes whole past its buffer of the rows, written anew as
    /// libtiff decodes it: its rows in literal runs of 128 bytes (the last shorter), which every decoder reads alike.
    /// </summary>
    public static byte[] CutAtItsRows(ReadOnlySpan<byte> strip, int needed)
    {
        var rows = new byte[needed];
        Walk(strip, (ulong)needed, rows);
        var encoded = new byte[needed + (needed + 127) / 128];
        var at = 0;
        for (var start = 0; start < needed; start += 128)
        {
            var length = Math.Min(128, needed - start);
            encoded[at++] = (byte)(length - 1);
            rows.AsSpan(start, length).CopyTo(encoded.AsSpan(at));
            at += length;
        }
        return encoded;
    }

    /// <summary>Reads the runs up to <paramref name="needed"/> bytes, copying them into <paramref name="rows"/> where it is given.</summary>
    private static (ulong Decoded, int Consumed, bool RunCut) Walk(ReadOnlySpan<byte> strip, ulong needed, Span<byte> rows)
    {
        ulong decoded = 0;
        var at = 0;
        var runCut = false;
        while (at < strip.Length && decoded < needed)
        {
            var header = (sbyte)strip[at++];
            if (header == -128) continue;
            if (header < 0)
            {
                if (at == strip.Length) break;   // the byte to repeat is missing
                var value = strip[at++];
                var repeated = (ulong)(1 - header);
                runCut = repeated > needed - decoded;
                var taken = Math.Min(repeated, needed - decoded);
                if (!rows.IsEmpty) rows.Slice((int)decoded, (int)taken).Fill(value);
                decoded += taken;
                continue;
            }
            var literal = Math.Min((ulong)header + 1, needed - decoded);
            if ((ulong)(strip.Length - at) < literal) break;   // libtiff copies no part of a cut literal run
            runCut = literal < (ulong)header + 1;
            if (!rows.IsEmpty) strip.Slice(at, (int)literal).CopyTo(rows[(int)decoded..]);
            at += (int)literal;
            decoded += literal;
        }
        return (decoded, at, runCut);
    }
}
