namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the fields that lay out a TIFF's pixels are of types the trainer's decoder reads. Pillow reads the size, the
/// samples and the compression itself (and an uncompressed TIFF's rows per strip), and no number from a BYTE or SLONG8
/// field; and it hands every compressed TIFF to
/// libtiff, which refuses the whole directory when its size, samples, sample format, compression, strips or planar configuration are
/// given as text, fractions, floats, undefined bytes, a sub-directory offset (an IFD), a type TIFF does not define, or
/// no values at all. ImageSharp read many such fields as integers anyway, so the service classified files the trainer
/// cannot open. (Pillow reads an uncompressed TIFF's strips itself, and some of these with it, so those are left to the
/// decoder, but for the rows per strip, which Pillow must read as a number.) Measured against Debian's Pillow 9.4 and libtiff 4.5, type by type.
/// </summary>
internal static class TiffFieldTypes
{
    private const ushort Compression = 259;
    private const ulong Uncompressed = 1;

    /// <summary>The fields libtiff must read for the layout, by name; a wrong type in any of them ends its reading of the directory.</summary>
    private static readonly Dictionary<ushort, string> LayoutFields = new()
    {
        [ImageWidth] = "ImageWidth", [ImageLength] = "ImageLength", [BitsPerSample] = "BitsPerSample", [Compression] = "Compression", [273] = "StripOffsets",
        [SamplesPerPixel] = "SamplesPerPixel", [278] = "RowsPerStrip", [279] = "StripByteCounts", [284] = "PlanarConfiguration", [338] = "ExtraSamples",
        [339] = "SampleFormat",
    };

    /// <summary>The layout fields libtiff refuses when they give no value (an empty Compression, StripByteCounts or ExtraSamples it passes over).</summary>
    private static readonly HashSet<ushort> ValueRequired = [ImageWidth, ImageLength, BitsPerSample, SamplesPerPixel, 278, 284];

    /// <summary>What is unreadable to the trainer's decoder in the directory (part of a sentence), or null.</summary>
    public static string? FindUnreadable(ReadOnlySpan<byte> file, TiffDirectory directory)
    {
        var reader = new TiffReader(file, directory.LittleEndian);
        bool? compressed = null;   // from the first Compression field, as libtiff reads it
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            var type = reader.U16(entry + 2);
            // An image without its width or height Pillow cannot identify, compressed or not.
            if (tag is ImageWidth or ImageLength && directory.CountOf(reader, entry) == 0) return $"its {LayoutFields[tag]} field gives no value";
            // Pillow itself reads these five as numbers, compressed or not: BYTE values it reads as bytes, and SLONG8
            // (or a compression of text, fractions or floats) it does not read at all.
            if (PillowReadsAsNumbers.Contains(tag) && PillowType(tag, type) is { } pillowType) return Refusal(tag, type, pillowType);
            if (tag == Compression && KnownNonInteger(type) is { } name && type != Ifd) return Refusal(Compression, type, name);
            // A compression of SLONG8 Pillow passes over, and reads the strips itself, as uncompressed ones.
            if (tag == Compression && compressed is null) compressed = type != SignedLong8 && (FirstValue(reader, directory, entry) ?? Uncompressed) != Uncompressed;
        }
        if (compressed is not true) return UncompressedRowsPerStrip(reader, directory);
        var (tileWidth, tileLength, rowsPerStrip, height) = (false, (ulong?)null, (ulong?)null, (ulong?)null);
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            tileWidth |= tag == TileWidth;
            if (tag == TileLength && tileLength is null)
            {
                // libtiff reads one value ("Incorrect count" for another).
                if (directory.CountOf(reader, entry) != 1) return "its TileLength field gives several values, not one, which libtiff refuses";
                tileLength = FirstValue(reader, directory, entry) ?? 0;
            }
            if (tag == RowsPerStrip) rowsPerStrip ??= FirstValue(reader, directory, entry);
            if (tag == ImageLength) height ??= FirstValue(reader, directory, entry);
            if (!LayoutFields.TryGetValue(tag, out var field)) continue;
            var type = reader.U16(entry + 2);
            if (NotAnInteger(type, directory.Big) is { } name) return Refusal(tag, type, name);
            if (directory.CountOf(reader, entry) == 0 && ValueRequired.Contains(tag)) return $"its {field} field gives no value";
            // libtiff reads these as SHORT or LONG values whatever their type, and refuses one out of that range (an
            // 8-byte value, or a negative one).
            if (MaxValues.TryGetValue(tag, out var max) && !(tag == Compression && type == SignedLong8) && FirstValue(reader, directory, entry) is { } value && value > max)
            {
                return $"its {field} field's value is out of the range libtiff reads it in (0 to {max})";
            }
        }
        // libtiff lays a compressed image out in tiles once it has a TileWidth, and refuses it without their length.
        if (tileWidth && tileLength is null) return "it has a TileWidth but no TileLength, so libtiff cannot lay out its tiles";
        // With a TileLength alone it reads tiles of the image's width and that many rows, not strips of RowsPerStrip's.
        if (!tileWidth && tileLength is not null && rowsPerStrip is null) return "it has a TileLength but neither a TileWidth nor a RowsPerStrip, which libtiff refuses";
        var stripRows = Math.Min(rowsPerStrip ?? uint.MaxValue, height ?? uint.MaxValue);
        return !tileWidth && tileLength is { } rows && rows != stripRows
            ? $"it has a TileLength of {rows} but no TileWidth, so libtiff reads its data in runs of {rows} rows, not the {stripRows} a strip holds"
            : null;
    }

    /// <summary>
    /// What is unreadable in an uncompressed TIFF's RowsPerStrip, which Pillow reads itself to lay out the strips: no
    /// integer from a BYTE (it reads bytes), text, fractions, floats or undefined bytes, and no strip from a negative
    /// one. (A type it does not know it passes over, reading one strip.)
    /// </summary>
    private static string? UncompressedRowsPerStrip(TiffReader reader, TiffDirectory directory)
    {
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            if (reader.U16(entry) != RowsPerStrip) continue;
            var type = reader.U16(entry + 2);
            if (type == Byte) return Refusal(RowsPerStrip, type, "BYTE, which Pillow reads as bytes");
            if (KnownNonInteger(type) is { } name && type != Ifd) return Refusal(RowsPerStrip, type, name);
            return type is 6 or 8 or 9 && FirstValue(reader, directory, entry) > (ulong)long.MaxValue
                ? "its RowsPerStrip field is negative, so the trainer's Pillow lays out no strip"
                : null;
        }
        return null;
    }

    private const ushort ImageWidth = 256, ImageLength = 257, BitsPerSample = 258, SamplesPerPixel = 277, RowsPerStrip = 278, Ifd = 13;
    private const ushort TileWidth = 322, TileLength = 323;
    private const ushort Byte = 1, SignedLong8 = 17;

    /// <summary>The fields Pillow's own reading of the directory needs as numbers (the size, the samples and the compression).</summary>
    private static readonly HashSet<ushort> PillowReadsAsNumbers = [ImageWidth, ImageLength, BitsPerSample, Compression, SamplesPerPixel];

    /// <summary>The largest value libtiff reads in a layout field: a SHORT's, or for the size and the rows per strip a LONG's.</summary>
    private static readonly Dictionary<ushort, ulong> MaxValues = new()
    {
        [ImageWidth] = uint.MaxValue, [ImageLength] = uint.MaxValue, [RowsPerStrip] = uint.MaxValue,
        [BitsPerSample] = ushort.MaxValue, [Compression] = ushort.MaxValue, [SamplesPerPixel] = ushort.MaxValue, [284] = ushort.MaxValue, [338] = ushort.MaxValue,
        [339] = ushort.MaxValue,
    };

    /// <summary>Why Pillow reads no number from a field of this type (part of a sentence); null when it does. (A compression of SLONG8 it passes over.)</summary>
    private static string? PillowType(ushort tag, ushort type) => (tag, type) switch
    {
        (_, Byte) => "BYTE, which Pillow reads as bytes",
        (not Compression, SignedLong8) => "SLONG8, a type Pillow does not know",
        _ => null,
    };

    /// <summary>
    /// What a type is when no integer is read from it here (part of a sentence); null for BYTE, SHORT, LONG, and in
    /// BigTIFF LONG8 and SLONG8. libtiff also reads the signed types, and the 8-byte ones in a classic TIFF, neither of
    /// which TIFF 6 allows for these fields; ImageSharp reads them otherwise (a BitsPerSample of SSHORT or a Compression
    /// of SBYTE decoded to other pixels, a classic TIFF's LONG8 Compression as uncompressed strips), so those are
    /// refused too, though the trainer reads them.
    /// </summary>
    private static string? NotAnInteger(ushort type, bool big) => type switch
    {
        1 or 3 or 4 => null,
        6 or 8 or 9 => "a signed integer, which TIFF does not allow there, read otherwise by the decoder here than by libtiff",
        16 or 17 => big ? null : "an 8-byte integer, which a classic TIFF does not have, read otherwise by the decoder here than by libtiff",
        _ => KnownNonInteger(type) ?? "no type TIFF defines",
    };

    private static string? KnownNonInteger(ushort type) => type switch
    {
        2 => "ASCII",
        5 => "RATIONAL",
        7 => "UNDEFINED",
        10 => "SRATIONAL",
        11 => "FLOAT",
        12 => "DOUBLE",
        Ifd => "IFD",
        _ => null,
    };

    private static string Refusal(ushort tag, ushort type, string typeName) =>
        $"its {LayoutFields[tag]} field is of type {type} ({typeName})";

    /// <summary>
    /// The first value of a field of any integer type, signed ones too (libtiff reads those; an IFD's offset Pillow reads
    /// as the LONG it is), a negative one wrapped past 2^63 (out of any range); null when it has none, or none that lies
    /// in the file.
    /// </summary>
    private static ulong? FirstValue(TiffReader reader, TiffDirectory directory, int entry)
    {
        var type = reader.U16(entry + 2);
        var size = type switch { 1 or 6 => 1, 3 or 8 => 2, 4 or 9 or Ifd => 4, 16 or 17 => 8, _ => 0 };
        var count = directory.CountOf(reader, entry);
        if (size == 0 || count == 0) return null;
        long at = directory.ValueField(entry);
        // Values that do not fit in the entry lie at the offset it holds instead.
        if (count > (ulong)(directory.ValueSize / size)) at = (long)(directory.Big ? reader.U64(at) : reader.U32(at));
        if (at < 0 || at > reader.Length - size) return null;
        return type switch
        {
            1 => reader.U8(at),
            6 => (ulong)(sbyte)reader.U8(at),
            3 => reader.U16(at),
            8 => (ulong)(short)reader.U16(at),
            4 or Ifd => reader.U32(at),
            9 => (ulong)(int)reader.U32(at),
            _ => reader.U64(at),
        };
    }
}
