namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A palette TIFF's ColorMap holds 16-bit levels: Pillow (the trainer's decoder) keeps their high byte (v &gt;&gt; 8),
/// ImageSharp scales them (about v * 255 / 65535), so a map written as Pillow writes one (v &lt;&lt; 8: 255 is 65280)
/// came out a level lower in its bright colours. Each level is written again in a copy as (v &gt;&gt; 8) * 257, which
/// both read as v &gt;&gt; 8.
/// </summary>
public static class TiffColorMap
{
    private const ushort Photometric = 262, ColorMap = 320;
    private const ushort Short = 3, Long = 4;
    private const ulong Palette = 3;

    /// <summary>The file itself when it is no palette TIFF or its levels read alike; otherwise a copy with them written so.</summary>
    public static ReadOnlyMemory<byte> WithLevelsReadAlike(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (TiffDirectory.First(file) is not { } directory) return bytes;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = directory.FirstIntegerFields(reader, file.Length);
        if (!fields.TryGetValue(Photometric, out var kind) || reader.Value(kind.At, 0, kind.Type) != Palette) return bytes;
        if (!fields.TryGetValue(ColorMap, out var map) || map.Type is not (Short or Long)) return bytes;
        // A map that lies over the header or the directory (a damaged file) is not written into.
        var size = map.Type == Short ? 2UL : 4UL;
        var directoryEnd = (ulong)directory.Entry(directory.Entries) + (ulong)directory.ValueSize;
        var inEntry = map.Count * size <= (ulong)directory.ValueSize;
        if (!inEntry && (map.At < (directory.Big ? 16UL : 8UL) || map.At < directoryEnd && (ulong)directory.Offset < map.At + map.Count * size)) return bytes;
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
}
