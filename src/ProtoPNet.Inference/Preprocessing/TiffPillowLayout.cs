namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether Pillow (the trainer's decoder) has a mode for a TIFF's layout. Pillow looks its layout up in a table (byte
/// order, photometric interpretation, sample format, fill order, bits per sample, extra samples) and cannot identify a
/// file whose layout is not there; ImageSharp decoded two such kinds anyway: floating-point samples (SampleFormat 3)
/// other than one 32-bit grey sample, Pillow's only float layout, and extra samples (alpha or unspecified) that the
/// samples per pixel leave no room for beside the photometric interpretation's own (Pillow's table has a layout with
/// extra samples only where they are the samples beyond those); a SampleFormat of several kinds; and FillOrder 2 in a
/// layout Pillow does not read reversed. Measured against Debian's Pillow 9.4.
/// </summary>
internal static class TiffPillowLayout
{
    private const ushort BitsPerSample = 258, Compression = 259, Photometric = 262, FillOrder = 266, SamplesPerPixel = 277, PlanarConfiguration = 284, ExtraSamples = 338,
        SampleFormat = 339;
    private const ulong FloatingPoint = 3, YCbCr = 6;

    /// <summary>What Pillow has no mode for (part of a sentence), or null.</summary>
    public static string? FindUnreadable(ReadOnlySpan<byte> file, TiffDirectory directory)
    {
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = new Dictionary<ushort, IntegerField>();
        var extraSamples = 0UL;
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            // Pillow counts the extra samples whatever their type; the other fields it needs as numbers.
            if (tag == ExtraSamples) extraSamples = directory.CountOf(reader, entry);
            else if (directory.IntegerFieldAt(reader, entry, file.Length) is { } field) fields.TryAdd(tag, field);   // the first, as libtiff reads it
        }
        var samples = fields.FirstValue(reader, SamplesPerPixel) ?? 1;
        // Pillow looks a SampleFormat of several values up whole unless they are all 1, and has no layout for any such.
        if (fields.TryGetValue(SampleFormat, out var several) && several.Count > 1 && !AllUnsigned(reader, several))
        {
            return "its SampleFormat gives several kinds of samples, a layout the trainer's Pillow has no mode for";
        }
        // FillOrder 2 that TiffFillOrder left as it is: a layout Pillow does not read reversed (it has no mode or raw mode for it).
        if (fields.FirstValue(reader, FillOrder) == 2 && (fields.FirstValue(reader, Compression) ?? 1) is 1 or 5 or 8 or 32773 or 32946)
        {
            return "it is stored least significant bit first (FillOrder 2) in a layout the trainer's Pillow does not read so";
        }
        if (fields.TryGetValue(SampleFormat, out var format) && HasFloat(reader, format))
        {
            var photometric = fields.FirstValue(reader, Photometric);
            if (samples != 1 || photometric is not (0 or 1) || fields.FirstValue(reader, BitsPerSample) != 32 || extraSamples != 0)
            {
                return "its SampleFormat says floating-point samples, which the trainer's Pillow reads only as one 32-bit grey sample";
            }
        }
        if (extraSamples > 0 && fields.FirstValue(reader, Photometric) is { } kind)
        {
            var own = kind switch { 2 or 6 or 8 => 3UL, 5 => 4UL, _ => 1UL };   // RGB, YCbCr and Lab have 3, CMYK 4, the rest 1
            if (samples < own || extraSamples != samples - own)
            {
                return $"its {extraSamples} extra samples are not the samples beyond the {own} of its photometric interpretation ({samples} per pixel), a layout the trainer's Pillow has no mode for";
            }
        }
        return null;
    }

    /// <summary>
    /// A layout both read, to other pixels: one sample of 32-bit unsigned integers, which Pillow reads as such and the
    /// trainer clips to 16 bits before scaling them to 8 (all but the darkest levels white), where ImageSharp scales 32
    /// bits; and uncompressed YCbCr, which Pillow reads as RGB and an unused fourth byte a pixel, not converted: it
    /// refuses such a file as truncated (its own writer's too), or reads other colours from one with bytes to spare;
    /// uncompressed planes of 16-bit samples, which Pillow reads byte by byte as 8-bit samples; and one sample of 12 bits,
    /// which Pillow reads as 16-bit levels. Null for any other.
    /// </summary>
    public static string? NotDecodedHere(ReadOnlySpan<byte> file)
    {
        if (TiffDirectory.First(file) is not { } directory) return null;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = directory.FirstIntegerFields(reader, file.Length);
        var uncompressed = (fields.FirstValue(reader, Compression) ?? 1) == 1;
        var samples = fields.FirstValue(reader, SamplesPerPixel) ?? 1;
        var bits = fields.FirstValue(reader, BitsPerSample);
        if (fields.FirstValue(reader, Photometric) == YCbCr && uncompressed)
        {
            return "uncompressed YCbCr samples, which the trainer's Pillow reads as RGB with a fourth byte a pixel (it refuses such a file as truncated)";
        }
        if (fields.FirstValue(reader, PlanarConfiguration) == 2 && samples > 1 && bits == 16 && uncompressed)
        {
            return "uncompressed planes of 16-bit samples, which the trainer's Pillow reads as bytes of 8-bit samples (another picture)";
        }
        if (samples == 1 && bits == 12)
        {
            return "one sample of 12 bits, which the trainer reads as 16-bit levels (its white, 4095, nearly black) where this decoder would scale 12 bits";
        }
        var unsigned = (fields.FirstValue(reader, SampleFormat) ?? 1) == 1;
        return samples == 1 && bits == 32 && unsigned
            ? "one sample of 32-bit integers, which the trainer clips to 16 bits where this decoder would scale all 32"
            : null;
    }

    private static bool AllUnsigned(TiffReader reader, IntegerField format)
    {
        for (ulong i = 0; i < format.Count; i++)
        {
            if (reader.Value(format.At, i, format.Type) != 1) return false;
        }
        return true;
    }

    private static bool HasFloat(TiffReader reader, IntegerField format)
    {
        for (ulong i = 0; i < format.Count; i++)
        {
            if (reader.Value(format.At, i, format.Type) == FloatingPoint) return true;
        }
        return false;
    }

}
