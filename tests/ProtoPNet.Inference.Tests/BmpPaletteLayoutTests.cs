using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using static ProtoPNet.Inference.Tests.TrainerParity;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// Pillow (the trainer's decoder) reads a BMP's palette right after its info header and its pixels from where the file
/// header says, whether or not the two overlap; ImageSharp refused a palette reaching past the pixels' offset. Palette
/// BMPs of 1, 4 and 8 bits (Windows' 40-byte header, OS/2's 12-byte one, 8-bit RLE) with their pixel offset moved
/// into the palette, past it, to 0 and to right after the header, and with their colour count written out, smaller than
/// their indices need (Pillow shows an index past the palette as a grey), or larger than the palette the offset leaves
/// room for: each is refused exactly when the trainer refuses it, and otherwise decodes to its pixels.
/// </summary>
public class BmpPaletteLayoutTests
{
    [Fact]
    public void APaletteBmpIsReadAsThePalettePillowReadsAndThePixelsFromItsOffset()
    {
        using var temporary = new TemporaryDirectory("protopnet-bmp-palette-");
        var verdicts = Verdicts(Pillow.RunPython(WritePaletteBmps, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.True(verdicts.Count > 60, $"only {verdicts.Count} files");
        Assert.True(verdicts.Count(verdict => verdict.Value.StartsWith("read", StringComparison.Ordinal)) > 40);
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        // A file already laid out so passes as it is.
        var plain = File.ReadAllBytes(Path.Combine(temporary.Path, "windows-8-plain.bmp"));
        Assert.True(BmpPaletteLayout.AsPillowReadsIt(plain).Span.SequenceEqual(plain));
        // So does an 8-bit one of black and white, uncounted past them: Pillow reads it as 1 bit a pixel, not as its
        // palette (left to the checks as it is).
        var blackAndWhite = plain.ToArray();
        BitConverter.TryWriteBytes(blackAndWhite.AsSpan(46), 2u);
        blackAndWhite.AsSpan(54, 8).Clear();
        blackAndWhite.AsSpan(58, 3).Fill(255);
        Assert.True(BmpPaletteLayout.AsPillowReadsIt(blackAndWhite).Span.SequenceEqual(blackAndWhite));
    }

    private const string WritePaletteBmps = Script + """
        width, height = 24, 10
        def rows_of(bits):
            # Indices that vary along each row, packed most significant bits first, each row padded to 4 bytes.
            stride = ((width * bits + 31) // 32) * 4
            out = bytearray()
            for y in range(height):
                row, acc, filled = bytearray(), 0, 0
                for x in range(width):
                    acc, filled = (acc << bits) | ((x * 3 + y * 5) % (1 << bits)), filled + bits
                    if filled == 8: row.append(acc); acc, filled = 0, 0
                if filled: row.append(acc << (8 - filled))
                out += row + bytes(stride - len(row))
            return bytes(out)
        def rle8(bits_rows):
            # Each row of 8-bit indices as encoded runs of one pixel, an end of line after each, an end of bitmap last.
            out = bytearray()
            stride = ((width * 8 + 31) // 32) * 4
            for y in range(height):
                for x in range(width): out += bytes([1, bits_rows[y * stride + x]])
                out += b"\0\0"
            return bytes(out + b"\0\1")
        def bmp(bits, os2=False, compression=0, offset=None, colours_used=0, entries=None):
            entries = entries if entries is not None else 1 << bits
            palette = b"".join(bytes([(i * 37) % 256, (i * 91) % 256, (i * 53 + 20) % 256]) + (b"" if os2 else b"\0") for i in range(entries))
            pixels = rows_of(bits) if compression == 0 else rle8(rows_of(8))
            if os2: header = struct.pack("<IHHHH", 12, width, height, 1, bits)
            else: header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(pixels), 2835, 2835, colours_used, 0)
            at = 14 + len(header) + len(palette)
            offset = at if offset is None else offset
            body = header + palette + pixels
            return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, offset) + body
        for kind, bits, os2, compression in (("windows-1", 1, False, 0), ("windows-4", 4, False, 0), ("windows-8", 8, False, 0),
                                             ("os2-4", 4, True, 0), ("os2-8", 8, True, 0), ("rle-8", 8, False, 1)):
            entry = 3 if os2 else 4
            header_end = 14 + (12 if os2 else 40)
            plain = 1 << bits
            at = header_end + plain * entry
            open(path(f"{kind}-plain.bmp"), "wb").write(bmp(bits, os2, compression))
            for name, offset in (("offset-into-palette", at - 2 * entry), ("offset-past-palette", at + 4), ("offset-0", 0),
                                 ("offset-after-header", header_end), ("offset-past-end", at + 100000)):
                # RLE data read from another byte is other RLE data, judged by the RLE rules: only offsets that find its start.
                if compression and name in ("offset-into-palette", "offset-past-palette"): continue
                open(path(f"{kind}-{name}.bmp"), "wb").write(bmp(bits, os2, compression, offset=offset))
            if os2: continue
            # More than 256 colours at fewer than 8 bits are refused by the palette rules (docs/API.md), though Pillow reads them.
            for used in (plain, plain - 1, plain + 3) + ((300,) if bits == 8 else ()):
                open(path(f"{kind}-colours-{used}.bmp"), "wb").write(bmp(bits, os2, compression, colours_used=used))
                open(path(f"{kind}-colours-{used}-listed.bmp"), "wb").write(bmp(bits, os2, compression, colours_used=used, entries=min(used, 300)))
            # More colours counted and listed than 2^bits (an RLE file's 256 once its depth says 1 bit), the pixels where the
            # file header says.
            open(path(f"{kind}-colours-256-at-1-bit.bmp"), "wb").write(bmp(1, os2, 0, colours_used=256, entries=256))
            # A palette of fewer entries than 2^bits, uncounted: ImageSharp sized the entries from the gap before the pixels.
            open(path(f"{kind}-short-palette-uncounted.bmp"), "wb").write(bmp(bits, os2, compression, entries=max(2, plain // 2)))
        verdicts()
        """;
}
