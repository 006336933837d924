namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A TIFF whose first directory has no BitsPerSample tag means one bit per sample (the tag's default): Pillow writes its
/// bilevel images so, and the decoder refuses them. The file is given the tag: its first directory is written anew
/// after the file's end, the tag added in its place among the entries, and the header pointed at it (every other offset
/// still points where it did).
/// </summary>
public static class TiffBitsPerSample
{
    private const ushort BitsPerSample = 258;
    private const ushort Short = 3, Long = 4;

    /// <summary>The file itself when it is not a classic TIFF or has the tag; otherwise a copy with BitsPerSample 1 added.</summary>
    public static ReadOnlyMemory<byte> WithDefault(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { Big: false } directory) return bytes;   // BigTIFF writers write the tag
        var reader = new TiffReader(file, directory.LittleEndian);
        var entries = Enumerable.Range(0, directory.Entries).Select(directory.Entry).ToArray();
        var tags = new List<ushort>(entries.Length);
        foreach (var entry in entries) tags.Add(reader.U16(entry));
        if (tags.Contains(BitsPerSample) || entries.Length == 0 || entries.Length >= ushort.MaxValue) return bytes;
        var nextDirectoryAt = directory.Entry(directory.Entries);
        if (nextDirectoryAt + 4 > file.Length) return bytes;   // truncated: the completeness check says so

        var at = (file.Length + 1) & ~1;   // a directory begins on a word boundary
        var copy = new byte[at + 2 + (entries.Length + 1) * 12 + 4];
        file.CopyTo(copy);
        TiffDirectory.WriteValue(copy.AsSpan(4), Long, (uint)at, directory.LittleEndian);
        TiffDirectory.WriteValue(copy.AsSpan(at), Short, (ushort)(entries.Length + 1), directory.LittleEndian);
        var written = 0;
        var added = false;
        foreach (var entry in entries)
        {
            if (!added && reader.U16(entry) > BitsPerSample)
            {
                WriteBitsPerSample(copy, at + 2 + written++ * 12, directory.LittleEndian);
                added = true;
            }
            file.Slice(entry, 12).CopyTo(copy.AsSpan(at + 2 + written++ * 12));
        }
        if (!added) WriteBitsPerSample(copy, at + 2 + written * 12, directory.LittleEndian);
        file.Slice(nextDirectoryAt, 4).CopyTo(copy.AsSpan(copy.Length - 4));
        return copy;
    }

    private static void WriteBitsPerSample(byte[] file, int at, bool littleEndian)
    {
        TiffDirectory.WriteValue(file.AsSpan(at), Short, BitsPerSample, littleEndian);
        TiffDirectory.WriteValue(file.AsSpan(at + 2), Short, Short, littleEndian);   // its type
        TiffDirectory.WriteValue(file.AsSpan(at + 4), Long, 1, littleEndian);        // one value
        TiffDirectory.WriteValue(file.AsSpan(at + 8), Short, 1, littleEndian);       // one bit per sample
        TiffDirectory.WriteValue(file.AsSpan(at + 10), Short, 0, littleEndian);      // the rest of the value field
    }
}
