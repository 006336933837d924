using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the chunks before a PNG's image data hold values Pillow (the trainer's decoder) can use: a palette of a
/// palette image of at most 256 entries ("invalid palette size"), a transparency chunk of a grey or RGB image long
/// enough for its colour (Pillow reads 2 or 6 bytes from it and cannot open the file otherwise), and an animation frame
/// control (APNG's fcTL) whole, numbered from 0 and within the image ("APNG contains invalid frames"). ImageSharp decodes such files, so a damaged upload
/// was classified while the trainer could not read it. Chunks that are cut short are the completeness check's.
/// </summary>
public static class PngChunkFields
{
    private const byte Grey = 0, Rgb = 2, Palette = 3;
    private const int MaxPaletteBytes = 256 * 3, FrameControlBytes = 26;

    /// <summary>What Pillow cannot use in a chunk before the image data (one sentence), or null.</summary>
    public static string? FindCorruption(ReadOnlySpan<byte> file)
    {
        if (file.Length < 33 || !file[12..16].SequenceEqual("IHDR"u8)) return null;
        var (width, height) = (BinaryPrimitives.ReadUInt32BigEndian(file[16..]), BinaryPrimitives.ReadUInt32BigEndian(file[20..]));
        var colourType = file[25];
        uint? lastSequence = null;
        for (long position = 8; position + 12 <= file.Length;)
        {
            var length = BinaryPrimitives.ReadUInt32BigEndian(file[(int)position..]);
            var type = file.Slice((int)position + 4, 4);
            if (type.SequenceEqual("IDAT"u8) || type.SequenceEqual("IEND"u8) || position + 12 + length > file.Length) return null;
            var data = file.Slice((int)position + 8, (int)length);
            // Pillow reads whole entries: one or two bytes past the 256th are not another colour.
            if (type.SequenceEqual("PLTE"u8) && colourType == Palette && length / 3 > MaxPaletteBytes / 3)
            {
                return $"its palette (PLTE) holds {length / 3} colours, more than 256";
            }
            if (type.SequenceEqual("tRNS"u8) && (colourType, length) is (Grey, < 2) or (Rgb, < 6))
            {
                return $"its transparency chunk (tRNS) has {length} bytes, fewer than the {(colourType == Grey ? 2 : 6)} that give a{(colourType == Grey ? " grey" : "n RGB")} image's transparent colour";
            }
            if (type.SequenceEqual("fcTL"u8))
            {
                if (length < FrameControlBytes) return $"its animation frame control (fcTL) holds {length} bytes, fewer than its {FrameControlBytes}";
                var sequence = BinaryPrimitives.ReadUInt32BigEndian(data);
                if (sequence != (lastSequence is { } last ? last + 1 : 0))
                {
                    return $"its animation frame control (fcTL) has sequence number {sequence}, not {(lastSequence is { } previous ? previous + 1 : 0)}";
                }
                lastSequence = sequence;
                var (frameWidth, frameHeight) = (BinaryPrimitives.ReadUInt32BigEndian(data[4..]), BinaryPrimitives.ReadUInt32BigEndian(data[8..]));
                var (x, y) = (BinaryPrimitives.ReadUInt32BigEndian(data[12..]), BinaryPrimitives.ReadUInt32BigEndian(data[16..]));
                if ((long)x + frameWidth > width || (long)y + frameHeight > height)
                {
                    return $"its animation frame (fcTL) of {frameWidth}x{frameHeight} at ({x}, {y}) reaches past the {width}x{height} image";
                }
            }
            position += 12 + length;
        }
        return null;
    }
}
