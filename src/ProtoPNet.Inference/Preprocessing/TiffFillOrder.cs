namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A TIFF whose strips are stored least significant bit first (FillOrder 2, as some fax software writes them): libtiff,
/// the trainer's decoder, reverses the bits of each byte of an LZW, deflate or PackBits strip before it decodes it, and
/// Pillow reverses uncompressed rows itself (its ";R" modes); ImageSharp decoded the bytes as they lie and refused the
/// file ("Corrupted TIFF LZW"), inflated garbage, or read other pixels. The strips' bytes are reversed in a copy and the
/// file marked FillOrder 1, so the checks and the decoder read what the trainer reads. Only the layouts Pillow opens
/// with FillOrder 2 (bilevel, grey of 2, 4, 8 and little-endian 16 bits, 8-bit RGB, palette; Pillow cannot identify any
/// other), and only those compressions (the fax and JPEG codecs read their own bit order).
/// </summary>
public static class TiffFillOrder
{
    private const ushort BitsPerSample = 258, Compression = 259, Photometric = 262, FillOrder = 266, StripOffsets = 273, SamplesPerPixel = 277,
        StripByteCounts = 279, PlanarConfiguration = 284, ExtraSamples = 338, SampleFormat = 339;
    private const ulong Uncompressed = 1, Lzw = 5, Deflate = 8, PackBits = 32773, OldDeflate = 32946;
    private const ulong LeastSignificantBitFirst = 2, MostSignificantBitFirst = 1;

    private static readonly byte[] Reversed = Enumerable.Range(0, 256).Select(value => ReverseBits((byte)value)).ToArray();

    /// <summary>The file itself when it is no TIFF stored least significant bit first that this reverses; otherwise a copy read most significant bit first.</summary>
    public static ReadOnlyMemory<byte> WithMostSignificantBitFirst(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { } directory) return bytes;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = new Dictionary<ushort, IntegerField>();
        var fillOrders = new List<IntegerField>();
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            if (directory.IntegerFieldAt(reader, entry, file.Length) is not { } field) continue;
            fields.TryAdd(field.Tag, field);   // libtiff reads the first of a repeated field
            if (field.Tag == FillOrder) fillOrders.Add(field);
        }
        if (!fields.TryGetValue(FillOrder, out var fillOrder) || First(reader, fillOrder) != LeastSignificantBitFirst) return bytes;
        var compression = fields.TryGetValue(Compression, out var compressionField) ? First(reader, compressionField) : Uncompressed;
        if (compression is not (Uncompressed or Lzw or Deflate or PackBits or OldDeflate)) return bytes;
        if (!fields.TryGetValue(StripOffsets, out var offsets) || !fields.TryGetValue(StripByteCounts, out var counts)) return bytes;
        if (!PillowOpens(reader, fields, directory.LittleEndian, compression == Uncompressed)) return bytes;
        var copy = file.ToArray();
        foreach (var field in fillOrders) TiffDirectory.WriteValue(copy.AsSpan((int)field.At), field.Type, MostSignificantBitFirst, directory.LittleEndian);
        // Pillow reads an uncompressed planar image one plane at a time with a raw mode of one letter, which it does not
        // reverse: the bytes stay as they lie.
        var planes = fields.TryGetValue(PlanarConfiguration, out var planar) && First(reader, planar) == 2;
        if (compression == Uncompressed && planes) return copy;

        // Strips may share their bytes: each byte is reversed once, in the union of the strips; never those of the
        // header, the directory or the strips' lists, which a damaged strip may overlap (libtiff reverses a copy).
        var kept = new List<(ulong Start, ulong End)>
        {
            (0, directory.Big ? 16UL : 8UL),
            ((ulong)directory.Offset, (ulong)directory.Entry(directory.Entries) + (ulong)directory.ValueSize),
            (offsets.At, offsets.At + offsets.Count * Size(offsets.Type)),
            (counts.At, counts.At + counts.Count * Size(counts.Type)),
        };
        var strips = new List<(int Start, int End)>();
        for (ulong i = 0; i < Math.Min(offsets.Count, counts.Count); i++)
        {
            var start = reader.Value(offsets.At, i, offsets.Type);
            if (start >= (ulong)file.Length) continue;
            strips.Add(((int)start, (int)Math.Min((ulong)file.Length, start + Math.Min(reader.Value(counts.At, i, counts.Type), (ulong)file.Length))));
        }
        var reversedUpTo = 0;
        foreach (var (start, end) in strips.OrderBy(strip => strip.Start))
        {
            for (var at = Math.Max(start, reversedUpTo); at < end; at++)
            {
                if (!InAny(kept, (ulong)at)) copy[at] = Reversed[copy[at]];
            }
            reversedUpTo = Math.Max(reversedUpTo, end);
        }
        return copy;
    }

    private static ulong First(TiffReader reader, IntegerField field) => reader.Value(field.At, 0, field.Type);

    private static bool InAny(List<(ulong Start, ulong End)> ranges, ulong at)
    {
        foreach (var (start, end) in ranges)
        {
            if (at >= start && at < end) return true;
        }
        return false;
    }

    private static ulong Size(ushort type) => type switch { 3 => 2, 4 => 4, _ => 8 };

    /// <summary>
    /// Whether Pillow 9.4 opens this layout with FillOrder 2 (its OPEN_INFO: unsigned samples, no extra samples); and
    /// when <paramref name="uncompressed"/>, whether it has a reversed raw mode for it too (none for palettes of 1, 2
    /// or 4 bits, nor for 8-bit WhiteIsZero: "unknown raw mode").
    /// </summary>
    private static bool PillowOpens(TiffReader reader, Dictionary<ushort, IntegerField> fields, bool littleEndian, bool uncompressed)
    {
        if (fields.ContainsKey(ExtraSamples) || (fields.TryGetValue(SampleFormat, out var format) && First(reader, format) != 1)) return false;
        if (!fields.TryGetValue(Photometric, out var photometricField)) return false;
        var samples = fields.TryGetValue(SamplesPerPixel, out var samplesField) ? First(reader, samplesField) : 1;
        var bits = fields.TryGetValue(BitsPerSample, out var bitsField) ? First(reader, bitsField) : 1;
        for (ulong i = 1; i < Math.Min(bitsField.Count, samples); i++)
        {
            if (reader.Value(bitsField.At, i, bitsField.Type) != bits) return false;
        }
        return (First(reader, photometricField), samples, bits) switch
        {
            (3, 1, 1 or 2 or 4) or (0, 1, 8) => !uncompressed,
            (0 or 1 or 3, 1, 1 or 2 or 4 or 8) => true,
            (1, 1, 16) => littleEndian,
            (2, 3, 8) => true,
            _ => false,
        };
    }

    private static byte ReverseBits(byte value)
    {
        var reversed = 0;
        for (var bit = 0; bit < 8; bit++) reversed |= (value >> bit & 1) << (7 - bit);
        return (byte)reversed;
    }
}
