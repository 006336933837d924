using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Where the entries of a TIFF's first image file directory lie (the image the decoder takes), classic TIFF and
/// BigTIFF alike: a 2-byte entry count and 12-byte entries with a 4-byte count and value, or 8, 20 and 8.
/// </summary>
internal readonly record struct TiffDirectory(bool LittleEndian, bool Big, long Offset, int Entries)
{
    public const ushort Orientation = 274;

    public int CountSize => Big ? 8 : 2;
    public int EntrySize => Big ? 20 : 12;
    public int ValueSize => Big ? 8 : 4;

    /// <summary>Where entry <paramref name="index"/> begins.</summary>
    public int Entry(int index) => (int)Offset + CountSize + index * EntrySize;

    /// <summary>
    /// The first entry of each tag that holds integers lying within the file: the one libtiff and ImageSharp read of a
    /// repeated field.
    /// </summary>
    public Dictionary<ushort, IntegerField> FirstIntegerFields(TiffReader reader, int fileLength)
    {
        var fields = new Dictionary<ushort, IntegerField>();
        for (var e = 0; e < Entries; e++)
        {
            if (IntegerFieldAt(reader, Entry(e), fileLength) is { } field) fields.TryAdd(field.Tag, field);
        }
        return fields;
    }

    /// <summary>Where the value field of the entry at <paramref name="entry"/> lies: after its tag, type and count (as wide as the value field).</summary>
    public int ValueField(int entry) => entry + 4 + ValueSize;

    /// <summary>How many values the entry at <paramref name="entry"/> declares.</summary>
    public ulong CountOf(TiffReader reader, int entry) => Big ? reader.U64(entry + 4) : reader.U32(entry + 4);

    /// <summary>
    /// The entry at <paramref name="entry"/> when it holds integers (SHORT, LONG or LONG8) that lie whole within the
    /// file; null for another type, no values, or values past the file's end (the completeness check says so).
    /// </summary>
    public IntegerField? IntegerFieldAt(TiffReader reader, int entry, int fileLength)
    {
        var type = reader.U16(entry + 2);
        var count = CountOf(reader, entry);
        var size = type switch { 3 => 2UL, 4 => 4UL, 16 => 8UL, _ => 0UL };
        if (size == 0 || count == 0 || count > (ulong)fileLength / size) return null;
        var at = (ulong)ValueField(entry);
        // Values that do not fit in the entry lie at the offset it holds instead.
        if (count * size > (ulong)ValueSize) at = Big ? reader.U64((long)at) : reader.U32((long)at);
        return Within(at, count * size, fileLength) ? new IntegerField(reader.U16(entry), type, count, at) : null;
    }

    /// <summary>Whether <paramref name="size"/> bytes from <paramref name="at"/> lie in a file of <paramref name="length"/> bytes (offsets near 2^64 included: no sum wraps).</summary>
    public static bool Within(ulong at, ulong size, int length) => at <= (ulong)length && size <= (ulong)length - at;

    /// <summary>The first directory of <paramref name="file"/>; null when it is not a TIFF or the directory does not lie whole within it (the completeness check says so).</summary>
    public static TiffDirectory? First(ReadOnlySpan<byte> file)
    {
        if (file.Length < 8) return null;
        bool littleEndian;
        if (file[0] == 'I' && file[1] == 'I') littleEndian = true;
        else if (file[0] == 'M' && file[1] == 'M') littleEndian = false;
        else return null;
        var reader = new TiffReader(file, littleEndian);
        var big = reader.U16(2) switch { 42 => false, 43 => true, _ => (bool?)null };
        if (big is null || big.Value && file.Length < 16) return null;
        var offset = big.Value ? reader.U64(8) : reader.U32(4);
        var layout = new TiffDirectory(littleEndian, big.Value, 0, 0);
        if (offset > (ulong)file.Length - (ulong)layout.CountSize) return null;
        var entries = big.Value ? reader.U64((long)offset) : reader.U16((long)offset);
        if (entries > (ulong)((file.Length - (long)offset - layout.CountSize) / layout.EntrySize)) return null;
        return layout with { Offset = (long)offset, Entries = (int)entries };
    }

    /// <summary>Writes a SHORT (3), LONG (4) or LONG8 (16) value into <paramref name="field"/>, clamped to the type's range.</summary>
    public static void WriteValue(Span<byte> field, ushort type, ulong value, bool littleEndian)
    {
        switch (type)
        {
            case 3:
                var value16 = (ushort)Math.Min(value, ushort.MaxValue);
                if (littleEndian) BinaryPrimitives.WriteUInt16LittleEndian(field, value16);
                else BinaryPrimitives.WriteUInt16BigEndian(field, value16);
                break;
            case 4:
                var value32 = (uint)Math.Min(value, uint.MaxValue);
                if (littleEndian) BinaryPrimitives.WriteUInt32LittleEndian(field, value32);
                else BinaryPrimitives.WriteUInt32BigEndian(field, value32);
                break;
            default:
                if (littleEndian) BinaryPrimitives.WriteUInt64LittleEndian(field, value);
                else BinaryPrimitives.WriteUInt64BigEndian(field, value);
                break;
        }
    }

    /// <summary>
    /// The first image's Orientation tag (1 to 8, as EXIF's), 1 when it has none or one out of range. The decoder
    /// leaves it in the directory rather than the image's EXIF profile, so without this a TIFF stored on its side was
    /// classified on its side, while the trainer (Pillow applies it as it loads) saw it upright. Read as Pillow reads
    /// it: the first entry of the tag, its first value, of any of the integer types SHORT, LONG and LONG8.
    /// </summary>
    public static ushort OrientationOf(ReadOnlySpan<byte> file) =>
        First(file)?.FirstValueOf(file, Orientation) is { } value and >= 1 and <= 8 ? (ushort)value : (ushort)1;

    /// <summary>
    /// The first value of the first entry of <paramref name="tag"/>, of any of the integer types SHORT, LONG and LONG8,
    /// as Pillow reads a tag; null when there is none or it is not integers lying within the file.
    /// </summary>
    public ulong? FirstValueOf(ReadOnlySpan<byte> file, ushort tag)
    {
        var reader = new TiffReader(file, LittleEndian);
        for (var e = 0; e < Entries; e++)
        {
            var entry = Entry(e);
            if (reader.U16(entry) != tag) continue;
            return IntegerFieldAt(reader, entry, file.Length) is { } field ? reader.Value(field.At, 0, field.Type) : null;
        }
        return null;
    }
}

/// <summary>A directory entry of integer values: its tag, type (SHORT 3, LONG 4, LONG8 16), how many values, and where they lie.</summary>
internal readonly record struct IntegerField(ushort Tag, ushort Type, ulong Count, ulong At);

internal static class IntegerFields
{
    /// <summary>The first value of the field of <paramref name="tag"/> among <paramref name="fields"/>; null when there is none.</summary>
    public static ulong? FirstValue(this Dictionary<ushort, IntegerField> fields, TiffReader reader, ushort tag) =>
        fields.TryGetValue(tag, out var field) ? reader.Value(field.At, 0, field.Type) : null;
}
