namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Pillow (the trainer's decoder) lays an uncompressed TIFF's strips out from its StripOffsets alone: it reads each
/// strip's rows from its offset on and never looks at StripByteCounts, so it reads a file whose counts are missing, fewer
/// than its offsets, empty, or of any type; it reads offsets given as BYTE, SBYTE or LONG8 as the numbers they are; and
/// it lays offsets past a chunky image's strips out again from its top, each over the strip it wraps round to (decoded
/// in the order of their offsets, so the largest of a strip's wins).
/// ImageSharp needs a count for every strip, and offsets and counts of SHORT, LONG (or their signed kinds, or IFD): it
/// refused such a file; and it reads the first offsets alone, to other pixels. Its first directory is written anew after
/// the file's end with the offsets that count as LONGs and, for each, a count of the bytes its rows take, and the header
/// pointed at it (every other offset still points where it did); the checks that follow (<see cref="TiffStripData"/>) judge those strips as any others. Classic
/// TIFF only (as <see cref="TiffDefaults"/>). Measured against Debian's Pillow 9.4.
/// </summary>
public static class TiffRawStripLists
{
    private const ushort ImageWidth = 256, ImageLength = 257, BitsPerSample = 258, Compression = 259, Photometric = 262, StripOffsets = 273,
        SamplesPerPixel = 277, RowsPerStrip = 278, StripByteCounts = 279, PlanarConfiguration = 284;

    private const ushort Short = 3, Long = 4;
    private const ulong Uncompressed = 1, YCbCr = 6, MaxSamples = 6, MaxBitsPerPixel = 64;

    /// <summary>The longest list laid out: a strip a row, six planes, of the longest side (TiffStripData refuses a longer one).</summary>
    internal const ulong MaxOffsets = 6 * 65536;

    /// <summary>The file itself when it needs nothing (or is not a classic TIFF); otherwise a copy with the strip lists written anew.</summary>
    public static ReadOnlyMemory<byte> WithListsPillowReads(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { Big: false } directory || directory.Entries == 0) return bytes;
        var nextDirectoryAt = directory.Entry(directory.Entries);
        if (nextDirectoryAt + 4 > file.Length) return bytes;   // truncated: the completeness check says so
        var reader = new TiffReader(file, directory.LittleEndian);
        int? offsetsEntry = null, countsEntry = null;
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            // A repeated list Pillow reads the last of, ImageSharp the first: left as it is.
            if (tag == StripOffsets && offsetsEntry is not null || tag == StripByteCounts && countsEntry is not null) return bytes;
            if (tag == StripOffsets) offsetsEntry = entry;
            if (tag == StripByteCounts) countsEntry = entry;
        }
        var fields = directory.FirstIntegerFields(reader, file.Length);
        // Compressed strips are read by libtiff, which needs their counts; subsampled YCbCr packs its rows otherwise.
        if ((fields.FirstValue(reader, Compression) ?? Uncompressed) != Uncompressed || fields.FirstValue(reader, Photometric) == YCbCr) return bytes;
        // A list longer than any image's strips (a strip a row, six planes, of the largest side) is left to the checks:
        // laying out millions of offsets would cost more than the file is worth.
        if (offsetsEntry is not { } offsetsAt || directory.CountOf(reader, offsetsAt) > MaxOffsets) return bytes;
        if (Values(reader, directory, offsetsAt) is not { Length: > 0 } offsets) return bytes;
        var readHere = ReadHere(reader.U16(offsetsAt + 2)) && countsEntry is { } countsAt && ReadHere(reader.U16(countsAt + 2)) &&
            directory.CountOf(reader, countsAt) >= (ulong)offsets.Length;
        if (RowBytes(reader, fields) is not var (rowBytes, rowsPerStrip, stripsPerPlane, planar)) return bytes;
        // Offsets past a chunky image's strips Pillow lays out again from the image's top, each strip over the one it
        // wraps round to (read in the order of their offsets, the largest wins); ImageSharp reads the first ones alone:
        // the list is cut to those that count.
        var wraps = !planar && (ulong)offsets.Length > stripsPerPlane;
        if (readHere && !wraps) return bytes;
        var counts = new ulong[offsets.Length];
        for (var i = 0; i < counts.Length; i++)
        {
            counts[i] = Math.Min(rowsPerStrip, RowsOf(reader, fields) - (ulong)i % stripsPerPlane * rowsPerStrip) * rowBytes;
            // Pillow reads every strip listed and refuses one whose rows run past the file's end: left as it is, for the
            // checks to judge against the file's own end (the copy's is further on).
            if (!TiffDirectory.Within(offsets[i], counts[i], file.Length)) return bytes;
        }
        if (wraps) (offsets, counts) = (LargestOfEach(offsets, stripsPerPlane), counts[..(int)stripsPerPlane]);
        var entries = new List<int>();
        for (var e = 0; e < directory.Entries; e++)
        {
            if (reader.U16(directory.Entry(e)) is not (StripOffsets or StripByteCounts)) entries.Add(directory.Entry(e));
        }
        var at = (file.Length + 1) & ~1;   // a directory begins on a word boundary
        var entryCount = entries.Count + 2;
        if (entryCount > ushort.MaxValue) return bytes;
        var listsAt = at + 2 + entryCount * 12 + 4;
        var copy = new byte[listsAt + 2 * 4 * offsets.Length];
        file.CopyTo(copy);
        TiffDirectory.WriteValue(copy.AsSpan(4), Long, (uint)at, directory.LittleEndian);
        TiffDirectory.WriteValue(copy.AsSpan(at), Short, (ulong)entryCount, directory.LittleEndian);
        var written = 0;
        var toAdd = new Queue<(ushort Tag, ulong[] Values, int At)>([(StripOffsets, offsets, listsAt), (StripByteCounts, counts, listsAt + 4 * offsets.Length)]);
        foreach (var entry in entries)
        {
            // Entries are sorted by tag: each list goes before the first entry of a higher tag.
            while (toAdd.Count > 0 && reader.U16(entry) > toAdd.Peek().Tag) WriteLongs(copy, at + 2 + written++ * 12, toAdd.Dequeue(), directory.LittleEndian);
            file.Slice(entry, 12).CopyTo(copy.AsSpan(at + 2 + written++ * 12));
        }
        while (toAdd.Count > 0) WriteLongs(copy, at + 2 + written++ * 12, toAdd.Dequeue(), directory.LittleEndian);
        file.Slice(nextDirectoryAt, 4).CopyTo(copy.AsSpan(at + 2 + entryCount * 12));
        return copy;
    }

    /// <summary>The types ImageSharp reads strip offsets and counts of (SHORT, LONG, SSHORT, SLONG, IFD).</summary>
    private static bool ReadHere(ushort type) => type is 3 or 4 or 8 or 9 or 13;

    /// <summary>
    /// An entry's values as Pillow reads offsets: of any integer type, BYTE, SBYTE and LONG8 too; null for another type, a
    /// negative value (no offset), values past the file's end, or one past a LONG's range (the completeness check, and
    /// the decoder, judge those as they are).
    /// </summary>
    private static ulong[]? Values(TiffReader reader, TiffDirectory directory, int entry)
    {
        var type = reader.U16(entry + 2);
        var size = type switch { 1 or 6 => 1UL, 3 or 8 => 2UL, 4 or 9 or 13 => 4UL, 16 => 8UL, _ => 0UL };
        var count = directory.CountOf(reader, entry);
        if (size == 0 || count == 0 || count > (ulong)reader.Length / size) return null;
        ulong at = (ulong)directory.ValueField(entry);
        // Values that do not fit in the entry lie at the offset it holds instead.
        if (count * size > 4) at = reader.U32((long)at);
        if (!TiffDirectory.Within(at, count * size, reader.Length)) return null;
        var values = new ulong[count];
        for (ulong i = 0; i < count; i++)
        {
            var position = (long)(at + i * size);
            long number = type switch
            {
                1 => reader.U8(position),
                6 => (sbyte)reader.U8(position),
                3 => reader.U16(position),
                8 => (short)reader.U16(position),
                9 => (int)reader.U32(position),
                16 => (long)Math.Min(reader.U64(position), long.MaxValue),
                _ => reader.U32(position),
            };
            if (number is < 0 or > uint.MaxValue) return null;
            values[i] = (ulong)number;
        }
        return values;
    }

    /// <summary>
    /// Of offsets that wrap round a chunky image's <paramref name="strips"/> strips, the one of each strip whose rows
    /// Pillow keeps: it decodes its strips in the order of their offsets, so the largest is read last.
    /// </summary>
    private static ulong[] LargestOfEach(ulong[] offsets, ulong strips)
    {
        var largest = new ulong[strips];
        for (var i = 0; i < offsets.Length; i++) largest[(ulong)i % strips] = Math.Max(largest[(ulong)i % strips], offsets[i]);
        return largest;
    }

    /// <summary>
    /// How many bytes a row of a strip takes, the rows a strip holds, the strips of a plane, and whether each sample
    /// has a plane of its own; null for a layout the checks do not lay out.
    /// </summary>
    private static (ulong RowBytes, ulong RowsPerStrip, ulong StripsPerPlane, bool Planar)? RowBytes(TiffReader reader, Dictionary<ushort, IntegerField> fields)
    {
        var samples = fields.FirstValue(reader, SamplesPerPixel) ?? 1;
        var (width, height) = (fields.FirstValue(reader, ImageWidth) ?? 0, RowsOf(reader, fields));
        // More samples than any of Pillow's modes has (six) TiffStripData refuses; the sum below then stays short.
        if (width == 0 || height == 0 || samples is 0 or > MaxSamples) return null;
        ulong bits = 0;
        var bitsField = fields.GetValueOrDefault(BitsPerSample);
        if (fields.ContainsKey(BitsPerSample) && bitsField.Count != 1 && bitsField.Count != samples) return null;
        for (ulong i = 0; i < samples && bits <= MaxBitsPerPixel; i++) bits += fields.ContainsKey(BitsPerSample) ? reader.Value(bitsField.At, bitsField.Count == 1 ? 0 : i, bitsField.Type) : 1;
        if (bits is 0 or > MaxBitsPerPixel || width > int.MaxValue / bits) return null;
        var planar = fields.FirstValue(reader, PlanarConfiguration) == 2 && samples > 1;
        var rowsPerStrip = Math.Min(fields.FirstValue(reader, RowsPerStrip) ?? height, height);
        if (rowsPerStrip == 0) return null;
        return ((width * (planar ? bits / samples : bits) + 7) / 8, rowsPerStrip, (height + rowsPerStrip - 1) / rowsPerStrip, planar);
    }

    private static ulong RowsOf(TiffReader reader, Dictionary<ushort, IntegerField> fields) => fields.FirstValue(reader, ImageLength) ?? 0;


    /// <summary>An entry of LONG values: inline when there is one, otherwise written at the offset it holds.</summary>
    private static void WriteLongs(byte[] file, int at, (ushort Tag, ulong[] Values, int At) list, bool littleEndian)
    {
        TiffDirectory.WriteValue(file.AsSpan(at), Short, list.Tag, littleEndian);
        TiffDirectory.WriteValue(file.AsSpan(at + 2), Short, Long, littleEndian);
        TiffDirectory.WriteValue(file.AsSpan(at + 4), Long, (ulong)list.Values.Length, littleEndian);
        TiffDirectory.WriteValue(file.AsSpan(at + 8), Long, list.Values.Length == 1 ? list.Values[0] : (ulong)list.At, littleEndian);
        for (var i = 0; i < list.Values.Length; i++) TiffDirectory.WriteValue(file.AsSpan(list.At + 4 * i), Long, list.Values[i], littleEndian);
    }
}
