namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A TIFF's sound LZW strips that ImageSharp reads otherwise than libtiff (the trainer's decoder), written anew as
/// libtiff decodes them. libtiff stops as soon as a strip's rows are there, in the middle of a string if need be, passes
/// over clear codes in a row, fills a table of 5,119 entries and needs no end code; ImageSharp threw on each ("Index was
/// outside the bounds of the array", "Corrupted TIFF LZW"), so files the trainer reads were refused, and it decoded codes
/// after the rows that libtiff never reads. Such a strip (found by <see cref="TiffStripData"/>'s check, in the same
/// pass) is decoded here to libtiff's very bytes and encoded again as every decoder reads it (<see
/// cref="TiffLzwStrip.Encode"/>); the new strips go after the file's end and the directory's strip offsets and byte
/// counts point at them (the predictor, if any, still applies to the same bytes). Run once a file passed the size limits
/// and the corruption checks: a strip is decoded to no more than its rows.
/// </summary>
public static class TiffLzwRewrite
{
    /// <summary>The rows of a strip decoded whole at most (a strip of larger rows, which no common writer makes, is left to the decoder as it is).</summary>
    private const ulong MaxStripBytes = 64 << 20;

    /// <summary>The file itself when it has no such strip; otherwise a copy with them written anew.</summary>
    internal static ReadOnlyMemory<byte> WithRegularStrips(ReadOnlyMemory<byte> bytes, IrregularLzwStrips irregular)
    {
        if (irregular.Strips.Count == 0 || irregular.Strips.Any(strip => strip.Needed > MaxStripBytes) || !irregular.ListsApart()) return bytes;
        var encoded = irregular.Strips.Select(strip => TiffLzwStrip.Encode(TiffLzwStrip.Decode(bytes.Span.Slice(strip.Start, strip.Length), (int)strip.Needed))).ToArray();
        var (offsets, counts) = (irregular.Offsets, irregular.Counts);
        var at = (bytes.Length + 1L) & ~1L;   // strips begin on a word boundary, as writers place them
        var newOffsets = new long[encoded.Length];
        for (var i = 0; i < encoded.Length; i++)
        {
            newOffsets[i] = at;
            at += (encoded[i].Length + 1L) & ~1L;
        }
        // Offsets and counts written as SHORTs hold at most 65535: a file that needs more is left as it is.
        if (at > int.MaxValue || at - 1 > MaxValue(offsets.Type) || encoded.Any(strip => strip.Length > MaxValue(counts.Type))) return bytes;

        var copy = new byte[at];
        bytes.Span.CopyTo(copy);
        var littleEndian = irregular.Directory.LittleEndian;
        for (var i = 0; i < encoded.Length; i++)
        {
            var strip = irregular.Strips[i];
            encoded[i].CopyTo(copy.AsSpan((int)newOffsets[i]));
            TiffDirectory.WriteValue(copy.AsSpan(IrregularLzwStrips.ValueAt(offsets, strip.Index)), offsets.Type, (ulong)newOffsets[i], littleEndian);
            TiffDirectory.WriteValue(copy.AsSpan(IrregularLzwStrips.ValueAt(counts, strip.Index)), counts.Type, (ulong)encoded[i].Length, littleEndian);
        }
        return copy;
    }

    private static long MaxValue(ushort type) => type switch { 3 => ushort.MaxValue, 4 => uint.MaxValue, _ => long.MaxValue };
}

/// <summary>The sound LZW strips of a TIFF that ImageSharp reads otherwise than libtiff, and where the directory lists every strip's offset and byte count.</summary>
internal sealed class IrregularLzwStrips
{
    public TiffDirectory Directory { get; private set; }
    public IntegerField Offsets { get; private set; }
    public IntegerField Counts { get; private set; }
    public List<LzwStrip> Strips { get; } = [];

    public void Add(TiffDirectory directory, IntegerField offsets, IntegerField counts, LzwStrip strip)
    {
        (Directory, Offsets, Counts) = (directory, offsets, counts);
        Strips.Add(strip);
    }

    /// <summary>Where value <paramref name="index"/> of an offsets or counts field lies.</summary>
    public static int ValueAt(IntegerField field, int index) => (int)field.At + index * Size(field.Type);

    /// <summary>
    /// Whether the offsets and the byte counts lie apart from each other and, where they are not in their own entries,
    /// from the directory: a new value written into one must not change the other, or an entry (a hostile file may
    /// point them anywhere).
    /// </summary>
    public bool ListsApart()
    {
        var (offsets, counts) = (Range(Offsets), Range(Counts));
        var directory = (Start: (ulong)Directory.Offset, End: (ulong)Directory.Entry(Directory.Entries) + (ulong)Directory.ValueSize);
        return !Overlap(offsets, counts) && (Inline(Offsets) || !Overlap(offsets, directory)) && (Inline(Counts) || !Overlap(counts, directory));
    }

    private (ulong Start, ulong End) Range(IntegerField field) => (field.At, field.At + field.Count * (ulong)Size(field.Type));

    private bool Inline(IntegerField field) => field.Count * (ulong)Size(field.Type) <= (ulong)Directory.ValueSize;

    private static bool Overlap((ulong Start, ulong End) a, (ulong Start, ulong End) b) => a.Start < b.End && b.Start < a.End;

    private static int Size(ushort type) => type switch { 3 => 2, 4 => 4, _ => 8 };
}

/// <summary>Strip <paramref name="Index"/>: where its bytes lie, and how many bytes its rows take.</summary>
internal readonly record struct LzwStrip(int Index, int Start, int Length, ulong Needed);
