using System.IO.Compression;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the strips of a TIFF's first image hold the pixels its directory declares. ImageSharp paints what a strip
/// lacks black and reports success; Pillow (the trainer's decoder) refuses such a file, so a damaged upload was
/// classified as the garbage the trainer never saw. Judged here, before decoding: a deflate strip (Compression 8 or
/// 32946) must inflate without error to every byte of its rows, as libtiff requires; an uncompressed strip's rows must
/// lie within the file, as Pillow reads them; BitsPerSample must give one value, or one per sample; an image of several
/// samples must say what they are (PhotometricInterpretation, which has no default); a Predictor must be one of 1, 2 and 3.
/// </summary>
public static class TiffStripData
{
    private const ushort ImageWidth = 256, ImageLength = 257, BitsPerSample = 258, Compression = 259, StripOffsets = 273,
        SamplesPerPixel = 277, RowsPerStrip = 278, StripByteCounts = 279, PlanarConfiguration = 284,
        Photometric = 262, Predictor = 317;

    private const ulong MaxSamples = 6;

    /// <summary>What is wrong with the first image's strips (one sentence), or null (also when the directory is one this check does not read).</summary>
    public static string? FindCorruption(ReadOnlySpan<byte> file)
    {
        if (TiffDirectory.First(file) is not { } directory) return null;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = new Dictionary<ushort, (ulong At, ulong Count, ushort Type)>();
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            var type = reader.U16(entry + 2);
            var count = directory.Big ? reader.U64(entry + 4) : reader.U32(entry + 4);
            if (type is not (3 or 4 or 16) || count == 0 || fields.ContainsKey(tag)) continue;   // the first of a tag, as the decoders read it
            var size = type == 3 ? 2UL : type == 4 ? 4UL : 8UL;
            if (count > (ulong)file.Length / size) continue;
            var at = (ulong)(entry + 4 + directory.ValueSize);
            if (count * size > (ulong)directory.ValueSize) at = directory.Big ? reader.U64((long)at) : reader.U32((long)at);
            if (!Within(at, count * size, file.Length)) continue;   // the completeness check says so
            fields[tag] = (at, count, type);
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
        if (One(reader, fields, Predictor) is { } predictor and not (1 or 2 or 3)) return $"its Predictor is {predictor}, not 1, 2 or 3";
        if (One(reader, fields, ImageWidth) is not { } width || One(reader, fields, ImageLength) is not { } height || width == 0 || height == 0) return null;
        if (!fields.TryGetValue(StripOffsets, out var offsets) || !fields.TryGetValue(StripByteCounts, out var counts)) return null;
        var compression = One(reader, fields, Compression) ?? 1;
        if (compression is not (1 or 8 or 32946)) return null;
        ulong bits = 0;
        for (ulong i = 0; i < samples; i++) bits += reader.Value(bitsField.At, bitsField.Count == 1 ? 0 : i, bitsField.Type);
        if (!fields.ContainsKey(BitsPerSample)) bits = samples;   // one bit per sample, the tag's default
        var planar = One(reader, fields, PlanarConfiguration) == 2 && samples > 1;
        var rowsPerStrip = Math.Min(One(reader, fields, RowsPerStrip) ?? height, height);
        if (rowsPerStrip == 0 || bits == 0 || width > int.MaxValue / bits) return null;
        var rowBytes = (width * (planar ? bits / samples : bits) + 7) / 8;
        var stripsPerPlane = (height + rowsPerStrip - 1) / rowsPerStrip;
        var strips = Math.Min(Math.Min(offsets.Count, counts.Count), planar ? stripsPerPlane * samples : stripsPerPlane);

        for (ulong strip = 0; strip < strips; strip++)
        {
            var rows = Math.Min(rowsPerStrip, height - strip % stripsPerPlane * rowsPerStrip);
            var needed = rows * rowBytes;
            var start = reader.Value(offsets.At, strip, offsets.Type);
            var length = reader.Value(counts.At, strip, counts.Type);
            if (compression == 1)
            {
                // Pillow reads an uncompressed strip's rows from its offset on, whatever its byte count says.
                if (!Within(start, needed, file.Length))
                {
                    return $"its strip {strip} needs {needed} bytes at byte {start} for its {width}-pixel rows; the file ends after {file.Length}";
                }
                continue;
            }
            if (!Within(start, length, file.Length)) return null;   // the completeness check says so
            var inflated = Inflated(file.Slice((int)start, (int)length), needed, out var corrupt);
            if (corrupt) return $"its strip {strip} is not a sound zlib stream (it stops inflating after {inflated} of the {needed} bytes its rows need)";
            if (inflated < needed) return $"its strip {strip} of deflate data inflates to {inflated} bytes; its rows need {needed}";
        }
        return null;
    }

    /// <summary>Whether <paramref name="size"/> bytes from <paramref name="at"/> lie in a file of <paramref name="length"/> bytes (offsets near 2^64 included: no sum wraps).</summary>
    internal static bool Within(ulong at, ulong size, int length) => at <= (ulong)length && size <= (ulong)length - at;

    /// <summary>The first value of <paramref name="tag"/>; null when the directory has none.</summary>
    private static ulong? One(TiffReader reader, Dictionary<ushort, (ulong At, ulong Count, ushort Type)> fields, ushort tag) =>
        fields.TryGetValue(tag, out var field) ? reader.Value(field.At, 0, field.Type) : null;

    /// <summary>How many bytes <paramref name="data"/> inflates to, at most <paramref name="needed"/>; <paramref name="corrupt"/> when zlib stops on an error.</summary>
    private static ulong Inflated(ReadOnlySpan<byte> data, ulong needed, out bool corrupt)
    {
        corrupt = false;
        ulong inflated = 0;
        try
        {
            using var zlib = new ZLibStream(new MemoryStream(data.ToArray(), writable: false), CompressionMode.Decompress);
            Span<byte> sink = stackalloc byte[8192];
            // Stops once the rows are there, as libtiff does: what follows (or a deflate bomb's remainder) is not inflated.
            while (inflated < needed && zlib.Read(sink[..(int)Math.Min((ulong)sink.Length, needed - inflated)]) is var count and > 0) inflated += (ulong)count;
        }
        catch (InvalidDataException)
        {
            corrupt = true;   // .NET words zlib's errors for zip archives ("The archive entry was compressed using an unsupported compression method")
        }
        return inflated;
    }
}
