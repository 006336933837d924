namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Tags a TIFF's first directory may leave out, given their defaults as Pillow (the trainer's decoder) reads them, where
/// the decoder refused the file without them: no BitsPerSample means one bit per sample (the tag's default; Pillow
/// writes its bilevel images so), and no PhotometricInterpretation on an image of one sample means WhiteIsZero (Pillow's
/// default: 0 is white, so the greys are read inverted; ImageSharp refused the file, saying its BitsPerSample was not
/// supported); float and 16-bit grey samples Pillow never inverts, so theirs is BlackIsZero, and a WhiteIsZero one is
/// written as BlackIsZero (ImageSharp inverted them); a compressed YCbCr image without YCbCrSubsampling is subsampled 2
/// by 2 (libtiff's default; ImageSharp read it as not subsampled). A field that gives no value counts as left out in an
/// uncompressed TIFF, which Pillow reads itself. The file is given the tags: its first directory is written anew after
/// the file's end, the tags added in their places among the entries (an empty one dropped), and the header pointed at it
/// (every other offset still points where it did).
/// </summary>
public static class TiffDefaults
{
    private const ushort BitsPerSample = 258, Compression = 259, PhotometricInterpretation = 262, SamplesPerPixel = 277, YCbCrSubsampling = 530;
    private const ushort Short = 3, Long = 4;
    private const ushort OneBit = 1, WhiteIsZero = 0, BlackIsZero = 1, YCbCr = 6, SampleFormat = 339;
    private const ulong FloatingPoint = 3;

    /// <summary>The file itself when it is not a classic TIFF or lacks none of the tags; otherwise a copy with them added.</summary>
    public static ReadOnlyMemory<byte> WithDefaults(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { Big: false } directory) return bytes;   // BigTIFF writers write the tags
        var reader = new TiffReader(file, directory.LittleEndian);
        var entries = Enumerable.Range(0, directory.Entries).Select(directory.Entry).ToArray();
        // A field without values Pillow passes over as if it were absent (libtiff, for a compressed TIFF, refuses an empty
        // BitsPerSample: TiffFieldTypes says so): such a one is dropped and given its default too.
        var uncompressed = (directory.FirstValueOf(file, Compression) ?? 1) == 1;
        var tags = new HashSet<ushort>(entries.Length);
        foreach (var entry in entries)
        {
            if (directory.CountOf(reader, entry) > 0 || !uncompressed) tags.Add(reader.U16(entry));
        }
        var missing = new SortedDictionary<ushort, ushort>();
        if (!tags.Contains(BitsPerSample)) missing[BitsPerSample] = OneBit;
        // Float and 16-bit grey samples Pillow reads as they are, whatever the photometric interpretation says (its modes
        // F and I;16): never inverted.
        var oneSample = (directory.FirstValueOf(file, SamplesPerPixel) ?? 1) == 1;
        var neverInverted = oneSample && (directory.FirstValueOf(file, SampleFormat) == FloatingPoint || directory.FirstValueOf(file, BitsPerSample) == 16);
        if (!tags.Contains(PhotometricInterpretation) && oneSample) missing[PhotometricInterpretation] = neverInverted ? BlackIsZero : WhiteIsZero;
        if (neverInverted && directory.FirstValueOf(file, PhotometricInterpretation) == WhiteIsZero) return AsBlackIsZero(bytes, directory);
        // YCbCr is subsampled 2 by 2 unless the file says otherwise, as libtiff (Pillow's decoder for compressed TIFFs)
        // reads it; ImageSharp read such a file as not subsampled. (A JPEG-compressed one's subsampling is its JPEG's.)
        if (directory.FirstValueOf(file, PhotometricInterpretation) == YCbCr && !tags.Contains(YCbCrSubsampling)
            && !uncompressed && directory.FirstValueOf(file, Compression) is not (6 or 7))
        {
            missing[YCbCrSubsampling] = 2;
        }
        if (missing.Count == 0 || entries.Length == 0 || entries.Length + missing.Count > ushort.MaxValue) return bytes;
        var kept = new List<int>(entries.Length);
        foreach (var entry in entries)
        {
            if (!missing.ContainsKey(reader.U16(entry))) kept.Add(entry);
        }
        var nextDirectoryAt = directory.Entry(directory.Entries);
        if (nextDirectoryAt + 4 > file.Length) return bytes;   // truncated: the completeness check says so

        var at = (file.Length + 1) & ~1;   // a directory begins on a word boundary
        var copy = new byte[at + 2 + (kept.Count + missing.Count) * 12 + 4];
        file.CopyTo(copy);
        TiffDirectory.WriteValue(copy.AsSpan(4), Long, (uint)at, directory.LittleEndian);
        TiffDirectory.WriteValue(copy.AsSpan(at), Short, (ushort)(kept.Count + missing.Count), directory.LittleEndian);
        var written = 0;
        var toAdd = new Queue<KeyValuePair<ushort, ushort>>(missing);
        foreach (var entry in kept)
        {
            // Entries are sorted by tag: each added one goes before the first entry of a higher tag.
            while (toAdd.Count > 0 && reader.U16(entry) > toAdd.Peek().Key)
            {
                var (tag, value) = toAdd.Dequeue();
                WriteShort(copy, at + 2 + written++ * 12, tag, value, directory.LittleEndian);
            }
            file.Slice(entry, 12).CopyTo(copy.AsSpan(at + 2 + written++ * 12));
        }
        while (toAdd.Count > 0)
        {
            var (tag, value) = toAdd.Dequeue();
            WriteShort(copy, at + 2 + written++ * 12, tag, value, directory.LittleEndian);
        }
        file.Slice(nextDirectoryAt, 4).CopyTo(copy.AsSpan(copy.Length - 4));
        return copy;
    }

    /// <summary>A copy whose (first) PhotometricInterpretation says BlackIsZero: samples Pillow never inverts.</summary>
    private static ReadOnlyMemory<byte> AsBlackIsZero(ReadOnlyMemory<byte> bytes, TiffDirectory directory)
    {
        var reader = new TiffReader(bytes.Span, directory.LittleEndian);
        for (var e = 0; e < directory.Entries; e++)
        {
            if (directory.IntegerFieldAt(reader, directory.Entry(e), bytes.Length) is not { Tag: PhotometricInterpretation } field) continue;
            var copy = bytes.ToArray();
            TiffDirectory.WriteValue(copy.AsSpan((int)field.At), field.Type, BlackIsZero, directory.LittleEndian);
            return copy;
        }
        return bytes;
    }

    /// <summary>An entry of one SHORT value, or of two alike (a subsampling, horizontal and vertical).</summary>
    private static void WriteShort(byte[] file, int at, ushort tag, ushort value, bool littleEndian)
    {
        var twice = tag == YCbCrSubsampling;
        TiffDirectory.WriteValue(file.AsSpan(at), Short, tag, littleEndian);
        TiffDirectory.WriteValue(file.AsSpan(at + 2), Short, Short, littleEndian);   // its type
        TiffDirectory.WriteValue(file.AsSpan(at + 4), Long, twice ? 2UL : 1UL, littleEndian);
        TiffDirectory.WriteValue(file.AsSpan(at + 8), Short, value, littleEndian);
        TiffDirectory.WriteValue(file.AsSpan(at + 10), Short, twice ? value : (ushort)0, littleEndian);   // else the rest of the value field
    }
}
