namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A compressed TIFF whose strips are stored least significant bit first (FillOrder 2, as some fax software writes
/// them): libtiff, the trainer's decoder, reverses the bits of each byte of a strip before it decodes it; ImageSharp
/// decoded the bytes as they lie and refused the file ("Corrupted TIFF LZW"), or inflated garbage. The strips' bytes
/// are reversed in a copy and the file marked FillOrder 1, so the checks and the decoder read what libtiff reads. Only
/// LZW and deflate strips, which libtiff reverses (a fax codec reads its own bit order).
/// </summary>
public static class TiffFillOrder
{
    private const ushort Compression = 259, FillOrder = 266, StripOffsets = 273, StripByteCounts = 279;
    private const ulong Lzw = 5, Deflate = 8, OldDeflate = 32946, LeastSignificantBitFirst = 2, MostSignificantBitFirst = 1;

    private static readonly byte[] Reversed = Enumerable.Range(0, 256).Select(value => ReverseBits((byte)value)).ToArray();

    /// <summary>The file itself when it is no LZW or deflate TIFF stored least significant bit first; otherwise a copy read most significant bit first.</summary>
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
        if (!fields.TryGetValue(Compression, out var compression) || First(reader, compression) is not (Lzw or Deflate or OldDeflate)) return bytes;
        if (!fields.TryGetValue(StripOffsets, out var offsets) || !fields.TryGetValue(StripByteCounts, out var counts)) return bytes;

        // Strips may share their bytes: each byte is reversed once, in the union of the strips.
        var strips = new List<(int Start, int End)>();
        for (ulong i = 0; i < Math.Min(offsets.Count, counts.Count); i++)
        {
            var start = reader.Value(offsets.At, i, offsets.Type);
            if (start >= (ulong)file.Length) continue;
            strips.Add(((int)start, (int)Math.Min((ulong)file.Length, start + Math.Min(reader.Value(counts.At, i, counts.Type), (ulong)file.Length))));
        }
        var copy = file.ToArray();
        var reversedUpTo = 0;
        foreach (var (start, end) in strips.OrderBy(strip => strip.Start))
        {
            for (var at = Math.Max(start, reversedUpTo); at < end; at++) copy[at] = Reversed[copy[at]];
            reversedUpTo = Math.Max(reversedUpTo, end);
        }
        foreach (var field in fillOrders) TiffDirectory.WriteValue(copy.AsSpan((int)field.At), field.Type, MostSignificantBitFirst, directory.LittleEndian);
        return copy;
    }

    private static ulong First(TiffReader reader, IntegerField field) => reader.Value(field.At, 0, field.Type);

    private static byte ReverseBits(byte value)
    {
        var reversed = 0;
        for (var bit = 0; bit < 8; bit++) reversed |= (value >> bit & 1) << (7 - bit);
        return (byte)reversed;
    }
}
