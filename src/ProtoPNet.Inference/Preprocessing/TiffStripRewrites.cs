namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// The strips of a TIFF that ImageSharp reads otherwise than the trainer's decoders, found by <see cref="TiffStripData"/>'s
/// check in its one pass over the strips, and where the directory lists every strip's offset and byte count: sound LZW
/// strips and PackBits strips whose rows end inside a run written anew by <see cref="TiffStripsWrittenAnew"/>; strips
/// whose byte count is not what the trainer reads
/// (uncompressed ones counted short of their rows, a lone compressed one counted 0, PackBits ones counted past their rows)
/// given that count by <see cref="TiffStripCounts"/>.
/// </summary>
internal sealed class TiffStripRewrites
{
    public TiffDirectory Directory { get; private set; }
    public IntegerField Offsets { get; private set; }
    public IntegerField Counts { get; private set; }

    /// <summary>The strips libtiff reads otherwise than ImageSharp: sound LZW strips, PackBits strips whose rows end inside a run.</summary>
    public List<StripWrittenAnew> WrittenAnew { get; } = [];

    /// <summary>The strips whose byte count is not what the trainer reads, and how many bytes it reads.</summary>
    public List<(int Index, ulong Count)> NewCounts { get; } = [];

    public void AddWrittenAnew(TiffDirectory directory, IntegerField offsets, IntegerField counts, StripWrittenAnew strip)
    {
        (Directory, Offsets, Counts) = (directory, offsets, counts);
        WrittenAnew.Add(strip);
    }

    public void AddNewCount(TiffDirectory directory, IntegerField offsets, IntegerField counts, int index, ulong count)
    {
        (Directory, Offsets, Counts) = (directory, offsets, counts);
        NewCounts.Add((index, count));
    }

    /// <summary>Where value <paramref name="index"/> of an offsets or counts field lies.</summary>
    public static int ValueAt(IntegerField field, int index) => (int)field.At + index * Size(field.Type);

    /// <summary>The largest value a field of this type holds (SHORT, LONG, LONG8).</summary>
    public static long MaxValue(ushort type) => type switch { 3 => ushort.MaxValue, 4 => uint.MaxValue, _ => long.MaxValue };

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

/// <summary>Strip <paramref name="Index"/> of LZW or (<paramref name="PackBits"/>) PackBits data: where its bytes lie, and how many bytes its rows take.</summary>
internal readonly record struct StripWrittenAnew(int Index, int Start, int Length, ulong Needed, bool PackBits);
