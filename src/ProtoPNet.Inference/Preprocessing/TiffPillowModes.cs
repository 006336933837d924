namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether Pillow (the trainer's decoder) has a mode for a TIFF's layout, looked up as Pillow looks it up. Pillow reads
/// the photometric interpretation, sample format, fill order, bits per sample and extra samples itself, compressed or
/// not, and cannot identify a file whose layout its table lacks; ImageSharp decodes many more (a grey image of 3, 7 or
/// 12 bits, a palette of 5, RGB of 4 or 10 bits per sample, ...), so without this the service classified files the
/// trainer cannot open. Judged on the file as uploaded: the defaults and the fill order written in for ImageSharp
/// (<see cref="TiffDefaults"/>, <see cref="TiffFillOrder"/>) follow from Pillow's reading of that file. (The commonest
/// such layouts <see cref="TiffPillowLayout"/> names first, in words; this table is the rest.)
/// Measured against Debian's Pillow 9.4 (its TiffImagePlugin's table, and its reading of each field type).
/// </summary>
internal static class TiffPillowModes
{
    private const ushort BitsPerSample = 258, Compression = 259, Photometric = 262, FillOrder = 266, SamplesPerPixel = 277,
        ExtraSamples = 338, SampleFormat = 339;
    private const long OldJpeg = 6, YCbCr = 6, Rgb = 2;

    /// <summary>Pillow refuses more samples per pixel than its modes have.</summary>
    private const long MaxSamples = 6;

    private static readonly Dictionary<ushort, string> Names = new()
    {
        [BitsPerSample] = "BitsPerSample", [Compression] = "Compression", [Photometric] = "PhotometricInterpretation", [FillOrder] = "FillOrder",
        [SamplesPerPixel] = "SamplesPerPixel", [ExtraSamples] = "ExtraSamples", [SampleFormat] = "SampleFormat",
    };

    /// <summary>
    /// The layouts Pillow has a mode for, in both byte orders: "photometric interpretation, sample format, fill order,
    /// bits per sample, extra samples", each list comma-separated, "-" for no extra samples.
    /// </summary>
    private static readonly HashSet<string> Modes =
    [
        // Grey, 0 white (WhiteIsZero, 0) or 0 black (BlackIsZero, 1), also least significant bit first (fill order 2);
        // 32-bit floats; 16- and 32-bit signed integers; grey with alpha.
        "0 1 1 1 -", "0 1 1 2 -", "0 1 1 4 -", "0 1 1 8 -", "0 1 2 1 -", "0 1 2 2 -", "0 1 2 4 -", "0 1 2 8 -", "0 3 1 32 -",
        "1 1 1 1 -", "1 1 1 2 -", "1 1 1 4 -", "1 1 1 8 -", "1 1 1 16 -", "1 1 1 8,8 2", "1 1 2 1 -", "1 1 2 2 -", "1 1 2 4 -",
        "1 1 2 8 -", "1 2 1 16 -", "1 2 1 32 -", "1 3 1 32 -",
        // RGB of 8 or 16 bits per sample, a fourth sample read as alpha with or without ExtraSamples, and up to three extra.
        "2 1 1 8,8,8 -", "2 1 1 16,16,16 -", "2 1 1 8,8,8,8 -", "2 1 1 16,16,16,16 -", "2 1 1 8,8,8,8 0", "2 1 1 16,16,16,16 0",
        "2 1 1 8,8,8,8,8 0,0", "2 1 1 8,8,8,8,8,8 0,0,0", "2 1 1 8,8,8,8 1", "2 1 1 16,16,16,16 1", "2 1 1 8,8,8,8,8 1,0",
        "2 1 1 8,8,8,8,8,8 1,0,0", "2 1 1 8,8,8,8 2", "2 1 1 16,16,16,16 2", "2 1 1 8,8,8,8,8 2,0", "2 1 1 8,8,8,8,8,8 2,0,0",
        "2 1 1 8,8,8,8 999", "2 1 2 8,8,8 -",
        // Palette, also with alpha; CMYK; YCbCr; CIELab.
        "3 1 1 1 -", "3 1 1 2 -", "3 1 1 4 -", "3 1 1 8 -", "3 1 1 8,8 2", "3 1 2 1 -", "3 1 2 2 -", "3 1 2 4 -", "3 1 2 8 -",
        "5 1 1 8,8,8,8 -", "5 1 1 8,8,8,8,8 0", "5 1 1 8,8,8,8,8,8 0,0", "6 1 1 8,8,8 -", "8 1 1 8,8,8 -",
    ];

    /// <summary>The layouts Pillow has a mode for only in little-endian (II) files.</summary>
    private static readonly HashSet<string> LittleEndianModes = ["0 1 1 16 -", "1 1 1 12 -", "1 1 1 32 -", "1 1 2 16 -", "5 1 1 16,16,16,16 -"];

    /// <summary>What Pillow finds no mode for in the uploaded file (part of a sentence), or null; null too for a file that is no TIFF.</summary>
    public static string? FindNoMode(ReadOnlySpan<byte> file)
    {
        if (TiffDirectory.First(file) is not { } directory) return null;
        if (directory.Big && !directory.LittleEndian) return "it is a big-endian BigTIFF, which the trainer's Pillow cannot identify";
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = new Dictionary<ushort, long[]>();
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            if (!Names.TryGetValue(tag, out var name)) continue;
            // A field without values, or of a type Pillow does not know, it passes over: an earlier one of the tag, or
            // else its default, holds. (At values past the file's end it stops reading the directory: the completeness
            // check refuses such a file.) Of a repeated field it keeps the last.
            if (Locate(reader, directory, entry) is not { } located) continue;
            if (NotANumber(located.Type) is { } what) return $"its {name} field is of type {located.Type} ({what}), so the trainer's Pillow finds no layout for it";
            // Signed integers and an IFD's offset Pillow reads as numbers, ImageSharp otherwise (a signed palette's
            // PhotometricInterpretation came out grey): TIFF allows neither there.
            if (located.Type is 6 or 8 or 9 or 13 && tag is Photometric or FillOrder or ExtraSamples or SampleFormat)
            {
                return $"its {name} field is of type {located.Type} (a signed integer or an IFD, which TIFF does not allow there, read otherwise by the decoder here than by Pillow)";
            }
            fields[tag] = Integers(reader, located);
        }
        long? First(ushort tag) => fields.TryGetValue(tag, out var values) && values.Length > 0 ? values[0] : null;
        var compression = First(Compression) ?? 1;
        var photometric = compression == OldJpeg ? YCbCr : First(Photometric) ?? 0;   // an old-style JPEG is YCbCr to Pillow
        var samples = First(SamplesPerPixel) ?? (compression == OldJpeg && photometric is Rgb or YCbCr ? 3 : 1);
        if (samples > MaxSamples) return null;   // refused as such by TiffStripData
        var bits = fields.GetValueOrDefault(BitsPerSample, [1]);
        // More values than samples Pillow drops; one value it repeats for every sample.
        if (samples >= 0 && samples < bits.Length) bits = bits[..(int)samples];
        else if (samples > bits.Length && bits.Length == 1) bits = Enumerable.Repeat(bits[0], (int)samples).ToArray();
        if (bits.Length != samples) return $"its BitsPerSample gives {bits.Length} values for {samples} samples per pixel, which the trainer's Pillow cannot lay out";
        var format = fields.GetValueOrDefault(SampleFormat, [1]);
        if (format.Length > 1 && format.All(kind => kind == 1)) format = [1];   // per sample, as Pillow's table gives it once
        var fillOrder = First(FillOrder) ?? 1;
        var extra = fields.GetValueOrDefault(ExtraSamples, []);
        var layout = $"{photometric} {string.Join(',', format)} {fillOrder} {string.Join(',', bits)} {(extra.Length == 0 ? "-" : string.Join(',', extra))}";
        if (Modes.Contains(layout) || directory.LittleEndian && LittleEndianModes.Contains(layout)) return null;
        return $"its layout (PhotometricInterpretation {photometric}, SampleFormat {string.Join(',', format)}, FillOrder {fillOrder}, " +
            $"BitsPerSample {string.Join(',', bits)}, ExtraSamples {(extra.Length == 0 ? "none" : string.Join(',', extra))}) " +
            $"is not one the trainer's Pillow has a mode for{(LittleEndianModes.Contains(layout) ? " in a big-endian (MM) file" : "")}";
    }

    /// <summary>What a type is when Pillow reads no number from it (part of a sentence); null for a number type, or one it does not know.</summary>
    private static string? NotANumber(ushort type) => type switch
    {
        1 => "BYTE, which Pillow reads as bytes",
        2 => "ASCII, which Pillow reads as text",
        7 => "UNDEFINED, which Pillow reads as bytes",
        _ => null,
    };

    /// <summary>Values beyond these no layout has (six samples); more are read only to be counted.</summary>
    private const int MaxValuesRead = 16;

    /// <summary>Where Pillow reads the values of a field; null when it passes over the field (no values, a type it does not know, or values past the file's end).</summary>
    private static PillowField? Locate(TiffReader reader, TiffDirectory directory, int entry)
    {
        var type = reader.U16(entry + 2);
        var size = type switch { 1 or 2 or 6 or 7 => 1UL, 3 or 8 => 2UL, 4 or 9 or 11 or 13 => 4UL, 5 or 10 or 12 or 16 => 8UL, _ => 0UL };
        var count = directory.CountOf(reader, entry);
        if (size == 0 || count == 0 || count > (ulong)reader.Length / size) return null;
        // Values that do not fit in the entry lie at the offset it holds (in a classic TIFF, any 8-byte value).
        var at = (ulong)directory.ValueField(entry);
        if (count * size > (ulong)directory.ValueSize) at = directory.Big ? reader.U64((long)at) : reader.U32((long)at);
        return TiffDirectory.Within(at, count * size, reader.Length) ? new PillowField(type, size, count, at) : null;
    }

    /// <summary>
    /// The numbers of a field as Pillow reads them (signed types and an IFD's offset too), as integers. A long
    /// list is read to <see cref="MaxValuesRead"/> values and one more 0, which no layout has, unless every value is 1
    /// (a SampleFormat given per sample).
    /// </summary>
    private static long[] Integers(TiffReader reader, PillowField field)
    {
        var read = (int)Math.Min(field.Count, MaxValuesRead);
        var values = new long[field.Count > MaxValuesRead ? MaxValuesRead + 1 : read];
        for (var i = 0; i < read; i++) values[i] = Value(reader, field, (ulong)i);
        if (field.Count <= MaxValuesRead) return values;
        var allOnes = true;
        for (ulong i = 0; i < field.Count && allOnes; i++) allOnes = Value(reader, field, i) == 1;
        values[MaxValuesRead] = allOnes ? 1 : 0;
        return allOnes ? Enumerable.Repeat(1L, MaxValuesRead + 1).ToArray() : values;
    }

    /// <summary>
    /// Value <paramref name="index"/> of a field of numbers. Pillow finds a fraction or a floating-point number equal to
    /// an integer in its table as that integer; any other is <see cref="NoInteger"/>.
    /// </summary>
    private static long Value(TiffReader reader, PillowField field, ulong index)
    {
        var at = (long)(field.At + index * field.Size);
        return field.Type switch
        {
            6 => (sbyte)reader.U8(at),
            3 => reader.U16(at),
            8 => (short)reader.U16(at),
            4 or 13 => reader.U32(at),
            9 => (int)reader.U32(at),
            5 => Whole(reader.U32(at), reader.U32(at + 4)),
            10 => Whole((int)reader.U32(at), (int)reader.U32(at + 4)),
            11 => Whole(BitConverter.Int32BitsToSingle((int)reader.U32(at))),
            12 => Whole(BitConverter.Int64BitsToDouble((long)reader.U64(at))),
            _ => (long)reader.U64(at),
        };
    }

    /// <summary>A value that is no integer: no layout has it.</summary>
    private const long NoInteger = long.MinValue;

    private static long Whole(long numerator, long denominator) => denominator != 0 && numerator % denominator == 0 ? numerator / denominator : NoInteger;

    private static long Whole(double value) => double.IsFinite(value) && Math.Floor(value) == value && Math.Abs(value) < 1e15 ? (long)value : NoInteger;

    /// <summary>A field's values as Pillow finds them: their type, the size of each, how many, and where they begin.</summary>
    private readonly record struct PillowField(ushort Type, ulong Size, ulong Count, ulong At);
}
