using System.IO.Compression;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the strips of a TIFF's first image hold the pixels its directory declares. ImageSharp paints what a strip
/// lacks black and reports success; Pillow (the trainer's decoder) refuses such a file, so a damaged upload was
/// classified as the garbage the trainer never saw. Judged here, before decoding: a deflate strip (Compression 8 or
/// 32946) must inflate without error to every byte of its rows, as libtiff requires; an uncompressed strip's rows must
/// lie within the file, as Pillow reads them; BitsPerSample must give one value, or one per sample; an image of several
/// samples must say what they are (PhotometricInterpretation, which has no default); a Predictor must be one of 1, 2 and 3;
/// the fields that hold one value (the size, the compression, ...) must give one; and there must be strips at all.
/// </summary>
public static class TiffStripData
{
    private const ushort ImageWidth = 256, ImageLength = 257, BitsPerSample = 258, Compression = 259, StripOffsets = 273,
        SamplesPerPixel = 277, RowsPerStrip = 278, StripByteCounts = 279, PlanarConfiguration = 284,
        Photometric = 262, Predictor = 317;

    private const ushort TileOffsets = 324;

    private const ulong Uncompressed = 1, Lzw = 5, Deflate = 8, OldDeflate = 32946;

    /// <summary>Pillow reads at most six samples per pixel (its modes' most), and at most 64 bits per pixel (RGBA of 16-bit samples).</summary>
    private const ulong MaxSamples = 6, MaxBitsPerPixel = 64;

    /// <summary>The fields of one value that this check and the decoders read.</summary>
    private static readonly Dictionary<ushort, string> SingleValued = new()
    {
        [ImageWidth] = "ImageWidth", [ImageLength] = "ImageLength", [Compression] = "Compression", [Photometric] = "PhotometricInterpretation",
        [SamplesPerPixel] = "SamplesPerPixel", [RowsPerStrip] = "RowsPerStrip", [PlanarConfiguration] = "PlanarConfiguration", [Predictor] = "Predictor",
    };

    /// <summary>What is wrong with the first image's strips (one sentence), or null (also when the directory is one this check does not read).</summary>
    public static string? FindCorruption(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { } directory) return null;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = new Dictionary<ushort, IntegerField>();
        var counts = new Dictionary<ushort, ulong>();
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            counts.TryAdd(tag, directory.CountOf(reader, entry));
            // The first of a tag, as the decoders read it.
            if (fields.ContainsKey(tag) || directory.IntegerFieldAt(reader, entry, file.Length) is not { } field) continue;
            // Pillow warns of more values than one and takes the first, where the field points (an empty field, or one
            // past the file's end, it passes over, as ImageSharp does).
            if (field.Count > 1 && SingleValued.TryGetValue(tag, out var name)) return $"its {name} field gives {field.Count} values, not one";
            fields[tag] = field;
        }
        var samples = One(reader, fields, SamplesPerPixel) ?? 1;
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
        var compression = One(reader, fields, Compression) ?? 1;
        // libtiff reads a Predictor only for the compressions that use one; ImageSharp ignores it on uncompressed strips too.
        if (compression is Lzw or Deflate or OldDeflate && One(reader, fields, Predictor) is { } predictor and not (1 or 2 or 3))
        {
            return $"its Predictor is {predictor}, not 1, 2 or 3";
        }
        ulong bits = 0;
        for (ulong i = 0; i < samples; i++)
        {
            // Each value is judged before it is added: a sum of values near 2^64 would wrap.
            bits += fields.ContainsKey(BitsPerSample) ? reader.Value(bitsField.At, bitsField.Count == 1 ? 0 : i, bitsField.Type) : 1;   // one bit per sample, the tag's default
            if (bits > MaxBitsPerPixel) return $"its BitsPerSample makes more than the {MaxBitsPerPixel} bits per pixel of any TIFF the trainer reads";
        }
        if (One(reader, fields, ImageWidth) is not { } width || One(reader, fields, ImageLength) is not { } height || width == 0 || height == 0) return null;
        // Without strip (or tile) offsets there are no pixels: Pillow cannot identify such a file, ImageSharp painted it black.
        if (counts.GetValueOrDefault(StripOffsets) == 0 && !counts.ContainsKey(TileOffsets)) return "it has no StripOffsets to say where its pixels are";
        if (!fields.TryGetValue(StripOffsets, out var offsets) || !fields.TryGetValue(StripByteCounts, out var byteCounts)) return null;
        if (compression is not (Uncompressed or Deflate or OldDeflate)) return null;
        var planar = One(reader, fields, PlanarConfiguration) == 2 && samples > 1;
        var rowsPerStrip = Math.Min(One(reader, fields, RowsPerStrip) ?? height, height);
        if (rowsPerStrip == 0 || bits == 0 || width > int.MaxValue / bits) return null;
        var rowBytes = (width * (planar ? bits / samples : bits) + 7) / 8;
        var stripsPerPlane = (height + rowsPerStrip - 1) / rowsPerStrip;
        var strips = Math.Min(Math.Min(offsets.Count, byteCounts.Count), planar ? stripsPerPlane * samples : stripsPerPlane);

        for (ulong strip = 0; strip < strips; strip++)
        {
            var rows = Math.Min(rowsPerStrip, height - strip % stripsPerPlane * rowsPerStrip);
            var needed = rows * rowBytes;
            var start = reader.Value(offsets.At, strip, offsets.Type);
            var length = reader.Value(byteCounts.At, strip, byteCounts.Type);
            if (compression == Uncompressed)
            {
                // Pillow reads an uncompressed strip's rows from its offset on, whatever its byte count says.
                if (!TiffDirectory.Within(start, needed, file.Length))
                {
                    return $"its strip {strip} needs {needed} bytes at byte {start} for its {width}-pixel rows; the file ends after {file.Length}";
                }
                continue;
            }
            if (!TiffDirectory.Within(start, length, file.Length)) return null;   // the completeness check says so
            var (inflated, broken, unended) = Inflate(bytes.Slice((int)start, (int)length), needed);
            if (broken) return $"its strip {strip} is not a sound zlib stream (zlib stops on an error in it)";
            if (inflated < needed) return $"its strip {strip} of deflate data inflates to {inflated} bytes; its rows need {needed}";
            if (unended) return $"its strip {strip} of deflate data gives its rows, but its zlib stream does not end within its {length} bytes";
        }
        return null;
    }

    /// <summary>The first value of <paramref name="tag"/>; null when the directory has none.</summary>
    private static ulong? One(TiffReader reader, Dictionary<ushort, IntegerField> fields, ushort tag) =>
        fields.TryGetValue(tag, out var field) ? reader.Value(field.At, 0, field.Type) : null;

    /// <summary>
    /// How a deflate strip inflates: to how many bytes (at most one past the rows' <paramref name="needed"/>), whether zlib
    /// stopped on an error (its checksum among them), and whether the data ran out before the stream's end. libtiff (with
    /// libdeflate, as Debian's Pillow has it) inflates a strip whole: a stream that ends without its checksum, or that
    /// stops after the rows without ending, is refused; one that goes on past the rows is cut at them.
    /// </summary>
    private static (ulong Inflated, bool Broken, bool Unended) Inflate(ReadOnlyMemory<byte> data, ulong needed)
    {
        // Read where it lies, not copied: strips may all point at one large region, and each inflates only its rows.
        var input = new EndWatchingStream(data);
        ulong inflated = 0;
        try
        {
            using var zlib = new ZLibStream(input, CompressionMode.Decompress);
            Span<byte> sink = stackalloc byte[8192];
            // What follows the byte past the rows (a deflate bomb's remainder) is not inflated.
            while (inflated <= needed && zlib.Read(sink[..(int)Math.Min((ulong)sink.Length, needed + 1 - inflated)]) is var count and > 0) inflated += (ulong)count;
        }
        catch (Exception error) when (error is InvalidDataException or IOException)
        {
            // .NET words zlib's errors for zip archives ("The archive entry was compressed using an unsupported compression
            // method"), and throws a ZLibException (an IOException) for a header asking for a preset dictionary.
            return (inflated, true, false);
        }
        return (inflated, false, inflated <= needed && input.ReadPastEnd);
    }

    /// <summary>A stream over bytes that remembers being asked for more at its end: ZLibStream asks only while its zlib stream has not ended (it reports no error for one cut short).</summary>
    private sealed class EndWatchingStream(ReadOnlyMemory<byte> data) : Stream
    {
        private int position;

        public bool ReadPastEnd { get; private set; }

        public override int Read(Span<byte> buffer)
        {
            var count = Math.Min(buffer.Length, data.Length - position);
            data.Span.Slice(position, count).CopyTo(buffer);
            position += count;
            ReadPastEnd |= count == 0 && buffer.Length > 0;
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
