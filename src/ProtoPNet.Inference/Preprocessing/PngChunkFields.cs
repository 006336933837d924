using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether the chunks before a PNG's image data hold values Pillow (the trainer's decoder) can use: a palette of a
/// palette image of at most 256 entries ("invalid palette size"), a transparency chunk of a grey or RGB image long
/// enough for its colour (Pillow reads 2 or 6 bytes from it and cannot open the file otherwise) and of a palette image
/// of at most 256 alpha values ("palette index out of range"; ImageSharp reads those it needs) unless they make one of
/// the first 256 entries transparent and the others opaque (Pillow keeps that entry's index), and an animation frame
/// control (APNG's fcTL) whole, numbered from 0 and within the image ("APNG contains invalid frames"). ImageSharp
/// decodes such files, so a damaged upload was classified while the trainer could not read it. Judged chunk by chunk as
/// <see cref="PngChecksums"/> walks them (one walk for both), with what the header says and the frames seen so far.
/// </summary>
public sealed class PngChunkFields
{
    private const byte Grey = 0, Rgb = 2, Palette = 3;
    private const int MaxPaletteBytes = 256 * 3, FrameControlBytes = 26;

    private readonly uint _width, _height;
    private readonly byte _colourType;
    private uint? _lastSequence;

    /// <summary>The judge of a file's chunks, from its header (IHDR); null when it has none to read.</summary>
    public static PngChunkFields? Of(ReadOnlySpan<byte> file) =>
        file.Length < 33 || !file[12..16].SequenceEqual("IHDR"u8) ? null
            : new PngChunkFields(BinaryPrimitives.ReadUInt32BigEndian(file[16..]), BinaryPrimitives.ReadUInt32BigEndian(file[20..]), file[25]);

    private PngChunkFields(uint width, uint height, byte colourType) => (_width, _height, _colourType) = (width, height, colourType);

    /// <summary>
    /// Whether a palette's alpha values make one entry, among the first 256, fully transparent and every other opaque:
    /// Pillow keeps only that entry's index then, however many values follow.
    /// </summary>
    private static bool IsOneTransparentEntry(ReadOnlySpan<byte> alphas) =>
        alphas.IndexOfAnyExcept((byte)0xFF) is var zero and >= 0 and < MaxPaletteBytes / 3 && alphas[zero] == 0 && !alphas[(zero + 1)..].ContainsAnyExcept((byte)0xFF);

    /// <summary>What Pillow cannot use in this chunk (one sentence), or null.</summary>
    public string? Judge(ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        var length = data.Length;
        // Pillow reads whole entries: one or two bytes past the 256th are not another colour.
        if (type.SequenceEqual("PLTE"u8) && _colourType == Palette && length / 3 > MaxPaletteBytes / 3)
        {
            return $"its palette (PLTE) holds {length / 3} colours, more than 256";
        }
        if (type.SequenceEqual("tRNS"u8) && (_colourType, length) is (Grey, < 2) or (Rgb, < 6))
        {
            return $"its transparency chunk (tRNS) has {length} bytes, fewer than the {(_colourType == Grey ? 2 : 6)} that give a{(_colourType == Grey ? " grey" : "n RGB")} image's transparent colour";
        }
        if (type.SequenceEqual("tRNS"u8) && _colourType == Palette && length > MaxPaletteBytes / 3 && !IsOneTransparentEntry(data))
        {
            return $"its transparency chunk (tRNS) holds {length} alpha values, more than a palette's 256";
        }
        if (!type.SequenceEqual("fcTL"u8)) return null;
        if (length < FrameControlBytes) return $"its animation frame control (fcTL) holds {length} bytes, fewer than its {FrameControlBytes}";
        var sequence = BinaryPrimitives.ReadUInt32BigEndian(data);
        var expected = _lastSequence is { } last ? last + 1 : 0;
        if (sequence != expected) return $"its animation frame control (fcTL) has sequence number {sequence}, not {expected}";
        _lastSequence = sequence;
        var (frameWidth, frameHeight) = (BinaryPrimitives.ReadUInt32BigEndian(data[4..]), BinaryPrimitives.ReadUInt32BigEndian(data[8..]));
        var (x, y) = (BinaryPrimitives.ReadUInt32BigEndian(data[12..]), BinaryPrimitives.ReadUInt32BigEndian(data[16..]));
        return (long)x + frameWidth > _width || (long)y + frameHeight > _height
            ? $"its animation frame (fcTL) of {frameWidth}x{frameHeight} at ({x}, {y}) reaches past the {_width}x{_height} image"
            : null;
    }
}
