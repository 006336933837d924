using System.Buffers.Binary;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A palette PNG (colour type 3) as Pillow (the trainer's decoder) colours it. Pillow reads the chunks before the image
/// data only, and shows an index its palette has no entry for as the grey of that number (index i is red, green and
/// blue i): a PLTE after the image data (or none at all) leaves every index grey, a PLTE of fewer entries than the
/// indices reach leaves those past it grey. ImageSharp refused a file without a palette before its image data ("does
/// not contain a palette chunk") and read indices past a short palette otherwise. The file is given Pillow's palette
/// in full: a PLTE of its entries, then the greys up to 2^bits, before its first IDAT chunk, in place of a short one
/// there (a PLTE after the image data, which Pillow never reads, stays where it is: ImageSharp has decoded the rows by
/// then, and one before the header, which Pillow passes over, is dropped; a palette whose CRC fails, or not of whole
/// entries, is left to the checks).
/// </summary>
public static class PngGreyPalette
{
    private const byte PaletteColourType = 3;

    /// <summary>The file itself when it is no such PNG; otherwise a copy with Pillow's palette before its image data.</summary>
    public static ReadOnlyMemory<byte> WithGreysBeforeImageData(ReadOnlyMemory<byte> bytes)
    {
        var file = bytes.Span;
        if (!PngChunks.IsPng(file)) return bytes;
        var firstImageData = -1;
        var bitDepth = 0;
        var headerSeen = false;
        List<(int Start, int End)>? beforeHeader = null;
        (int Start, int End, int Length)? shortPalette = null;
        foreach (var chunk in new PngChunks(file))
        {
            if (chunk.Is("IHDR"u8) && chunk.Length >= 13)   // Pillow reads a longer header's first 13 bytes
            {
                if (file[chunk.DataStart + 9] != PaletteColourType) return WithoutAny(bytes, beforeHeader);
                bitDepth = file[chunk.DataStart + 8];
                headerSeen = true;
            }
            // A palette before the header Pillow passes over (it does not know the mode yet): the file goes on without
            // those (one whose CRC fails Pillow refuses, as the checks do: the file is left as it is).
            if (chunk.Is("PLTE"u8) && !headerSeen)
            {
                if (!CrcHolds(file, chunk)) return bytes;
                (beforeHeader ??= []).Add((chunk.Start, chunk.End));
                continue;
            }
            if (chunk.Is("PLTE"u8))
            {
                // A palette of all the entries the indices reach, a broken one, or a second one: left as it is.
                var whole = chunk.Length % 3 == 0 && CrcHolds(file, chunk);
                if (shortPalette is not null || !whole || bitDepth is not (1 or 2 or 4 or 8) || chunk.Length / 3 >= 1 << bitDepth) return WithoutAny(bytes, beforeHeader);
                shortPalette = (chunk.Start, chunk.End, chunk.Length);
            }
            if (!chunk.Is("IDAT"u8)) continue;
            firstImageData = chunk.Start;
            break;
        }
        // No header of a palette image, a depth a palette image does not have, or no image data: the decoder says so.
        if (firstImageData < 0 || bitDepth is not (1 or 2 or 4 or 8)) return WithoutAny(bytes, beforeHeader);

        var colours = 1 << bitDepth;
        var entries = shortPalette is { } found ? found.Length / 3 : 0;
        var palette = new byte[12 + 3 * colours];
        BinaryPrimitives.WriteUInt32BigEndian(palette, (uint)(3 * colours));
        "PLTE"u8.CopyTo(palette.AsSpan(4));
        if (shortPalette is { } own) file.Slice(own.Start + 8, own.Length).CopyTo(palette.AsSpan(8));
        for (var i = entries; i < colours; i++) palette.AsSpan(8 + 3 * i, 3).Fill((byte)i);
        BinaryPrimitives.WriteUInt32BigEndian(palette.AsSpan(8 + 3 * colours), PngChecksums.Crc(palette.AsSpan(4, 4 + 3 * colours)));
        // In place of the short palette, or just before the image data; without the palettes before the header.
        var (cutFrom, cutTo) = shortPalette is { } replaced ? (replaced.Start, replaced.End) : (firstImageData, firstImageData);
        var withPalette = new byte[file.Length - (cutTo - cutFrom) + palette.Length];
        file[..cutFrom].CopyTo(withPalette);
        palette.CopyTo(withPalette, cutFrom);
        file[cutTo..].CopyTo(withPalette.AsSpan(cutFrom + palette.Length));
        return WithoutAny(withPalette, beforeHeader);   // they lie before the cut, where they were
    }

    private static bool CrcHolds(ReadOnlySpan<byte> file, PngChunk chunk) =>
        BinaryPrimitives.ReadUInt32BigEndian(file[chunk.CrcAt..]) == PngChecksums.Crc(file.Slice(chunk.Start + 4, 4 + chunk.Length));

    /// <summary>The file without the byte ranges <paramref name="dropped"/> (in order, apart), copied in one pass; itself when there are none.</summary>
    private static ReadOnlyMemory<byte> WithoutAny(ReadOnlyMemory<byte> bytes, List<(int Start, int End)>? dropped)
    {
        if (dropped is null) return bytes;
        var copy = new byte[bytes.Length - dropped.Sum(range => range.End - range.Start)];
        var (from, to) = (0, 0);
        foreach (var (start, end) in dropped)
        {
            bytes.Span[from..start].CopyTo(copy.AsSpan(to));
            to += start - from;
            from = end;
        }
        bytes.Span[from..].CopyTo(copy.AsSpan(to));
        return copy;
    }
}
