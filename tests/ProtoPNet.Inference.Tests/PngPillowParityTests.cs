using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using static ProtoPNet.Inference.Tests.TrainerParity;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// PNGs the trainer's decoder (Pillow) reads otherwise than ImageSharp would. Each case is judged by the trainer's own
/// <c>open_image</c> on this machine, and the service must say the same, pixel for pixel.
/// </summary>
public class PngPillowParityTests
{
    /// <summary>
    /// Pillow reads no CRC from a PNG's first IDAT chunk on; ImageSharp refused a file whose image data's CRC was wrong
    /// ("CRC Error. PNG IDAT chunk is corrupt!"), though the trainer reads it.
    /// </summary>
    [Fact]
    public void AWrongCrcFromTheImageDataOnIsReadAsTheTrainerReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-png-crc-");
        var verdicts = Verdicts(Pillow.RunPython(WriteFiles, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        foreach (var name in new[] { "sound.png", "idat-crc.png", "split-idat-crcs.png", "iend-crc.png", "palette-idat-crc.png", "grey16-idat-crc.png" })
        {
            var upload = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            Assert.True(verdicts[name].StartsWith("read", StringComparison.Ordinal), $"the trainer should read {name}: {verdicts[name]}");
            var mended = PngImageData.WithImageDataChecksumsMended(upload);
            Assert.True(name != "sound.png" == !mended.Span.SequenceEqual(upload), $"{name}: mended {!mended.Span.SequenceEqual(upload)}");
            Assert.True(TrainerPixels(verdicts[name]).SequenceEqual(Decoded(decoder, upload)), $"{name}: {Refusal(decoder, upload) ?? "other pixels than the trainer's"}");
        }
        // A wrong CRC before the image data is Pillow's refusal, and is not mended.
        var early = File.ReadAllBytes(Path.Combine(temporary.Path, "text-crc.png"));
        Assert.StartsWith("refused", verdicts["text-crc.png"]);
        Assert.True(PngImageData.WithImageDataChecksumsMended(early).Span.SequenceEqual(early));
        Assert.Equal("The PNG image is corrupt: its tEXt chunk at byte 33 fails its CRC check.", Refusal(decoder, early));
    }

    /// <summary>
    /// A transparency chunk (tRNS) gives a palette image an alpha value per palette entry, up to 256: the transparent
    /// colours are put over white as the trainer puts them, also when it lists more values than the palette has colours;
    /// with more than 256 Pillow cannot read the file ("palette index out of range"), nor does the service, unless they
    /// make one entry transparent and the others opaque (Pillow keeps that entry's index). Pillow reads a tRNS after the
    /// image data too, which ImageSharp passed over (the last one counts): read alike, grey images too; an unsound tRNS before
    /// the image data, or one between two IDAT chunks, is refused by both.
    /// </summary>
    [Fact]
    public void AnImagesTransparencyChunkIsReadAsTheTrainerReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-png-trns-");
        var verdicts = Verdicts(Pillow.RunPython(WriteTransparency, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        string[] refused = ["alphas-257.png", "after-image-data-300.png", "bad-crc-then-after.png", "between-image-data.png", "grey-short-then-sound.png"];
        Assert.All(verdicts.Where(verdict => !refused.Contains(verdict.Key)), verdict => Assert.StartsWith("read", verdict.Value));
        Assert.All(refused, name => Assert.StartsWith("refused", verdicts[name]));
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        Assert.Equal(14, verdicts.Count);
        Assert.Equal("The PNG image is corrupt: its transparency chunk (tRNS) holds 257 alpha values, more than a palette's 256.",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "alphas-257.png"))));
        // Moved before the image data: the file as ImageSharp reads it has the last tRNS alone, there.
        var moved = PngImageData.WithTransparencyBeforeImageData(File.ReadAllBytes(Path.Combine(temporary.Path, "before-and-after.png")));
        Assert.Equal(1, CountOf(moved.Span, "tRNS"u8));
        Assert.True(moved.Span.IndexOf("tRNS"u8) < moved.Span.IndexOf("IDAT"u8));
    }

    private static int CountOf(ReadOnlySpan<byte> file, ReadOnlySpan<byte> word)
    {
        var count = 0;
        for (var rest = file; rest.IndexOf(word) is var at and >= 0; rest = rest[(at + word.Length)..]) count++;
        return count;
    }

    /// <summary>
    /// Random damage (bytes changed, the CRCs left as they were) to the image data of a PNG split into four IDAT chunks:
    /// whatever the trainer reads decodes here to its very pixels, and whatever it refuses is refused.
    /// </summary>
    [Fact]
    public void DamagedImageDataIsReadOrRefusedAsTheTrainerDoes()
    {
        using var temporary = new TemporaryDirectory("protopnet-png-crc-");
        var verdicts = Verdicts(Pillow.RunPython(WriteDamaged, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        var disagreements = Disagreements(decoder, temporary.Path, verdicts);
        Assert.Equal(200, verdicts.Count);
        // Both kinds are among them, so the comparison means something.
        Assert.InRange(verdicts.Count(verdict => verdict.Value.StartsWith("read", StringComparison.Ordinal)), 20, 180);
        Assert.True(disagreements.Count == 0, string.Join('\n', disagreements));
    }

    /// <summary>
    /// A palette PNG whose PLTE comes only after the image data, or that has none: Pillow reads the chunks before the
    /// image data only, so it has no palette and reads each index as the grey of that number; ImageSharp refused it
    /// ("does not contain a palette chunk"). A palette of fewer entries than the indices reach (none, one, all but the
    /// last) Pillow shows the same way past its entries, where ImageSharp read other colours. Each decodes to the
    /// trainer's pixels, at 1, 2, 4 and 8 bits, with a tRNS before or after the image data too, and one whose palette's
    /// CRC fails is refused as the trainer refuses it; a sound one is read with its palette.
    /// </summary>
    [Fact]
    public void APaletteImageWithoutAPaletteBeforeItsImageDataIsReadAsGreysAsTheTrainerReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-png-plte-");
        var verdicts = Verdicts(Pillow.RunPython(WriteLatePalettes, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(32, verdicts.Count);
        string[] badCrcs = ["4-bit-short-3-bad-crc.png", "4-bit-before-header-bad-crc.png"];
        Assert.All(verdicts.Where(verdict => !badCrcs.Contains(verdict.Key)), verdict => Assert.StartsWith("read", verdict.Value));
        Assert.All(badCrcs, name => Assert.StartsWith("refused", verdicts[name]));
        // 20,000 palettes before the header are dropped in one pass (each copied the file once, and the copies lived on).
        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Null(Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "4-bit-many-before-header.png"))));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 64L << 20);
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        // Greys indeed: index 1 of the 1-bit image is (1, 1, 1), not its palette's colour.
        Assert.Equal([0, 0, 0, 1, 1, 1], Decoded(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "1-bit-after.png")))[..6]);
    }

    /// <summary>
    /// An interlace method past 1 in a PNG's header: Pillow reads any method but 0 as Adam7, ImageSharp refused it. An
    /// Adam7 image whose header says 2 or 255 decodes to the trainer's pixels; image data laid out without interlacing
    /// under a header that says 2 is refused, as the trainer refuses it, and so is a header whose CRC fails.
    /// </summary>
    [Fact]
    public void AnyInterlaceMethodButNoneIsReadAsAdam7AsTheTrainerReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-png-interlace-");
        var verdicts = Verdicts(Pillow.RunPython(WriteInterlaceMethods, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(["read", "read", "read", "refused", "refused"], verdicts.OrderBy(v => v.Key).Select(v => v.Value.Split(' ')[0].TrimEnd(':')));
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        // A header whose length is near 2^31 is cut short: left as it is and refused, not read past the file.
        byte[] header = [.. PngChunks.Signature, 0x7F, 0xFF, 0xFF, 0xF0, .. "IHDR"u8, 0, 0, 0, 4, 0, 0, 0, 2, 8, 3, 0, 0, 5, .. new byte[20]];
        Assert.True(PngInterlace.WithAdam7ForAnyMethod(header).Span.SequenceEqual(header));
        Assert.StartsWith("The PNG image is truncated", Refusal(decoder, header));
    }

    private const string WriteInterlaceMethods = Common + """
        def adam7(picture):
            # Each pass's pixels row by row, every row with filter 0.
            width, height = picture.size
            pixels = picture.tobytes()
            data = b""
            for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
                for y in range(y0, height, dy):
                    row = b"".join(pixels[3 * (y * width + x):3 * (y * width + x) + 3] for x in range(x0, width, dx))
                    if row: data += b"\0" + row
            return zlib.compress(data)
        picture = gradient(21, 13)
        plain = chunks(saved(picture))
        def with_header(found, interlace, good_crc=True, data=None):
            header = found[0][1][:12] + bytes([interlace])
            rest = [c for c in found[1:] if c[0] != b"IDAT"]
            idat = [b"IDAT", data, crc(b"IDAT", data)] if data is not None else next(c for c in found if c[0] == b"IDAT")
            return [[b"IHDR", header, crc(b"IHDR", header) if good_crc else b"\0\0\0\0"], idat] + rest
        def write(name, found): open(path(name), "wb").write(png(found))
        interlaced = adam7(picture)
        write("a-adam7-1.png", with_header(plain, 1, data=interlaced))
        write("b-adam7-2.png", with_header(plain, 2, data=interlaced))
        write("c-adam7-255.png", with_header(plain, 255, data=interlaced))
        write("d-plain-rows-2.png", with_header(plain, 2))
        write("e-adam7-2-bad-crc.png", with_header(plain, 2, good_crc=False, data=interlaced))
        verdicts()
        """;

    /// <summary>Python shared by the scripts: a PNG's chunks taken apart and put together, and pictures saved by Pillow.</summary>
    private const string Common = Script + """
        def chunks(data):
            position, found = 8, []
            while position < len(data):
                length = struct.unpack(">I", data[position:position + 4])[0]
                found.append([data[position + 4:position + 8], data[position + 8:position + 8 + length], data[position + 8 + length:position + 12 + length]])
                position += 12 + length
            return found
        def crc(kind, body): return struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        def png(found): return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(body)) + kind + body + stored for kind, body, stored in found)
        def split_image_data(found, parts):
            data = b"".join(body for kind, body, _ in found if kind == b"IDAT")
            size = -(-len(data) // parts)
            pieces = [[b"IDAT", data[at:at + size], crc(b"IDAT", data[at:at + size])] for at in range(0, len(data), size)]
            first = next(i for i, c in enumerate(found) if c[0] == b"IDAT")
            return found[:first] + pieces + [c for c in found[first:] if c[0] != b"IDAT"]
        def saved(picture, **options):
            buffer = io.BytesIO()
            picture.save(buffer, "PNG", **options)
            return buffer.getvalue()
        def gradient(width, height):
            picture = Image.new("RGB", (width, height))
            picture.putdata([(x * 255 // width, y * 255 // height, (x * y) % 256) for y in range(height) for x in range(width)])
            return picture

        """;

    private const string WriteFiles = Common + """
        def write(name, found): open(path(name), "wb").write(png(found))
        def wrong(found, kinds):
            return [[kind, body, b"\0\0\0\0" if kind in kinds else stored] for kind, body, stored in found]
        sound = chunks(saved(gradient(40, 30)))
        write("sound.png", sound)
        write("idat-crc.png", wrong(sound, {b"IDAT"}))
        write("split-idat-crcs.png", wrong(split_image_data(sound, 3), {b"IDAT", b"IEND"}))
        write("iend-crc.png", wrong(sound, {b"IEND"}))
        palette = Image.new("P", (12, 8))
        palette.putpalette(bytes(range(0, 240, 5)))
        palette.putdata([(x + y) % 16 for y in range(8) for x in range(12)])
        write("palette-idat-crc.png", wrong(chunks(saved(palette)), {b"IDAT"}))
        grey16 = Image.new("I;16", (10, 6))
        grey16.putdata([x * 6000 + y * 1000 for y in range(6) for x in range(10)])
        write("grey16-idat-crc.png", wrong(chunks(saved(grey16)), {b"IDAT"}))
        text = PngImagePlugin.PngInfo()
        text.add_text("note", "a chunk before the image data")
        early = chunks(saved(gradient(40, 30), pnginfo=text))
        write("text-crc.png", wrong(early, {b"tEXt"}))
        verdicts()
        """;

    private const string WriteTransparency = Common + """
        palette = Image.new("P", (16, 6))
        palette.putpalette(bytes((i * 37 + c * 91) % 256 for i in range(16) for c in range(3)))
        palette.putdata([(x + 3 * y) % 16 for y in range(6) for x in range(16)])
        sound = chunks(saved(palette))
        first = next(i for i, c in enumerate(sound) if c[0] == b"IDAT")
        def transparency(alphas): return [b"tRNS", alphas, crc(b"tRNS", alphas)]
        def write(name, found): open(path(name), "wb").write(png(found))
        for count in (16, 5, 256, 257):
            write(f"alphas-{count}.png", sound[:first] + [transparency(bytes((i * 53) % 256 for i in range(count)))] + sound[first:])
        # One entry transparent, every other opaque: Pillow keeps its index, however many values there are.
        write("one-transparent-257.png", sound[:first] + [transparency(b"\0" + b"\xff" * 256)] + sound[first:])
        write("one-transparent-late.png", sound[:first] + [transparency(b"\xff" * 2 + b"\0" + b"\xff" * 2000)] + sound[first:])
        # After the image data (before IEND), its CRC wrong as Pillow does not read it there; and one before and one after.
        alphas = bytes((i * 71) % 256 for i in range(16))
        write("after-image-data.png", sound[:-1] + [[b"tRNS", alphas, b"\0\0\0\0"]] + sound[-1:])
        write("after-image-data-300.png", sound[:-1] + [transparency(b"\x80" * 300)] + sound[-1:])
        write("before-and-after.png", sound[:first] + [transparency(b"\x10" * 16)] + sound[first:-1] + [transparency(alphas)] + sound[-1:])
        # Pillow reads every chunk before the image data: an unsound tRNS there is refused, though a later one would count.
        bad = [b"tRNS", b"\x10" * 16, b"\0\0\0\0"]
        write("bad-crc-then-after.png", sound[:first] + [bad] + sound[first:-1] + [transparency(alphas)] + sound[-1:])
        # A tRNS between two IDAT chunks ends Pillow's image data there.
        split = split_image_data(sound, 2)
        second = [i for i, c in enumerate(split) if c[0] == b"IDAT"][1]
        write("between-image-data.png", split[:second] + [transparency(alphas)] + split[second:])
        grey = chunks(saved(gradient(12, 8).convert("L")))
        write("grey-short-then-sound.png", grey[:1] + [transparency(b"\0"), transparency(struct.pack(">H", 60))] + grey[1:])
        write("grey-after-image-data.png", grey[:-1] + [transparency(struct.pack(">H", 0))] + grey[-1:])
        rgb = chunks(saved(gradient(12, 8)))
        write("rgb-after-image-data.png", rgb[:-1] + [transparency(struct.pack(">HHH", 0, 0, 0))] + rgb[-1:])
        verdicts()
        """;

    private const string WriteLatePalettes = Common + """
        def write(name, found): open(path(name), "wb").write(png(found))
        def transparency(alphas): return [b"tRNS", alphas, crc(b"tRNS", alphas)]
        for bits in (1, 2, 4, 8):
            palette = Image.new("P", (13, 5))
            palette.putpalette(bytes((i * 37 + c * 91 + 50) % 256 for i in range(1 << bits) for c in range(3)))
            palette.putdata([(x + 3 * y) % (1 << bits) for y in range(5) for x in range(13)])
            sound = chunks(saved(palette, bits=bits))
            plte = next(c for c in sound if c[0] == b"PLTE")
            without = [c for c in sound if c[0] != b"PLTE"]
            write(f"{bits}-bit-sound.png", sound)
            write(f"{bits}-bit-after.png", without[:-1] + [plte] + without[-1:])
            write(f"{bits}-bit-none.png", without)
            # A palette of fewer entries than the indices reach, or of none: Pillow shows the indices past it as greys.
            for entries in {0, 1, (1 << bits) - 1}:
                short = [b"PLTE", plte[1][:3 * entries], crc(b"PLTE", plte[1][:3 * entries])]
                write(f"{bits}-bit-short-{entries}.png", [short if c[0] == b"PLTE" else c for c in sound])
            if bits == 4:
                # With a tRNS of more values than the short palette has entries, and with a palette whose CRC fails (refused).
                short = [b"PLTE", plte[1][:9], crc(b"PLTE", plte[1][:9])]
                with_alphas = [short if c[0] == b"PLTE" else c for c in sound]
                first = next(i for i, c in enumerate(with_alphas) if c[0] == b"IDAT")
                write("4-bit-short-3-tRNS-8.png", with_alphas[:first] + [transparency(bytes(range(0, 240, 30)))] + with_alphas[first:])
                write("4-bit-short-3-bad-crc.png", [[b"PLTE", plte[1][:9], b"\0\0\0\0"] if c[0] == b"PLTE" else c for c in sound])
                # A palette before the header, which Pillow passes over (greys), and a header of 14 bytes (it reads 13).
                write("4-bit-before-header.png", [plte] + without)
                write("4-bit-before-header-bad-crc.png", [[b"PLTE", plte[1], b"\0\0\0\0"]] + without)
                write("4-bit-many-before-header.png", [[b"PLTE", b"", crc(b"PLTE", b"")]] * 20000 + [plte] + sound)
                long_header = [b"IHDR", sound[0][1] + b"\0", crc(b"IHDR", sound[0][1] + b"\0")]
                write("4-bit-long-header-none.png", [long_header] + without[1:])
        alphas = bytes((i * 71) % 256 for i in range(16))
        write("tRNS-before-PLTE-after.png", without[:1] + [transparency(alphas)] + without[1:-1] + [plte] + without[-1:])
        write("tRNS-and-PLTE-after.png", without[:-1] + [plte, transparency(alphas)] + without[-1:])
        write("one-transparent-PLTE-after.png", without[:1] + [transparency(b"\xff\xff\0")] + without[1:-1] + [plte] + without[-1:])
        verdicts()
        """;

    private const string WriteDamaged = Common + """
        random.seed(7)
        sound = split_image_data(chunks(saved(gradient(64, 48))), 4)
        data_at = [at for at, c in enumerate(sound) if c[0] == b"IDAT"]
        for n in range(200):
            damaged = [list(c) for c in sound]
            for _ in range(random.randint(1, 3)):
                chunk = damaged[random.choice(data_at)]
                body = bytearray(chunk[1])
                at = random.randrange(len(body)) if random.random() < 0.8 else random.randrange(min(len(body), 8))
                body[at] = random.choice([0, 255, body[at] ^ (1 << random.randrange(8)), random.randrange(256)])
                chunk[1] = bytes(body)
            open(path(f"damaged-{n:03}.png"), "wb").write(png(damaged))
        verdicts()
        """;
}
