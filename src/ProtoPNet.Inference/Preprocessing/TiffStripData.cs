using System.Buffers;
using System.IO.Compression;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the strips of a TIFF's first image hold the pixels its directory declares. ImageSharp paints what a strip
/// lacks black and reports success; Pillow (the trainer's decoder) refuses such a file, so a damaged upload was
/// classified as the garbage the trainer never saw. Judged here, before decoding: a deflate strip (Compression 8 or
/// 32946) must give every byte of its rows as libtiff inflates it (with libdeflate, as Debian's Pillow has it, or else
/// zlib), an LZW strip as libtiff decodes it (<see cref="TiffLzwStrip"/>), and a PackBits strip (<see cref="TiffPackBits"/>); an uncompressed strip's rows must lie within the file, as Pillow reads them; a compressed image must list a
/// strip for all its rows, and its strips may not claim far more bytes than the file has; BitsPerSample must give one
/// value, or one per sample, and at most 64 bits a pixel; an image of several samples must say what they are
/// (PhotometricInterpretation, which has no default); a Predictor must be one of 1, 2 and 3; the fields that hold one
/// value (the size, the compression, ...) must give one, and the same one where a repeat would change the pixels; and
/// there must be strips at all. First of all, a compressed image's layout fields must be of types libtiff reads
/// (<see cref="TiffFieldTypes"/>).
/// </summary>
public static class TiffStripData
{
    private const ushort ImageWidth = 256, ImageLength = 257, BitsPerSample = 258, Compression = 259, StripOffsets = 273,
        SamplesPerPixel = 277, RowsPerStrip = 278, StripByteCounts = 279, PlanarConfiguration = 284,
        Photometric = 262, Predictor = 317;

    private const ushort TileOffsets = 324, YCbCrSubsampling = 530, FillOrder = 266;

    private const ulong LeastSignificantBitFirst = 2;

    private const ulong YCbCr = 6;

    private const ulong Uncompressed = 1, Lzw = 5, Deflate = 8, PackBits = 32773, OldDeflate = 32946;

    /// <summary>Pillow reads at most six samples per pixel (its modes' most), and at most 64 bits per pixel (RGBA of 16-bit samples).</summary>
    private const ulong MaxSamples = 6, MaxBitsPerPixel = 64;

    /// <summary>How many bytes compressed strips may claim beyond the file's own (strips that share data, as a writer may do for blank ones).</summary>
    private const ulong SharedStripBytes = 16 << 20;

    /// <summary>The largest strip inflated whole with libdeflate (a larger one, which no common writer makes, is judged with zlib).</summary>
    private const ulong WholeStripBytes = 64 << 20, PooledStripBytes = 1 << 20;

    /// <summary>The fields of one value that this check and the decoders read.</summary>
    private static readonly Dictionary<ushort, string> SingleValued = new()
    {
        [ImageWidth] = "ImageWidth", [ImageLength] = "ImageLength", [Compression] = "Compression", [Photometric] = "PhotometricInterpretation",
        [SamplesPerPixel] = "SamplesPerPixel", [RowsPerStrip] = "RowsPerStrip", [PlanarConfiguration] = "PlanarConfiguration", [Predictor] = "Predictor",
    };

    /// <summary>What is wrong with the first image's strips (one sentence), or null (also when the directory is one this check does not read).</summary>
    public static string? FindCorruption(ReadOnlyMemory<byte> bytes) => FindCorruption(bytes, LibDeflate.IsAvailable, rewrites: null);

    /// <summary>
    /// As <see cref="FindCorruption(ReadOnlyMemory{byte})"/>, with deflate strips judged by libdeflate or, as libtiff
    /// does without it, by zlib; the strips ImageSharp would read otherwise than the trainer (sound LZW strips libtiff reads
    /// otherwise, uncompressed strips counted short of their rows, PackBits strips counted past them) are added to
    /// <paramref name="rewrites"/>, in the same pass.
    /// </summary>
    internal static string? FindCorruption(ReadOnlyMemory<byte> bytes, bool withLibDeflate, TiffStripRewrites? rewrites, int? uploadedLength = null)
    {
        var file = bytes.Span;
        // Strips lie in the file as uploaded: what a rewrite wrote after its end (a directory, lists, a palette's levels)
        // is no strip's data, and a strip that runs into it runs past the upload's end, where Pillow stops.
        var dataEnd = Math.Min(uploadedLength ?? file.Length, file.Length);
        if (TiffDirectory.First(file) is not { } directory) return null;
        if ((TiffFieldTypes.FindUnreadable(file, directory) ?? TiffPillowLayout.FindUnreadable(file, directory)) is { } unreadable) return unreadable;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = new Dictionary<ushort, IntegerField>();
        var counts = new Dictionary<ushort, ulong>();
        (ulong First, ulong Other)? rowsPerStripTwice = null;
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            counts.TryAdd(tag, directory.CountOf(reader, entry));
            if (directory.IntegerFieldAt(reader, entry, file.Length) is not { } field) continue;
            SingleValued.TryGetValue(tag, out var name);
            if (fields.TryGetValue(tag, out var first))
            {
                // The first of a repeated field is what libtiff and ImageSharp read, the last what Pillow's own reading
                // keeps: where that changes the pixels (the size, the samples and what they are, the compression), a
                // field repeated with another value is refused. (A repeated Predictor or PlanarConfiguration both
                // decoders take from the first, and a compressed image's RowsPerStrip, which libtiff reads; an
                // uncompressed one's Pillow lays out by the last: judged below.) BitsPerSample is compared value by value.
                if (tag is ImageWidth or ImageLength or SamplesPerPixel or Photometric or Compression && One(reader, first) != One(reader, field))
                {
                    return $"its {name} field appears twice, as {One(reader, first)} and {One(reader, field)}";
                }
                if (tag == BitsPerSample && !SameValues(reader, first, field))
                {
                    return $"its BitsPerSample field appears twice, as {Values(reader, first)} and {Values(reader, field)}";
                }
                if (tag == RowsPerStrip && One(reader, first) != One(reader, field)) rowsPerStripTwice ??= (One(reader, first), One(reader, field));
                continue;
            }
            // Several values where one belongs: Pillow warns and takes the first, from where the field points (libtiff
            // drops a Predictor of several and decodes without it); ImageSharp reads them otherwise. An empty field, or
            // one past the file's end, both pass over.
            if (field.Count > 1 && name is not null) return $"its {name} field gives {field.Count} values, not one";
            fields[tag] = field;
        }
        var samples = fields.FirstValue(reader, SamplesPerPixel) ?? 1;
        // Pillow refuses more samples than any of its modes has (six); the sums below then stay small.
        if (samples > MaxSamples) return $"its SamplesPerPixel is {samples}, more than the {MaxSamples} of any image the trainer reads";
        if (fields.TryGetValue(BitsPerSample, out var bitsField) && bitsField.Count > 1 && bitsField.Count != samples)
        {
            return $"its BitsPerSample gives {bitsField.Count} values, but its SamplesPerPixel is {samples}";
        }
        if (samples > 1 && !fields.ContainsKey(Photometric))
        {
            return $"it has no PhotometricInterpretation to say what its {samples} samples per pixel are";
        }
        var compression = fields.FirstValue(reader, Compression) ?? 1;
        if (compression == Uncompressed && rowsPerStripTwice is var (firstRows, otherRows))
        {
            return $"its RowsPerStrip field appears twice, as {firstRows} and {otherRows} (Pillow lays the strips of an uncompressed TIFF out by the last, the decoder here by the first)";
        }
        // libtiff reads a Predictor only for the compressions that use one (Pillow reads an uncompressed TIFF with any).
        if (compression is Lzw or Deflate or OldDeflate && fields.FirstValue(reader, Predictor) is { } predictor and not (1 or 2 or 3))
        {
            return $"its Predictor is {predictor}, not 1, 2 or 3";
        }
        ulong bits = 0;
        var oneBitSamples = true;
        for (ulong i = 0; i < samples; i++)
        {
            // Each value is judged before it is added: a sum of values near 2^64 would wrap.
            var sampleBits = fields.ContainsKey(BitsPerSample) ? reader.Value(bitsField.At, bitsField.Count == 1 ? 0 : i, bitsField.Type) : 1;   // one bit per sample, the tag's default
            bits += sampleBits;
            oneBitSamples &= sampleBits == 1;
            if (bits > MaxBitsPerPixel) return $"its BitsPerSample makes more than the {MaxBitsPerPixel} bits per pixel of any TIFF the trainer reads";
        }
        // libtiff's fax decoders ("Bits/sample must be 1 for Group 3/4") refuse any other depth; ImageSharp decoded one.
        if (TiffFaxPolarity.IsFax(compression) && !oneBitSamples)
        {
            return $"its BitsPerSample is {Values(reader, bitsField)}, but its fax compression ({compression}) codes 1 bit per sample, and libtiff refuses any other";
        }
        if (fields.FirstValue(reader, ImageWidth) is not { } width || fields.FirstValue(reader, ImageLength) is not { } height || width == 0 || height == 0) return null;
        // Without strip (or tile) offsets there are no pixels: Pillow cannot identify such a file, ImageSharp painted it black.
        if (counts.GetValueOrDefault(StripOffsets) == 0 && !counts.ContainsKey(TileOffsets)) return "it has no StripOffsets to say where its pixels are";
        if (!fields.TryGetValue(StripOffsets, out var offsets) || !fields.TryGetValue(StripByteCounts, out var byteCounts)) return null;
        if (compression != Uncompressed)
        {
            // Each compressed strip is decoded from all of its bytes, so strips that share one region decode it again
            // and again (65,535 strips over one 100 KB run of empty deflate blocks: minutes, here and in ImageSharp).
            var budget = (ulong)dataEnd + SharedStripBytes;
            ulong claimed = 0;
            for (ulong i = 0; i < byteCounts.Count && claimed <= budget; i++) claimed += Math.Min(reader.Value(byteCounts.At, i, byteCounts.Type), budget + 1);
            if (claimed > budget) return $"its compressed strips claim more than {budget} bytes of a {dataEnd}-byte file (strips that share their data are decoded again for each)";
        }
        // Subsampled YCbCr (the default subsampling is 2 by 2) packs its rows otherwise than this check counts them.
        if (fields.FirstValue(reader, Photometric) == YCbCr && (!fields.TryGetValue(YCbCrSubsampling, out var subsampling) || subsampling.Count < 2 ||
                reader.Value(subsampling.At, 0, subsampling.Type) != 1 || reader.Value(subsampling.At, 1, subsampling.Type) != 1))
        {
            return null;
        }
        var planar = fields.FirstValue(reader, PlanarConfiguration) == 2 && samples > 1;
        var rowsPerStrip = Math.Min(fields.FirstValue(reader, RowsPerStrip) ?? height, height);
        if (rowsPerStrip == 0 || bits == 0 || width > int.MaxValue / bits) return null;
        var rowBytes = (width * (planar ? bits / samples : bits) + 7) / 8;
        var stripsPerPlane = (height + rowsPerStrip - 1) / rowsPerStrip;
        var stripsNeeded = planar ? stripsPerPlane * samples : stripsPerPlane;
        // A list longer than TiffRawStripLists lays out: Pillow reads each of its strips, the decoder here the first.
        if (compression == Uncompressed && offsets.Count > TiffRawStripLists.MaxOffsets)
        {
            return $"it lists {offsets.Count} strip offsets, more than the {TiffRawStripLists.MaxOffsets} any image's strips need (Pillow reads each, the decoder here the first)";
        }
        var listed = Math.Min(offsets.Count, byteCounts.Count);
        // libtiff refuses a compressed strip that is not listed (an uncompressed TIFF's byte counts, which Pillow never
        // reads, were given one per offset before: TiffRawStripLists). Pillow maps a one-strip 8-bit grey, palette or 16-bit grey
        // file whole and refuses it too ("buffer is not large enough"); it reads other uncompressed ones with the missing
        // rows black, where ImageSharp read other pixels (white, from rows it had): refused as well.
        if (listed < stripsNeeded)
        {
            var lists = offsets.Count == byteCounts.Count ? $"{listed} strips" : $"{offsets.Count} strip offsets and {byteCounts.Count} byte counts";
            return $"it lists {lists}, but its {height} rows, {rowsPerStrip} to a strip, need {stripsNeeded}";
        }
        // Pillow lays an uncompressed planar image's strips out plane by plane, and cannot identify one with strips past
        // its last plane (a chunky one's it lays out again from the top: TiffRawStripLists); ImageSharp read the first ones.
        if (compression == Uncompressed && planar && offsets.Count > stripsNeeded)
        {
            return $"it lists {offsets.Count} strip offsets, more than the {stripsNeeded} strips of its {samples} planes, which the trainer's Pillow cannot lay out";
        }
        // Pillow reads the rows of every offset an uncompressed image lists, those past a chunky one's strips too (laid
        // out again from its top); TiffRawStripLists leaves such a list as it is where one runs past the file's end.
        for (var strip = Math.Min(listed, stripsNeeded); compression == Uncompressed && strip < offsets.Count; strip++)
        {
            var needed = Math.Min(rowsPerStrip, height - strip % stripsPerPlane * rowsPerStrip) * rowBytes;
            if (RowsPastTheEnd(reader, offsets, strip, needed, width, dataEnd) is { } pastTheEnd) return pastTheEnd;
        }
        if (compression is not (Uncompressed or Lzw or Deflate or OldDeflate or PackBits)) return null;
        // libtiff reverses the bits of each byte of a strip written least significant bit first before it decodes it
        // (TiffFillOrder does so for LZW, deflate and PackBits before this check): others are not judged here.
        if (compression != Uncompressed && fields.FirstValue(reader, FillOrder) == LeastSignificantBitFirst) return null;
        var strips = Math.Min(listed, stripsNeeded);

        // libdeflate inflates a whole strip at once, into a buffer of its rows (kept to a size a strip of sound rows has).
        var stripBytes = rowsPerStrip * rowBytes;
        using var libdeflate = compression is Deflate or OldDeflate && withLibDeflate && stripBytes <= WholeStripBytes ? new LibDeflate.Decompressor() : null;
        // A large strip's buffer is not pooled: the pool would keep it.
        var pooled = stripBytes <= PooledStripBytes;
        var rowsBuffer = libdeflate is null ? null : pooled ? ArrayPool<byte>.Shared.Rent((int)stripBytes) : GC.AllocateUninitializedArray<byte>((int)stripBytes);
        try
        {
            for (ulong strip = 0; strip < strips; strip++)
            {
                var rows = Math.Min(rowsPerStrip, height - strip % stripsPerPlane * rowsPerStrip);
                var needed = rows * rowBytes;
                var start = reader.Value(offsets.At, strip, offsets.Type);
                var length = reader.Value(byteCounts.At, strip, byteCounts.Type);
                if (compression == Uncompressed)
                {
                    // Pillow reads an uncompressed strip's rows from its offset on, whatever its byte count says.
                    if (RowsPastTheEnd(reader, offsets, strip, needed, width, dataEnd) is { } pastTheEnd) return pastTheEnd;
                    if (length < needed) rewrites?.AddNewCount(directory, offsets, byteCounts, (int)strip, needed);
                    continue;
                }
                // A lone strip whose byte count is 0 libtiff reads to the file's end ("Bogus StripByteCounts"); ImageSharp
                // is given that count (unless its LZW is written anew, with a count of its own).
                var countedZero = strips == 1 && length == 0 && start <= (ulong)dataEnd;
                if (countedZero) length = (ulong)dataEnd - start;
                if (!TiffDirectory.Within(start, length, dataEnd)) return null;   // the completeness check says so
                // Read where it lies, not copied: strips may all point at one large region.
                var data = bytes.Slice((int)start, (int)length);
                if (compression == Lzw)
                {
                    // libtiff decodes every strip the old way when the first is written so; those files are not judged.
                    if (strip == 0 && TiffLzwStrip.IsOldStyle(data.Span)) return null;
                    var verdict = TiffLzwStrip.Judge(data.Span, needed);
                    if (verdict.Damage is not null) return $"its strip {strip} of LZW data {verdict.Damage}";
                    if (verdict.Irregular) rewrites?.AddWrittenAnew(directory, offsets, byteCounts, new((int)strip, (int)start, (int)length, needed, PackBits: false));
                    else if (countedZero) rewrites?.AddNewCount(directory, offsets, byteCounts, 0, length);
                    continue;
                }
                if (compression == PackBits)
                {
                    var (decoded, consumed, runCut) = TiffPackBits.Read(data.Span, needed);
                    if (decoded < needed) return $"its strip {strip} of PackBits data gives {decoded} bytes; its rows need {needed}";
                    // libtiff stops once the rows are whole; ImageSharp decodes every counted byte into a buffer of the
                    // strip's rows, and refused a strip counted past them ("Destination is too short"). Counted to the run
                    // that ends its rows, it decodes what libtiff does. Rows that end inside a run, which libtiff cuts,
                    // overflow that buffer whatever the count: such a strip is written anew, cut at its rows. (Counted 0,
                    // to the file's end, a lone strip needs its rows' bytes as a count all the same.)
                    if (runCut) rewrites?.AddWrittenAnew(directory, offsets, byteCounts, new((int)strip, (int)start, consumed, needed, PackBits: true));
                    else if (countedZero || (ulong)consumed < length) rewrites?.AddNewCount(directory, offsets, byteCounts, (int)strip, (ulong)consumed);
                    continue;
                }
                if (countedZero) rewrites?.AddNewCount(directory, offsets, byteCounts, 0, length);   // deflate ends with its stream
                if (libdeflate is not null)
                {
                    switch (libdeflate.Inflate(data.Span, rowsBuffer.AsSpan(0, (int)needed)))
                    {
                        case LibDeflate.Result.BadData:
                            return $"its strip {strip} is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)";
                        case LibDeflate.Result.ShortOutput:
                            return $"its strip {strip} of deflate data inflates to fewer than the {needed} bytes its rows need";
                    }
                    continue;
                }
                var (inflated, broken) = Inflate(data, needed);
                if (broken) return $"its strip {strip} is not a sound zlib stream (zlib stops on an error in it before its rows)";
                if (inflated < needed) return $"its strip {strip} of deflate data inflates to {inflated} bytes; its rows need {needed}";
            }
        }
        finally
        {
            if (rowsBuffer is not null && pooled) ArrayPool<byte>.Shared.Return(rowsBuffer);
        }
        return null;
    }


    private static ulong One(TiffReader reader, IntegerField field) => reader.Value(field.At, 0, field.Type);

    /// <summary>Why an uncompressed strip's rows, read from its offset as Pillow reads them, run past the upload's end; null when they do not.</summary>
    private static string? RowsPastTheEnd(TiffReader reader, IntegerField offsets, ulong strip, ulong needed, ulong width, int dataEnd)
    {
        var start = reader.Value(offsets.At, strip, offsets.Type);
        return TiffDirectory.Within(start, needed, dataEnd)
            ? null
            : $"its strip {strip} needs {needed} bytes at byte {start} for its {width}-pixel rows; the file ends after {dataEnd}";
    }

    /// <summary>Whether two fields give the same values (a repeated BitsPerSample: Pillow reads the last, libtiff and ImageSharp the first).</summary>
    private static bool SameValues(TiffReader reader, IntegerField first, IntegerField second)
    {
        if (first.Count != second.Count) return false;
        for (ulong i = 0; i < first.Count; i++)
        {
            if (reader.Value(first.At, i, first.Type) != reader.Value(second.At, i, second.Type)) return false;
        }
        return true;
    }

    /// <summary>A field's values as a message quotes them: one as it is, several comma-separated (the first eight).</summary>
    private static string Values(TiffReader reader, IntegerField field)
    {
        var shown = new List<string>();
        for (ulong i = 0; i < Math.Min(field.Count, 8); i++) shown.Add(reader.Value(field.At, i, field.Type).ToString(System.Globalization.CultureInfo.InvariantCulture));
        return string.Join(",", shown) + (field.Count > 8 ? ",..." : "");
    }

    /// <summary>
    /// How many bytes a deflate strip inflates to with zlib, at most <paramref name="needed"/>, and whether zlib stopped on
    /// an error first. libtiff without libdeflate inflates so: it stops once the rows are there (what follows, a deflate
    /// bomb's remainder among it, is not inflated).
    /// </summary>
    private static (ulong Inflated, bool Broken) Inflate(ReadOnlyMemory<byte> data, ulong needed)
    {
        ulong inflated = 0;
        try
        {
            using var zlib = new ZLibStream(new MemoryReadStream(data), CompressionMode.Decompress);
            Span<byte> sink = stackalloc byte[8192];
            while (inflated < needed && zlib.Read(sink[..(int)Math.Min((ulong)sink.Length, needed - inflated)]) is var count and > 0) inflated += (ulong)count;
        }
        catch (Exception error) when (error is InvalidDataException or IOException)
        {
            // .NET words zlib's errors for zip archives ("The archive entry was compressed using an unsupported compression
            // method"), and throws a ZLibException (an IOException) for a header asking for a preset dictionary.
            return (inflated, true);
        }
        return (inflated, false);
    }

    /// <summary>A read-only stream over bytes where they lie (a MemoryStream needs an array of its own).</summary>
    private sealed class MemoryReadStream(ReadOnlyMemory<byte> data) : Stream
    {
        private int position;

        public override int Read(Span<byte> buffer)
        {
            var count = Math.Min(buffer.Length, data.Length - position);
            data.Span.Slice(position, count).CopyTo(buffer);
            position += count;
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
