namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the fields that lay out a compressed TIFF's pixels are of types libtiff reads. Pillow hands every compressed
/// TIFF to libtiff, which refuses the whole directory when its size, samples, compression, strips or planar
/// configuration are given as text, fractions, floats, undefined bytes, a sub-directory offset (an IFD), a type TIFF
/// does not define, the 8-byte integers outside BigTIFF, or no values at all; ImageSharp read many such fields as
/// integers anyway, so the service classified files the trainer cannot open. (Pillow reads an uncompressed TIFF itself, and some of these with
/// it, so those are left to the decoder.) Measured against Debian's Pillow 9.4 and libtiff 4.5, type by type.
/// </summary>
internal static class TiffFieldTypes
{
    private const ushort Compression = 259;
    private const ulong Uncompressed = 1;

    /// <summary>The fields libtiff must read for the layout, by name; a wrong type in any of them ends its reading of the directory.</summary>
    private static readonly Dictionary<ushort, string> LayoutFields = new()
    {
        [ImageWidth] = "ImageWidth", [ImageLength] = "ImageLength", [258] = "BitsPerSample", [Compression] = "Compression", [273] = "StripOffsets",
        [277] = "SamplesPerPixel", [278] = "RowsPerStrip", [279] = "StripByteCounts", [284] = "PlanarConfiguration", [338] = "ExtraSamples",
    };

    /// <summary>The layout fields libtiff refuses when they give no value (an empty Compression, StripByteCounts or ExtraSamples it passes over).</summary>
    private static readonly HashSet<ushort> ValueRequired = [ImageWidth, ImageLength, 258, 277, 278, 284];

    /// <summary>What is unreadable to libtiff in the directory (part of a sentence), or null.</summary>
    public static string? FindUnreadable(ReadOnlySpan<byte> file, TiffDirectory directory)
    {
        var reader = new TiffReader(file, directory.LittleEndian);
        bool? compressed = null;   // from the first Compression field, as libtiff reads it
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            // An image without its width or height Pillow cannot identify, compressed or not.
            if (tag is ImageWidth or ImageLength && directory.CountOf(reader, entry) == 0) return $"its {LayoutFields[tag]} field gives no value";
            if (tag != Compression || compressed is not null) continue;
            var type = reader.U16(entry + 2);
            // A compression of text, fractions or floats Pillow cannot read either, compressed or not.
            if (KnownNonInteger(type) is { } name && type != Ifd) return Refusal(Compression, type, name);
            compressed = CompressionOf(reader, directory, entry, file.Length) != Uncompressed;
        }
        if (compressed is not true) return null;
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            var tag = reader.U16(entry);
            if (!LayoutFields.TryGetValue(tag, out var field)) continue;
            var type = reader.U16(entry + 2);
            if (NotAnInteger(type, directory.Big) is { } name) return Refusal(tag, type, name);
            if (directory.CountOf(reader, entry) == 0 && ValueRequired.Contains(tag)) return $"its {field} field gives no value";
        }
        return null;
    }

    private const ushort ImageWidth = 256, ImageLength = 257, Ifd = 13;

    /// <summary>What a type is when libtiff reads no integer from it (part of a sentence); null for BYTE, SHORT, LONG, their signed kinds, and LONG8 and SLONG8 in BigTIFF.</summary>
    private static string? NotAnInteger(ushort type, bool big) => type switch
    {
        1 or 3 or 4 or 6 or 8 or 9 => null,
        16 or 17 => big ? null : "an 8-byte integer, which only BigTIFF has",
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
        $"its {LayoutFields[tag]} field is of type {type} ({typeName}), which libtiff, the trainer's TIFF decoder, does not read as a number";

    /// <summary>The first value of a Compression field, an IFD's offset read as the LONG it is (Pillow reads it so); 1, uncompressed, when there is none.</summary>
    private static ulong CompressionOf(TiffReader reader, TiffDirectory directory, int entry, int fileLength)
    {
        if (reader.U16(entry + 2) == Ifd) return directory.CountOf(reader, entry) == 0 ? Uncompressed : reader.U32(directory.ValueField(entry));
        return directory.IntegerFieldAt(reader, entry, fileLength) is { } field ? reader.Value(field.At, 0, field.Type) : Uncompressed;
    }
}
