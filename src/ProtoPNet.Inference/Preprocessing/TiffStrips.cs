using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// The decoder sizes a TIFF's strip buffer by the RowsPerStrip tag, not by the image's height: a 39 KB file declaring
/// 100,000 rows per strip on an 8000x5000 image made it allocate 800 MB. More rows per strip than the image has mean
/// "one strip" (the tag's default is 2^32 - 1), so the first image's tag is clamped to its height before decoding.
/// </summary>
public static class TiffStrips
{
    private const ushort ImageLength = 257;
    private const ushort RowsPerStrip = 278;

    /// <summary>The file itself when it is not a classic TIFF or needs nothing; otherwise a copy with the tag clamped.</summary>
    public static ReadOnlyMemory<byte> WithRowsPerStripClamped(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (file.Length < 8) return bytes;
        bool littleEndian;
        if (file[0] == 'I' && file[1] == 'I') littleEndian = true;
        else if (file[0] == 'M' && file[1] == 'M') littleEndian = false;
        else return bytes;
        var reader = new TiffReader(file, littleEndian);
        if (reader.U16(2) != 42) return bytes;   // not classic TIFF (BigTIFF is 43)
        var directory = reader.U32(4);
        if (directory + 2 > (uint)file.Length) return bytes;
        var entries = reader.U16(directory);
        if (directory + 2 + entries * 12L > file.Length) return bytes;   // truncated: the completeness check says so

        long height = -1;
        var rowsField = -1;
        ushort rowsType = 0;
        for (var e = 0; e < entries; e++)
        {
            var entry = (int)directory + 2 + e * 12;
            var tag = reader.U16(entry);
            var type = reader.U16(entry + 2);
            if (reader.U32(entry + 4) != 1 || type is not (3 or 4)) continue;   // one SHORT or LONG, inline
            var value = reader.Value((ulong)entry + 8, 0, type);
            if (tag == ImageLength) height = (long)value;
            else if (tag == RowsPerStrip) (rowsField, rowsType) = (entry + 8, type);
        }
        if (rowsField < 0 || height <= 0) return bytes;
        if (reader.Value((ulong)rowsField, 0, rowsType) <= (ulong)height) return bytes;

        var copy = file.ToArray();
        if (rowsType == 3)
        {
            var clamped = (ushort)Math.Min(height, ushort.MaxValue);
            if (littleEndian) BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(rowsField), clamped);
            else BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(rowsField), clamped);
        }
        else if (littleEndian) BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(rowsField), (uint)height);
        else BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(rowsField), (uint)height);
        return copy;
    }
}
