using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using static ProtoPNet.Inference.Tests.TrainerParity;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// Pillow (the trainer's decoder) looks a TIFF's layout up in a table of the modes it has and cannot identify a file
/// whose layout is not there, where ImageSharp decodes grey images of 3 to 15 bits, palettes of 3 to 7, RGB of 2 to 6
/// bits per sample and more; libtiff (Pillow's decoder for compressed TIFFs) refuses a PackBits strip that runs out
/// before its rows and a palette of fewer than 8 bits without a map of 3 x 2^bits levels. Each file here is judged by
/// the trainer's own <c>open_image</c> on this machine: none it refuses may be read here, and each both read decodes to
/// its pixels.
/// </summary>
public class TiffPillowModeTests
{
    /// <summary>
    /// Six Pillow-written images (RGB, RGBA, grey, palette, bilevel, 16-bit grey), uncompressed and in three
    /// compressions, each with every BitsPerSample from 1 to 16, 24 and 32 (but deflate: see the script) and every
    /// PhotometricInterpretation from 0 to 10.
    /// Those the trainer reads and the decoder here refuses are only forms it does not decode (said in docs/API.md:
    /// CIELab, one 12-bit sample).
    /// </summary>
    [Fact]
    public void NoLayoutTheTrainerCannotOpenIsReadAndEveryOtherDecodesToItsPixels()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-modes-");
        var verdicts = Verdicts(Pillow.RunPython(WriteLayouts, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        var disagreements = Disagreements(decoder, temporary.Path, verdicts)
            .Where(line => !line.Contains("the trainer reads it, here The TIFF image is in a form not decoded here: "))
            .ToList();
        Assert.True(verdicts.Count > 500, $"only {verdicts.Count} files");
        // Both kinds are among them in numbers, so the comparison means something.
        Assert.InRange(verdicts.Count(verdict => verdict.Value.StartsWith("read", StringComparison.Ordinal)), 100, 500);
        Assert.True(disagreements.Count == 0, string.Join('\n', disagreements));
        string Refused(string name) => Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, name)))!;
        Assert.Equal("The TIFF image is corrupt: its layout (PhotometricInterpretation 1, SampleFormat 1, FillOrder 1, BitsPerSample 7, ExtraSamples none) is not one the trainer's Pillow has a mode for.",
            Refused("grey-tiff_lzw-bps-7.tif"));
        Assert.Equal("The TIFF image is corrupt: its layout (PhotometricInterpretation 0, SampleFormat 1, FillOrder 1, BitsPerSample 16, ExtraSamples none) is not one the trainer's Pillow has a mode for in a big-endian (MM) file.",
            Refused("big-endian-grey16-whiteiszero.tif"));
        Assert.Equal("The TIFF image is corrupt: its ColorMap gives 768 levels, not the 12 of a 2-bit palette, so libtiff finds no map for it.", Refused("palette-tiff_lzw-bps-2.tif"));
        Assert.StartsWith("The TIFF image is corrupt: its strip 0 of PackBits data gives ", Refused("rgb-packbits-bps-16.tif"));
        Assert.StartsWith("The TIFF image is in a form not decoded here: uncompressed YCbCr samples", Refused("rgb-raw-photometric-6.tif"));
    }

    /// <summary>
    /// The fields of the layout Pillow reads itself (PhotometricInterpretation, FillOrder, ExtraSamples, SampleFormat,
    /// BitsPerSample, SamplesPerPixel) given as every field type, with no values, or their value written whole as a
    /// fraction or an 8-byte integer, or followed by a second field Pillow passes over: none the trainer refuses is read
    /// here (Pillow reads a BYTE field as bytes, a classic TIFF's 8-byte value from the offset the entry holds, a fraction
    /// or float equal to an integer as that integer, and keeps the first of two fields when it passes over the second).
    /// </summary>
    [Fact]
    public void ALayoutFieldPillowReadsAsNoLayoutIsRefused()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-mode-types-");
        var verdicts = Verdicts(Pillow.RunPython(WriteFieldTypes, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        var readHere = Disagreements(decoder, temporary.Path, verdicts).Where(line => !line.Contains("the trainer reads it")).ToList();
        Assert.True(verdicts.Count > 300, $"only {verdicts.Count} files");
        Assert.True(readHere.Count == 0, string.Join('\n', readHere));
        Assert.Equal("The TIFF image is corrupt: its ExtraSamples field is of type 1 (BYTE, which Pillow reads as bytes), so the trainer's Pillow finds no layout for it.",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "rgba-raw-338-type-1.tif"))));
        // A second field Pillow passes over leaves the first one's value: these the trainer reads, and so does the decoder here.
        foreach (var name in new[] { "rgb-then-empty-photometric.tif", "rgb-then-photometric-of-type-14.tif", "rgb-then-empty-samples.tif" })
        {
            Assert.StartsWith("read", verdicts[name]);
            Assert.Null(Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, name))));
        }
        Assert.StartsWith("refused", verdicts["grey-5-bits-then-empty.tif"]);
    }

    /// <summary>
    /// PackBits strips as libtiff reads them: a run of -128 is skipped, a run past the rows is cut at them, and a strip
    /// whose data runs out first (a literal run cut short, a repeat without its byte, too few runs) is refused. The bytes
    /// read are the count a strip counted past its rows is given: a run after the rows is not among them, and a strip
    /// whose rows end inside a run (cut) keeps its count.
    /// </summary>
    [Theory]
    [InlineData(new byte[] { 0x80, 0x03, 1, 2, 3, 4, 0xFD, 9 }, 8, 8, 8, false)]          // a skipped -128, a literal of 4, a repeat of 4
    [InlineData(new byte[] { 0x07, 1, 2, 3, 4, 5, 6, 7, 8, 0xFD, 9 }, 8, 8, 9, false)]    // rows whole before the last run
    [InlineData(new byte[] { 0x03, 1, 2, 3, 4, 0xF9, 9 }, 8, 8, 7, true)]                  // a repeat of 8 cut at the rows
    [InlineData(new byte[] { 0x05, 1, 2, 3, 4, 5, 6, 0xFD, 9 }, 4, 4, 5, true)]            // a literal of 6 cut at the rows
    [InlineData(new byte[] { 0x03, 1, 2, 3, 4, 0xFC, 9, 0x80 }, 9, 9, 7, false)]           // a repeat of 5 that ends the rows
    [InlineData(new byte[] { 0x03, 1, 2, 3, 4, 0xFD }, 8, 4, 6, false)]                    // a repeat without its byte
    [InlineData(new byte[] { 0x03, 1, 2, 3, 4, 0x05, 1, 2 }, 8, 4, 6, false)]              // a literal run cut short: none of it copied
    [InlineData(new byte[] { 0x80, 0x80 }, 8, 0, 2, false)]
    public void APackBitsStripGivesTheBytesLibtiffReadsFromIt(byte[] strip, int needed, int decoded, int consumed, bool runCut) =>
        Assert.Equal(((ulong)decoded, consumed, runCut), TiffPackBits.Read(strip, (ulong)needed));

    /// <summary>
    /// A strip whose rows end inside a run, written anew: the rows libtiff decodes (a skipped -128, the cut run's bytes up
    /// to the rows, nothing after), in literal runs of at most 128 bytes, which read back to the same rows.
    /// </summary>
    [Theory]
    [InlineData(new byte[] { 0x80, 0x03, 1, 2, 3, 4, 0xF9, 9, 0x01, 7, 7 }, 8, new byte[] { 0x07, 1, 2, 3, 4, 9, 9, 9, 9 })]   // a repeat of 8 cut
    [InlineData(new byte[] { 0x05, 1, 2, 3, 4, 5, 6, 0xFD, 9 }, 4, new byte[] { 0x03, 1, 2, 3, 4 })]                          // a literal of 6 cut
    public void AStripCutAtItsRowsHoldsTheRowsLibtiffDecodes(byte[] strip, int needed, byte[] expected)
    {
        var written = TiffPackBits.CutAtItsRows(strip, needed);
        Assert.Equal(expected, written);
        Assert.Equal(((ulong)needed, written.Length, false), TiffPackBits.Read(written, (ulong)needed));
    }

    /// <summary>Rows of more than 128 bytes are written in literal runs of 128, the last shorter: 300 bytes, from a repeat run of 127 and two literal runs of 128, the second cut.</summary>
    [Fact]
    public void AStripCutAtItsRowsIsWrittenInLiteralRunsOf128Bytes()
    {
        var literal = Enumerable.Range(0, 128).Select(i => (byte)i).ToArray();
        var strip = new byte[] { 0x82, 5, 0x7F }.Concat(literal).Concat(new byte[] { 0x7F }).Concat(literal).ToArray();
        var written = TiffPackBits.CutAtItsRows(strip, 300);
        Assert.Equal(300 + 3, written.Length);
        Assert.Equal(new byte[] { 0x7F, 0x7F, 0x2B }, new[] { written[0], written[129], written[258] });
        var rows = Enumerable.Repeat((byte)5, 127).Concat(literal).Concat(literal.Take(45)).ToArray();
        Assert.Equal(rows, written.Where((_, at) => at is not (0 or 129 or 258)).ToArray());
    }

    /// <summary>
    /// Pillow 9.4 reads a BigTIFF only in little-endian order (it cannot identify a big-endian one); the decoder here read
    /// both. The same grey picture as a BigTIFF in each order is judged as the trainer judges it.
    /// </summary>
    [Fact]
    public void ABigEndianBigTiffIsRefusedAsTheTrainerCannotIdentifyIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-bigtiff-order-");
        var verdicts = Verdicts(Pillow.RunPython(Script + """
            pixels = bytes((x * 9 + y * 20) % 256 for y in range(6) for x in range(10))
            for order, name in (("<", "little-endian.tif"), (">", "refused-big-endian.tif")):
                fields = [(256, 3, 10), (257, 3, 6), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 16, 16), (277, 3, 1), (278, 3, 6), (279, 16, len(pixels))]
                entries = b"".join(struct.pack(order + "HHQ", tag, kind, 1) + struct.pack(order + ("H" if kind == 3 else "Q"), value).ljust(8, b"\0") for tag, kind, value in fields)
                header = (b"II" if order == "<" else b"MM") + struct.pack(order + "HHHQ", 43, 8, 0, 16 + len(pixels))
                open(path(name), "wb").write(header + pixels + struct.pack(order + "Q", len(fields)) + entries + bytes(8))
            verdicts()
            """, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(2, verdicts.Count);
        AssertRefusedByName(verdicts);
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        Assert.Equal("The TIFF image is corrupt: it is a big-endian BigTIFF, which the trainer's Pillow cannot identify.",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "refused-big-endian.tif"))));
    }

    /// <summary>
    /// RGB and RGBA TIFFs of 16-bit samples: Pillow reads each sample as its high byte, where ImageSharp rounded it (a
    /// quarter of the levels one higher). Stored together (chunky), in either byte order, uncompressed or deflated, each
    /// decodes to the trainer's pixels; uncompressed planes of them, which Pillow reads byte by byte as 8-bit samples
    /// (another picture), are refused as a form not decoded here.
    /// </summary>
    [Fact]
    public void SixteenBitRgbSamplesAreReadByTheirHighBytesAsPillowReadsThem()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-rgb16-");
        var verdicts = Verdicts(Pillow.RunPython(Script + """
            width, height = 12, 5
            generator = random.Random(3)
            for order, mark in (("<", b"II*\0"), (">", b"MM\0*")):
                for samples in (3, 4):
                    for planar, compression in ((1, 1), (1, 8), (2, 1)):
                        levels = [[generator.randrange(65536) for _ in range(samples)] for _ in range(width * height)]
                        if planar == 1: pixels = b"".join(struct.pack(order + "%dH" % samples, *pixel) for pixel in levels)
                        else: pixels = b"".join(struct.pack(order + "%dH" % (width * height), *[pixel[c] for pixel in levels]) for c in range(samples))
                        strips = [pixels] if planar == 1 else [pixels[c * len(pixels) // samples:(c + 1) * len(pixels) // samples] for c in range(samples)]
                        if compression == 8: strips = [zlib.compress(strip) for strip in strips]
                        data = bytearray(mark + b"\0\0\0\0")
                        offsets = []
                        for strip in strips: offsets.append(len(data)); data += strip
                        def values(kind, numbers):
                            if len(numbers) == 1: return numbers[0]
                            data.extend(struct.pack(order + ("%dH" if kind == 3 else "%dI") % len(numbers), *numbers))
                            return len(data) - (2 if kind == 3 else 4) * len(numbers)
                        fields = [(256, 3, [width]), (257, 3, [height]), (258, 3, [16] * samples), (259, 3, [compression]), (262, 3, [2]), (273, 4, offsets),
                                  (277, 3, [samples]), (278, 3, [height]), (279, 4, [len(strip) for strip in strips]), (284, 3, [planar])] + ([(338, 3, [2])] if samples == 4 else [])
                        entries = [(tag, kind, len(numbers), values(kind, numbers)) for tag, kind, numbers in fields]
                        directory = len(data)
                        data[4:8] = struct.pack(order + "I", directory)
                        data += struct.pack(order + "H", len(entries))
                        for tag, kind, count, value in entries:
                            data += struct.pack(order + "HHI", tag, kind, count) + (struct.pack(order + "HH", value, 0) if kind == 3 and count == 1 else struct.pack(order + "I", value))
                        data += b"\0\0\0\0"
                        name = f"{'refused-' if planar == 2 else ''}{'little' if order == '<' else 'big'}-{samples}-samples-{'planar' if planar == 2 else 'chunky'}-{compression}.tif"
                        open(path(name), "wb").write(bytes(data))
            verdicts()
            """, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(12, verdicts.Count);
        // The trainer reads the planar ones, to another picture: refused here as a form not decoded.
        foreach (var (name, verdict) in verdicts.Where(v => v.Key.StartsWith("refused", StringComparison.Ordinal)))
        {
            Assert.StartsWith("read", verdict);
            Assert.Contains("in a form not decoded here: uncompressed planes of 16-bit samples", Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, name))));
        }
        AssertJudgedAlike(decoder, temporary.Path, verdicts.Where(v => !v.Key.StartsWith("refused", StringComparison.Ordinal)).ToDictionary());
    }

    /// <summary>
    /// A deflate YCbCr TIFF subsampled 2 by 2 decodes to the trainer's pixels whether it says so (YCbCrSubsampling 2, 2)
    /// or leaves it to the default (libtiff's is 2 by 2; ImageSharp read such a file as not subsampled).
    /// </summary>
    [Fact]
    public void ASubsampledYCbCrTiffWithoutItsSubsamplingDecodesAsLibtiffReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-ycbcr-");
        var verdicts = Verdicts(Pillow.RunPython(WriteSubsampledYCbCr, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(2, verdicts.Count(verdict => verdict.Value.StartsWith("read", StringComparison.Ordinal)));
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
    }

    private const string WriteSubsampledYCbCr = Script + """
        picture = Image.new("RGB", (40, 30))
        picture.putdata([(60 + x * 3, 40 + y * 4, 200 - x * 2) for y in range(30) for x in range(40)])
        luma, blue, red = [band.tobytes() for band in picture.convert("YCbCr").split()]
        blocks = bytearray()
        for top in range(0, 30, 2):
            for left in range(0, 40, 2):
                blocks += bytes(luma[(top + dy) * 40 + left + dx] for dy in (0, 1) for dx in (0, 1))
                blocks += bytes([blue[top * 40 + left], red[top * 40 + left]])
        strip = zlib.compress(bytes(blocks))
        for name, subsampling in (("said.tif", True), ("default.tif", False)):
            fields = [(256, 3, 1, 40), (257, 3, 1, 30), (258, 3, 3, 8 + len(strip)), (259, 3, 1, 8), (262, 3, 1, 6), (273, 4, 1, 8),
                      (277, 3, 1, 3), (278, 3, 1, 30), (279, 4, 1, len(strip))] + ([(530, 3, 2, 2 | 2 << 16)] if subsampling else [])
            entries = b"".join(struct.pack("<HHII", tag, kind, count, value) if kind == 4 or count > 1 else struct.pack("<HHIHH", tag, kind, count, value, 0)
                               for tag, kind, count, value in fields)
            values = struct.pack("<3H", 8, 8, 8)
            directory = 8 + len(strip) + len(values)
            open(path(name), "wb").write(b"II*\0" + struct.pack("<I", directory) + strip + values + struct.pack("<H", len(fields)) + entries + b"\0\0\0\0")
        verdicts()
        """;

    private const string WriteLayouts = Script + """
        def with_values(data, tag, values):
            # The field's values (SHORTs, where it holds them) replaced, each by the next of values (the last repeated).
            start = struct.unpack("<I", data[4:8])[0]
            out = bytearray(data)
            for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", data[start:start + 2])[0], 12):
                if struct.unpack("<H", data[entry:entry + 2])[0] != tag: continue
                count = struct.unpack("<I", data[entry + 4:entry + 8])[0]
                at = entry + 8 if count * 2 <= 4 else struct.unpack("<I", data[entry + 8:entry + 12])[0]
                for i in range(count): out[at + 2 * i:at + 2 * i + 2] = struct.pack("<H", values[min(i, len(values) - 1)])
            return bytes(out)
        base = Image.new("RGB", (40, 30))
        base.putdata([(x * 6, y * 8, (x * y) % 256) for y in range(30) for x in range(40)])
        images = {"rgb": base, "rgba": base.convert("RGBA"), "grey": base.convert("L"), "palette": base.convert("P"),
                  "bilevel": base.convert("1"), "grey16": base.convert("L").convert("I").convert("I;16")}
        for name, picture in images.items():
            for compression in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits"):
                stored = io.BytesIO()
                picture.save(stored, "TIFF", compression=compression)
                data = stored.getvalue()
                # Not deflate: a strip that inflates past its rows leaves libtiff's last bytes unset (libdeflate stops short of
                # a run that would overflow them), so the trainer's own pixels there vary from one run to the next.
                for bits in list(range(1, 17)) + [24, 32] if compression != "tiff_adobe_deflate" else []:
                    open(path(f"{name}-{compression}-bps-{bits}.tif"), "wb").write(with_values(data, 258, [bits]))
                for photometric in range(11):
                    # RGB samples read as YCbCr: compressed, they come out of YCbCr's gamut, where libtiff rounds a level otherwise
                    # than the decoder here (docs/API.md); uncompressed, refused.
                    if photometric == 6 and compression != "raw": continue
                    open(path(f"{name}-{compression}-photometric-{photometric}.tif"), "wb").write(with_values(data, 262, [photometric]))
        # 16-bit grey in big-endian order (Pillow has a mode for 16-bit WhiteIsZero only in little-endian files).
        for photometric, kind in ((0, "whiteiszero"), (1, "blackiszero")):
            fields = [(256, 4), (257, 3), (258, 16), (259, 1), (262, photometric), (273, 8), (277, 1), (278, 3), (279, 24)]
            entries = b"".join(struct.pack(">HHIHH", tag, 3, 1, value, 0) for tag, value in fields)
            pixels = b"".join(struct.pack(">H", level) for level in range(0, 60000, 5000))
            open(path(f"big-endian-grey16-{kind}.tif"), "wb").write(b"MM\0*" + struct.pack(">I", 8 + len(pixels)) + pixels + struct.pack(">H", len(fields)) + entries + b"\0\0\0\0")
        verdicts()
        """;

    private const string WriteFieldTypes = Script + """
        base = Image.new("RGB", (40, 30))
        base.putdata([(x * 6, y * 8, (x * y) % 256) for y in range(30) for x in range(40)])
        for name, picture, more in (("rgb", base, {339: (1, 1, 1), 266: 1}), ("rgba", base.convert("RGBA"), {}), ("grey", base.convert("L"), {339: 1, 266: 1}),
                                    ("palette", base.convert("P"), {})):
            for compression in ("raw", "tiff_lzw"):
                stored = io.BytesIO()
                picture.save(stored, "TIFF", compression=compression, tiffinfo=more)
                data = stored.getvalue()
                source = f"{name}-{'raw' if compression == 'raw' else 'lzw'}"
                start = struct.unpack("<I", data[4:8])[0]
                for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", data[start:start + 2])[0], 12):
                    tag = struct.unpack("<H", data[entry:entry + 2])[0]
                    if tag not in (258, 262, 266, 277, 338, 339): continue
                    kind_was, count = struct.unpack("<HI", data[entry + 2:entry + 8])
                    for kind in (0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 65535, "count-0"):
                        changed = bytearray(data)
                        if kind == "count-0": changed[entry + 4:entry + 8] = struct.pack("<I", 0)
                        else: changed[entry + 2:entry + 4] = struct.pack("<H", kind)
                        open(path(f"{source}-{tag}-type-{kind}.tif"), "wb").write(bytes(changed))
                    if count != 1 or kind_was not in (3, 4): continue
                    value = struct.unpack("<H" if kind_was == 3 else "<I", data[entry + 8:entry + (10 if kind_was == 3 else 12)])[0]
                    # The same value written whole after the file's end: as an 8-byte integer, and as the fraction value/1.
                    for kind, whole in ((16, struct.pack("<q", value)), (17, struct.pack("<q", value)), (5, struct.pack("<II", value, 1)), (10, struct.pack("<ii", value, 1))):
                        changed = bytearray(data) + whole
                        changed[entry + 2:entry + 12] = struct.pack("<HII", kind, 1, len(data))
                        open(path(f"{source}-{tag}-whole-{kind}.tif"), "wb").write(bytes(changed))
        def with_second(data, tag, kind, count, value):
            # The directory written anew after the file's end with a second entry of the tag after the first.
            start = struct.unpack("<I", data[4:8])[0]
            entries = [data[start + 2 + 12 * i:start + 14 + 12 * i] for i in range(struct.unpack("<H", data[start:start + 2])[0])]
            at = next(i for i, entry in enumerate(entries) if struct.unpack("<H", entry[:2])[0] == tag)
            entries.insert(at + 1, struct.pack("<HHIHH", tag, kind, count, value, 0))
            directory = len(data) + len(data) % 2
            changed = bytearray(data) + bytes(directory - len(data)) + struct.pack("<H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
            changed[4:8] = struct.pack("<I", directory)
            return bytes(changed)
        # A second field Pillow passes over (no values, or a type it does not know) leaves the first one's value.
        stored = io.BytesIO()
        base.convert("L").save(stored, "TIFF")
        grey5 = bytearray(stored.getvalue())
        start = struct.unpack("<I", grey5[4:8])[0]
        for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", grey5[start:start + 2])[0], 12):
            if struct.unpack("<H", grey5[entry:entry + 2])[0] == 258: grey5[entry + 8:entry + 10] = struct.pack("<H", 5)
        open(path("grey-5-bits-then-empty.tif"), "wb").write(with_second(bytes(grey5), 258, 3, 0, 0))
        stored = io.BytesIO()
        base.save(stored, "TIFF")
        rgb = stored.getvalue()
        open(path("rgb-then-empty-photometric.tif"), "wb").write(with_second(rgb, 262, 3, 0, 0))
        open(path("rgb-then-photometric-of-type-14.tif"), "wb").write(with_second(rgb, 262, 14, 1, 0))
        open(path("rgb-then-empty-samples.tif"), "wb").write(with_second(rgb, 277, 3, 0, 0))
        verdicts()
        """;
}
