namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A palette TIFF's ColorMap as Pillow (the trainer's decoder) reads it, written anew where ImageSharp reads it otherwise:
/// <list type="bullet">
/// <item>Its levels are 16-bit: Pillow keeps their high byte (v &gt;&gt; 8), ImageSharp scales them (about
/// v * 255 / 65535), so a map written as Pillow writes one (v &lt;&lt; 8: 255 is 65280) came out a level lower in its
/// bright colours. Each level is written as (v &gt;&gt; 8) * 257, which both read as v &gt;&gt; 8.</item>
/// <item>TIFF asks for 3 x 2^bits levels, reds, then greens, then blues. Pillow reads a map of any count in three equal
/// parts, and an index past them as a grey (i, i, i); ImageSharp reads its colours 2^bits apart, so a 4-bit image with
/// a map of 96 levels came out in other colours, and it refused an 8-bit image with a map of 48. Such a map is written
/// as the 3 x 2^bits levels Pillow reads: in place when it is longer, else after the file's end.</item>
/// </list>
/// </summary>
public static class TiffColorMap
{
    private const ushort BitsPerSample = 258, Compression = 259, Photometric = 262, ColorMap = 320;
    private const ushort Short = 3, Long = 4, Long8 = 16;
    private const ulong Palette = 3, Uncompressed = 1;

    /// <summary>
    /// Why libtiff, which Pillow hands every compressed TIFF to, refuses a compressed palette image of fewer than 8 bits
    /// for its map (part of a sentence), or null. libtiff passes over a ColorMap of another count than 3 x 2^bits, or of
    /// a type that holds no integers, and then refuses the image for having none ("MissingRequired: Colormap"); of 8
    /// bits it reads the image as grey, and Pillow colours it from its own reading of the map, as it does an uncompressed
    /// one (above). Judged on the file as uploaded, before its map is written anew.
    /// </summary>
    public static string? FindRefusedByLibtiff(ReadOnlySpan<byte> uploaded)
    {
        if (TiffDirectory.First(uploaded) is not { } directory) return null;
        var reader = new TiffReader(uploaded, directory.LittleEndian);
        var fields = directory.FirstIntegerFields(reader, uploaded.Length);
        if (fields.FirstValue(reader, Photometric) != Palette || (fields.FirstValue(reader, Compression) ?? Uncompressed) == Uncompressed) return null;
        var bits = fields.FirstValue(reader, BitsPerSample) ?? 1;
        if (bits >= 8) return null;
        var levels = 3UL << (int)bits;
        for (var e = 0; e < directory.Entries; e++)
        {
            var entry = directory.Entry(e);
            if (reader.U16(entry) != ColorMap) continue;
            var type = reader.U16(entry + 2);
            if (type is not (1 or 3 or 4 or 6 or 8 or 9 or 16 or 17)) return $"its ColorMap is of type {type}, which holds no integers, so libtiff finds no map for its {bits}-bit palette";
            var count = directory.CountOf(reader, entry);
            return count == levels ? null : $"its ColorMap gives {count} levels, not the {levels} of a {bits}-bit palette, so libtiff finds no map for it";
        }
        return $"it has no ColorMap for its {bits}-bit palette";
    }


    /// <summary>The file itself when it is no palette TIFF or its map reads alike; otherwise a copy with the map written so.</summary>
    public static ReadOnlyMemory<byte> WithLevelsReadAlike(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { } directory) return bytes;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = directory.FirstIntegerFields(reader, file.Length);
        if (!fields.TryGetValue(Photometric, out var kind) || reader.Value(kind.At, 0, kind.Type) != Palette) return bytes;
        if (!fields.TryGetValue(ColorMap, out var map) || map.Type is not (Short or Long)) return bytes;
        var bits = fields.TryGetValue(BitsPerSample, out var bitsField) ? reader.Value(bitsField.At, 0, bitsField.Type) : 1;
        // Pillow reads palettes of 1, 2, 4 and 8 bits (others are refused); a map too short for one colour is left to the decoders.
        if (bits is not (1 or 2 or 4 or 8) || map.Count / 3 == 0) return bytes;
        var colours = 1UL << (int)bits;
        return map.Count == 3 * colours ? WithLevelsWrittenAlike(bytes, directory, map) : Reshaped(bytes, directory, map, colours);
    }

    /// <summary>A map of the count TIFF asks for, each level written as (v &gt;&gt; 8) * 257 where it lies.</summary>
    private static ReadOnlyMemory<byte> WithLevelsWrittenAlike(ReadOnlyMemory<byte> bytes, TiffDirectory directory, IntegerField map)
    {
        var file = bytes.Span;
        var reader = new TiffReader(file, directory.LittleEndian);
        if (!InEntry(directory, map) && OverHeaderOrDirectory(directory, map)) return bytes;
        var size = Size(map);
        byte[]? copy = null;
        for (ulong i = 0; i < map.Count; i++)
        {
            var level = reader.Value(map.At, i, map.Type);
            var alike = (level >> 8) * 257;
            if (alike == level) continue;
            copy ??= file.ToArray();
            TiffDirectory.WriteValue(copy.AsSpan((int)(map.At + size * i)), map.Type, alike, directory.LittleEndian);
        }
        return copy ?? bytes;
    }

    /// <summary>A map of another count, written as the 3 x <paramref name="colours"/> levels Pillow reads from it.</summary>
    private static ReadOnlyMemory<byte> Reshaped(ReadOnlyMemory<byte> bytes, TiffDirectory directory, IntegerField map, ulong colours)
    {
        var file = bytes.Span;
        var reader = new TiffReader(file, directory.LittleEndian);
        var third = map.Count / 3;
        var levels = new ulong[3 * colours];
        for (ulong i = 0; i < colours; i++)
        {
            for (ulong channel = 0; channel < 3; channel++)
            {
                levels[channel * colours + i] = (i < third ? reader.Value(map.At, channel * third + i, map.Type) >> 8 : i) * 257;
            }
        }
        if (ColorMapEntry(reader, directory) is not { } entry) return bytes;
        var inPlace = !InEntry(directory, map) && map.Count > (ulong)levels.Length;
        if (inPlace && OverHeaderOrDirectory(directory, map)) return bytes;
        var size = Size(map);
        var at = inPlace ? map.At : ((ulong)file.Length + 1) & ~1UL;   // a new map begins on a word boundary, as writers place them
        var copy = new byte[inPlace ? file.Length : (long)at + levels.Length * (long)size];
        file.CopyTo(copy);
        for (var i = 0; i < levels.Length; i++) TiffDirectory.WriteValue(copy.AsSpan((int)(at + size * (ulong)i)), map.Type, levels[i], directory.LittleEndian);
        var countType = directory.Big ? Long8 : Long;
        TiffDirectory.WriteValue(copy.AsSpan(entry + 4), countType, (ulong)levels.Length, directory.LittleEndian);
        if (!inPlace) TiffDirectory.WriteValue(copy.AsSpan(directory.ValueField(entry)), countType, at, directory.LittleEndian);
        return copy;
    }

    private static ulong Size(IntegerField map) => map.Type == Short ? 2UL : 4UL;

    /// <summary>Whether the map's levels lie in its entry's own value field.</summary>
    private static bool InEntry(TiffDirectory directory, IntegerField map) => map.Count * Size(map) <= (ulong)directory.ValueSize;

    /// <summary>Whether a map that lies apart from its entry lies over the header or the directory (a damaged file): it is not written into.</summary>
    private static bool OverHeaderOrDirectory(TiffDirectory directory, IntegerField map)
    {
        var directoryEnd = (ulong)directory.Entry(directory.Entries) + (ulong)directory.ValueSize;
        return map.At < (directory.Big ? 16UL : 8UL) || map.At < directoryEnd && (ulong)directory.Offset < map.At + map.Count * Size(map);
    }

    /// <summary>Where the first ColorMap entry begins (the one every reader takes).</summary>
    private static int? ColorMapEntry(TiffReader reader, TiffDirectory directory)
    {
        for (var e = 0; e < directory.Entries; e++)
        {
            if (reader.U16(directory.Entry(e)) == ColorMap) return directory.Entry(e);
        }
        return null;
    }
}
