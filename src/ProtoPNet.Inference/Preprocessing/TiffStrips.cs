using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// The decoder sizes a TIFF's strip buffer by the RowsPerStrip tag, not by the image's height: a 39 KB file declaring
/// 100,000 rows per strip on an 8000x5000 image made it allocate 800 MB. More rows per strip than the image has mean
/// "one strip" (the tag's default is 2^32 - 1), so the first image's tag is clamped to its height before decoding, in
/// classic TIFF and BigTIFF alike, and in every entry of a directory that names the tag more than once (the decoder
/// read the first of two, the clamp had looked at the last: the same 800 MB).
/// </summary>
public static class TiffStrips
{
    private const ushort ImageLength = 257;
    private const ushort RowsPerStrip = 278;

    /// <summary>The file itself when it is not a TIFF or needs nothing; otherwise a copy with the tag clamped.</summary>
    public static ReadOnlyMemory<byte> WithRowsPerStripClamped(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { } directory) return bytes;   // not a TIFF, or truncated: the completeness check says so
        var (littleEndian, big) = (directory.LittleEndian, directory.Big);
        var reader = new TiffReader(file, littleEndian);

        var heights = new List<ulong>();
        var rowsFields = new List<(int At, ushort Type, ulong Rows)>();
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            var type = reader.U16(entry + 2);
            var count = big ? reader.U64(entry + 4) : reader.U32(entry + 4);
            if (count != 1 || !(type is 3 or 4 || (type == 16 && big))) continue;   // one SHORT, LONG or (in BigTIFF, where it fits) LONG8, inline
            var at = entry + 4 + directory.ValueSize;
            if (tag == ImageLength) heights.Add(reader.Value((ulong)at, 0, type));
            else if (tag == RowsPerStrip) rowsFields.Add((at, type, reader.Value((ulong)at, 0, type)));
        }
        if (rowsFields.Count == 0 || heights.Count == 0 || heights.Min() == 0) return bytes;
        var height = heights.Min();   // whichever of repeated heights the decoder takes, no strip is longer than the image
        var oversized = rowsFields.Where(field => field.Rows > height).ToArray();
        if (oversized.Length == 0) return bytes;

        var copy = file.ToArray();
        foreach (var (at, type, _) in oversized) TiffDirectory.WriteValue(copy.AsSpan(at), type, height, littleEndian);
        return copy;
    }
}
