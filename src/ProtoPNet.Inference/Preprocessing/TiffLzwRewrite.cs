namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A TIFF's sound LZW strips that ImageSharp reads otherwise than libtiff (the trainer's decoder), written anew as
/// libtiff decodes them. libtiff stops as soon as a strip's rows are there, in the middle of a string if need be, and
/// passes over clear codes in a row; ImageSharp threw on both ("Index was outside the bounds of the array", "Corrupted
/// TIFF LZW"), so files the trainer reads were refused, and it decoded codes after the rows that libtiff never reads.
/// Such a strip is decoded here to libtiff's very bytes and encoded again as every decoder reads it (<see
/// cref="TiffLzwStrip.Encode"/>); the new strips go after the file's end and the directory's strip offsets and byte
/// counts point at them (the predictor, if any, still applies to the same bytes). Run once a file passed the size
/// limits and the corruption checks: a strip is decoded to no more than its rows.
/// </summary>
public static class TiffLzwRewrite
{
    /// <summary>The file itself when it has no such strip (or is no LZW TIFF); otherwise a copy with them written anew.</summary>
    public static ReadOnlyMemory<byte> WithRegularStrips(ReadOnlyMemory<byte> bytes)
    {
        var irregular = new IrregularLzwStrips();
        if (TiffStripData.FindCorruption(bytes, LibDeflate.IsAvailable, irregular) is not null || irregular.Strips.Count == 0) return bytes;
        var encoded = irregular.Strips.Select(strip => TiffLzwStrip.Encode(TiffLzwStrip.Decode(bytes.Span.Slice(strip.Start, strip.Length), strip.Needed))).ToArray();
        var file = bytes.Span;
        var (offsets, counts) = (irregular.Offsets, irregular.Counts);
        var at = (file.Length + 1L) & ~1L;   // strips begin on a word boundary, as writers place them
        var newOffsets = new long[encoded.Length];
        for (var i = 0; i < encoded.Length; i++)
        {
            newOffsets[i] = at;
            at += (encoded[i].Length + 1L) & ~1L;
        }
        // Offsets and counts written as SHORTs hold at most 65535: a file that needs more is left as it is.
        if (at > int.MaxValue || at - 1 > MaxValue(offsets.Type) || encoded.Any(strip => strip.Length > MaxValue(counts.Type))) return bytes;

        var copy = new byte[at];
        file.CopyTo(copy);
        var littleEndian = TiffDirectory.First(file)!.Value.LittleEndian;
        for (var i = 0; i < encoded.Length; i++)
        {
            var strip = irregular.Strips[i];
            encoded[i].CopyTo(copy.AsSpan((int)newOffsets[i]));
            TiffDirectory.WriteValue(copy.AsSpan(ValueAt(offsets, strip.Index)), offsets.Type, (ulong)newOffsets[i], littleEndian);
            TiffDirectory.WriteValue(copy.AsSpan(ValueAt(counts, strip.Index)), counts.Type, (ulong)encoded[i].Length, littleEndian);
        }
        return copy;
    }

    private static int ValueAt(IntegerField field, int index) => (int)field.At + index * field.Type switch { 3 => 2, 4 => 4, _ => 8 };

    private static long MaxValue(ushort type) => type switch { 3 => ushort.MaxValue, 4 => uint.MaxValue, _ => long.MaxValue };
}

/// <summary>The sound LZW strips of a TIFF that ImageSharp reads otherwise than libtiff, and the fields that list every strip's offset and byte count.</summary>
internal sealed class IrregularLzwStrips
{
    public IntegerField Offsets { get; private set; }
    public IntegerField Counts { get; private set; }
    public List<LzwStrip> Strips { get; } = [];

    public void Add(IntegerField offsets, IntegerField counts, LzwStrip strip)
    {
        (Offsets, Counts) = (offsets, counts);
        Strips.Add(strip);
    }
}

/// <summary>Strip <paramref name="Index"/>: where its bytes lie, and how many bytes its rows take.</summary>
internal readonly record struct LzwStrip(int Index, int Start, int Length, int Needed);
