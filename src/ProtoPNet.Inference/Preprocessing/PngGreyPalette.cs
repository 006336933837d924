using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A palette PNG (colour type 3) without a PLTE chunk before its image data: Pillow (the trainer's decoder) reads the
/// chunks before the image data only, so a PLTE after it (or none at all) leaves the image without a palette, and it
/// reads each index as the grey of that number (index i is red, green and blue i: a 1-bit image is black and nearly
/// black). ImageSharp refused such a file ("does not contain a palette chunk"). It is given that palette: a PLTE of the
/// 2^bits greys 0, 1, 2, ... is put before its first IDAT chunk (a PLTE after the image data, which Pillow never reads,
/// stays where it is: ImageSharp has decoded the rows by then).
/// </summary>
public static class PngGreyPalette
{
    private const byte PaletteColourType = 3;

    /// <summary>The file itself when it is no such PNG; otherwise a copy with the greys' palette before its image data.</summary>
    public static ReadOnlyMemory<byte> WithGreysBeforeImageData(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!PngChunks.IsPng(file)) return bytes;
        var firstImageData = -1;
        var bitDepth = 0;
        foreach (var chunk in new PngChunks(file))
        {
            if (chunk.Is("IHDR"u8) && chunk.Length == 13)
            {
                if (file[chunk.DataStart + 9] != PaletteColourType) return bytes;
                bitDepth = file[chunk.DataStart + 8];
            }
            if (chunk.Is("PLTE"u8)) return bytes;   // a palette before the image data: read as it is
            if (!chunk.Is("IDAT"u8)) continue;
            firstImageData = chunk.Start;
            break;
        }
        // No header of a palette image, a depth a palette image does not have, or no image data: the decoder says so.
        if (firstImageData < 0 || bitDepth is not (1 or 2 or 4 or 8)) return bytes;

        var colours = 1 << bitDepth;
        var palette = new byte[12 + 3 * colours];
        BinaryPrimitives.WriteUInt32BigEndian(palette, (uint)(3 * colours));
        "PLTE"u8.CopyTo(palette.AsSpan(4));
        for (var i = 0; i < colours; i++) palette.AsSpan(8 + 3 * i, 3).Fill((byte)i);
        BinaryPrimitives.WriteUInt32BigEndian(palette.AsSpan(8 + 3 * colours), PngChecksums.Crc(palette.AsSpan(4, 4 + 3 * colours)));
        var copy = new byte[file.Length + palette.Length];
        file[..firstImageData].CopyTo(copy);
        palette.CopyTo(copy, firstImageData);
        file[firstImageData..].CopyTo(copy.AsSpan(firstImageData + palette.Length));
        return copy;
    }
}
