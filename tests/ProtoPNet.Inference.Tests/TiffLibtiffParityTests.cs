using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using static ProtoPNet.Inference.Tests.TrainerParity;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// Compressed TIFFs are decoded for the trainer by libtiff (under Pillow), which refuses LZW strips and layout fields
/// that ImageSharp decoded anyway: such files were classified though the trainer cannot open them; uncompressed ones by
/// Pillow itself. Each case here is judged by the trainer's own <c>open_image</c> on this machine, and the service must
/// say the same.
/// </summary>
public class TiffLibtiffParityTests
{
    [Fact]
    public void AnLzwStripLibtiffRefusesIsRefusedAndOneItReadsIsNot()
    {
        using var temporary = new TemporaryDirectory("protopnet-lzw-");
        var verdicts = Verdicts(Pillow.RunPython(WriteLzwFiles, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        (string Name, string? Reason)[] expected =
        [
            ("pillow-lzw.tif", null),
            ("pillow-lzw-predictor.tif", null),
            ("pillow-lzw-strips.tif", null),
            ("no-end-code.tif", null),          // the rows are there before the codes run out: libtiff stops at them
            ("codes-after-rows.tif", null),     // what follows the rows is not decoded
            ("clear-midway.tif", null),         // the rows end in the middle of a string: libtiff stops there, ImageSharp threw
            ("clear-twice.tif", null),          // two clear codes in a row: libtiff passes over the second, ImageSharp refused it
            ("string-past-rows.tif", null),
            ("table-past-4096.tif", null),      // libtiff's table holds 5,119 entries, ImageSharp's 4,096
            ("last-strip-no-end-code.tif", null), // ImageSharp read on past a short last strip without an end code
            ("fill-order-2.tif", null),         // bits stored least significant first: libtiff reverses them, so does TiffFillOrder
            ("fill-order-2-into-directory.tif", null),
            ("fill-order-2-raw.tif", null),
            ("fill-order-2-raw-bilevel.tif", null),
            ("fill-order-2-packbits.tif", null),
            ("fill-order-2-planar.tif", null),
            ("no-clear-first.tif", "its strip 0 of LZW data does not begin with a clear code (its first code is "),
            ("early-end-code.tif", "its strip 0 of LZW data ends (an end code) "),
            ("unknown-code.tif", "its strip 0 of LZW data uses code 500, which its table does not hold yet"),
            ("clear-then-table-code.tif", "its strip 0 of LZW data follows a clear code with code 258, which its table does not hold yet"),
            ("runs-out.tif", "its strip 0 of LZW data runs out of codes after its "),
            ("second-strip-cut.tif", "its strip 1 of LZW data runs out of codes after its 20 bytes, "),
            ("fill-order-2-cut.tif", "its strip 0 of LZW data runs out of codes after its "),
            ("fill-order-2-rgba.tif", null),   // refused by both (asserted above): not reversed, as Pillow does not open it
        ];
        foreach (var (name, reason) in expected)
        {
            var upload = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            // As the decoder reads it (strips stored least significant bit first, reversed first: fill-order-2*.tif).
            var file = TiffFillOrder.WithMostSignificantBitFirst(upload).ToArray();
            if (name == "fill-order-2-rgba.tif")
            {
                Assert.True(file.AsSpan().SequenceEqual(upload), "a layout Pillow does not open with FillOrder 2 is reversed");
                Assert.StartsWith("refused", verdicts[name]);
                Assert.NotNull(Refusal(decoder, upload));
                continue;
            }
            Assert.Equal(name.StartsWith("fill-order-2", StringComparison.Ordinal), !file.AsSpan().SequenceEqual(upload));
            if (reason is null)
            {
                Assert.True(verdicts[name].StartsWith("read", StringComparison.Ordinal), $"the trainer should read {name}: {verdicts[name]}");
                Assert.Null(TiffStripData.FindCorruption(file));
                // Strips libtiff and ImageSharp read alike pass as they are; the others are written anew.
                var irregular = new TiffStripRewrites();
                Assert.Null(TiffStripData.FindCorruption(file, withLibDeflate: true, irregular));
                var rewritten = TiffStripsWrittenAnew.WithStripsWrittenAnew(file, irregular).Length != file.Length;
                Assert.True(rewritten == name is "clear-midway.tif" or "clear-twice.tif" or "string-past-rows.tif" or "codes-after-rows.tif"
                    or "no-end-code.tif" or "table-past-4096.tif" or "last-strip-no-end-code.tif", $"{name} rewritten: {rewritten}");
                Assert.True(TrainerPixels(verdicts[name]).SequenceEqual(Decoded(decoder, upload)), $"{name}: {Refusal(decoder, upload) ?? "other pixels than the trainer's"}");
                continue;
            }
            Assert.True(verdicts[name].StartsWith("refused", StringComparison.Ordinal), $"the trainer should refuse {name}, and reads it");
            Assert.StartsWith(reason, TiffStripData.FindCorruption(file));
            var refusal = Assert.Throws<ImageRejectedException>(() => decoder.Decode(upload).Dispose());
            Assert.StartsWith($"The TIFF image is corrupt: {reason}", refusal.Message);
        }
    }

    /// <summary>
    /// Random damage (bit flips, cuts, bytes set) to one strip of a grey LZW TIFF of six strips: the LZW check refuses a
    /// file exactly when libtiff does. (ImageSharp itself refuses a few that libtiff reads: those whose last string runs
    /// past the rows, which libtiff cuts short.)
    /// </summary>
    [Fact]
    public void TheLzwCheckRefusesExactlyTheDamagedStripsLibtiffRefuses()
    {
        using var temporary = new TemporaryDirectory("protopnet-lzw-");
        var verdicts = Verdicts(Pillow.RunPython(WriteRandomDamage, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        var disagreements = new List<string>();
        foreach (var (name, verdict) in verdicts)
        {
            var file = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            var trainerReads = verdict.StartsWith("read", StringComparison.Ordinal);
            if (trainerReads != (TiffStripData.FindCorruption(file) is null)) disagreements.Add($"{name}: the trainer {verdict[..Math.Min(verdict.Length, 80)]}");
            else if (trainerReads && Decoded(decoder, file) is var pixels && !pixels.SequenceEqual(TrainerPixels(verdict))) disagreements.Add($"{name}: other pixels than the trainer's");
        }
        Assert.Equal(300, verdicts.Count);
        // Both kinds are among them, so the comparison means something.
        Assert.InRange(verdicts.Count(verdict => verdict.Value.StartsWith("read", StringComparison.Ordinal)), 30, 270);
        Assert.True(disagreements.Count == 0, string.Join('\n', disagreements));
    }

    /// <summary>
    /// Every layout field of a compressed (LZW) TIFF given as each type libtiff does not read as a number, or with no
    /// value, is refused exactly when the trainer refuses it (but for the signed and, in a classic TIFF, 8-byte types,
    /// which TIFF does not allow there and the decoder here reads otherwise: refused though the trainer reads them); in
    /// an uncompressed TIFF, which Pillow reads itself, this check refuses only what the trainer refuses too. Every file
    /// both read decodes to the trainer's pixels.
    /// </summary>
    [Fact]
    public void ALayoutFieldOfATypeLibtiffCannotReadIsRefusedAsTheTrainerRefusesIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-types-");
        var verdicts = Verdicts(Pillow.RunPython(WriteFieldTypes, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        var wrong = new List<string>();
        foreach (var (name, verdict) in verdicts)
        {
            var file = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            var trainerReads = verdict.StartsWith("read", StringComparison.Ordinal);
            var judged = TiffFieldTypes.FindUnreadable(file, TiffDirectory.First(file)!.Value);
            // Refused though the trainer reads them: types TIFF does not allow there, which the decoder here reads otherwise.
            var readOtherwise = name.StartsWith("lzw", StringComparison.Ordinal) && (name.Contains("-whole-") || name.EndsWith("-type-6.tif") || name.EndsWith("-type-8.tif") || name.EndsWith("-type-9.tif"));
            if (readOtherwise && trainerReads && judged is not null && !(judged.Contains("an 8-byte integer, which a classic TIFF does not have") || judged.Contains("a signed integer"))) wrong.Add($"{name}: refused for another reason ({judged})");
            if (judged is not null && trainerReads && !readOtherwise) wrong.Add($"{name}: refused ({judged}), the trainer reads it");
            if (!trainerReads && Refusal(decoder, file) is null) wrong.Add($"{name}: decoded, the trainer refuses it");
            if (trainerReads && Decoded(decoder, file) is { Length: > 0 } pixels && !pixels.SequenceEqual(TrainerPixels(verdict))) wrong.Add($"{name}: other pixels than the trainer's");
        }
        Assert.True(verdicts.Count > 150, $"only {verdicts.Count} files");
        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
        var rowsAsText = File.ReadAllBytes(Path.Combine(temporary.Path, "lzw-278-type-2.tif"));
        Assert.Equal("The TIFF image is corrupt: its RowsPerStrip field is of type 2 (ASCII).", Refusal(decoder, rowsAsText));
        // Both kinds of a layout field read otherwise here are among them, and refused.
        Assert.StartsWith("The TIFF image is corrupt: its RowsPerStrip field is of type 16 (an 8-byte integer, which a classic TIFF does not have",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "lzw-278-whole-16.tif"))));
        Assert.Equal("The TIFF image is corrupt: its RowsPerStrip field is of type 1 (BYTE, which Pillow reads as bytes).",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "raw-278-type-1.tif"))));
        Assert.Equal("The TIFF image is corrupt: its RowsPerStrip field is negative, so the trainer's Pillow lays out no strip.",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "raw-278-negative.tif"))));
        Assert.StartsWith("The TIFF image is corrupt: its BitsPerSample field is of type 8 (a signed integer",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "lzw-258-type-8.tif"))));
    }

    /// <summary>
    /// Layouts Pillow has no mode for, which ImageSharp decoded: floating-point samples other than one 32-bit grey
    /// sample, extra samples beyond the samples per pixel, and (compressed) a TileWidth without a TileLength, or a TileLength
    /// alone other than a strip's rows. Every
    /// variant of seven Pillow-written images (RGB, grey, RGBA, bilevel, 16-bit, float, palette; raw and LZW) with a
    /// SampleFormat, ExtraSamples or TileWidth added is refused when the trainer refuses it, and otherwise decodes to the
    /// trainer's pixels or is refused as a form not decoded here (signed samples, RGBX: said in docs/API.md).
    /// </summary>
    [Fact]
    public void ALayoutPillowHasNoModeForIsRefused()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-layouts-");
        var verdicts = Verdicts(Pillow.RunPython(WriteLayouts, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        var wrong = new List<string>();
        foreach (var (name, verdict) in verdicts)
        {
            var file = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            var refusal = Refusal(decoder, file);
            if (!verdict.StartsWith("read", StringComparison.Ordinal))
            {
                if (refusal is null) wrong.Add($"{name}: decoded, the trainer refuses it");
            }
            else if (refusal is null ? !Decoded(decoder, file).SequenceEqual(TrainerPixels(verdict)) : !refusal.Contains("in a form not decoded here"))
            {
                wrong.Add($"{name}: {refusal ?? "other pixels than the trainer's"}");
            }
        }
        Assert.True(verdicts.Count > 100, $"only {verdicts.Count} files");
        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
        Assert.Equal("The TIFF image is corrupt: its SampleFormat says floating-point samples, which the trainer's Pillow reads only as one 32-bit grey sample.",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "rgb-raw-sampleformat-3.tif"))));
        Assert.Equal("The TIFF image is corrupt: it has a TileLength of 64 but no TileWidth, so libtiff reads its data in runs of 64 rows, not the 16 a strip holds.",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "rgba-lzw-tilelength-64.tif"))));
    }

    /// <summary>
    /// A strip written anew is read by libtiff (the trainer's Pillow) to the very bytes it was written from, and by the
    /// decoder here: rows long enough to fill the code table many times over (codes of 9 to 12 bits, clear codes when
    /// it is full), of noise and of runs.
    /// </summary>
    [Fact]
    public void AStripWrittenAnewIsReadBackToTheSameBytesByLibtiffAndHere()
    {
        using var temporary = new TemporaryDirectory("protopnet-lzw-");
        var random = new Random(3);
        var rows = new byte[512 * 300];
        for (var at = 0; at < rows.Length; at++) rows[at] = at < rows.Length / 2 ? (byte)random.Next(256) : (byte)(at / 700 % 5 * 50);
        var strip = TiffLzwStrip.Encode(rows);
        Assert.Equal(new TiffLzwStrip.Verdict(null, false), TiffLzwStrip.Judge(strip, (ulong)rows.Length));
        Assert.Equal(rows, TiffLzwStrip.Decode(strip, rows.Length));
        File.WriteAllBytes(Path.Combine(temporary.Path, "strip"), strip);
        var answer = Pillow.RunPython(WrapStrip, temporary.Path).Trim().Split(' ');
        Assert.Equal("read", answer[0]);
        var tiff = File.ReadAllBytes(Path.Combine(temporary.Path, "strip.tif"));
        using var decoded = new ImageDecoder(new ImageLimits()).Decode(tiff);
        var grey = RgbBytes(decoded).Where((_, at) => at % 3 == 0).ToArray();
        Assert.Equal(rows, Convert.FromHexString(answer[1]));
        Assert.Equal(rows, grey);
    }

    /// <summary>
    /// Strips at the edges of what the checks here judge, each read by the trainer's libtiff: an LZW table filled to
    /// exactly entry 4,096 without a clear code (one past ImageSharp's table: the strip is written anew) and two strips
    /// stored least significant bit first that share their bytes (each byte reversed once) decode to its pixels; so does
    /// a lone strip whose byte count is 0, which libtiff reads to the file's end (ImageSharp refused it, "Out of range
    /// when reading a strip", until it was given that count), LZW, PackBits or deflate.
    /// </summary>
    [Fact]
    public void StripsAtTheEdgesOfTheChecksDecodeToTheTrainersPixels()
    {
        using var temporary = new TemporaryDirectory("protopnet-lzw-edges-");
        var verdicts = Verdicts(Pillow.RunPython(Common + "\n" + """
            generator = random.Random(7)
            # Noise, its codes cut where the decoder adds entry 4,096 (the 3,840th code after the clear code adds 4,096 - 258 + 1
            # entries): the rows are exactly the bytes those codes give.
            noise = bytes(generator.randrange(256) for _ in range(64 * 70))
            table, next_code, codes, word, given = {bytes([i]): i for i in range(256)}, 258, [256], b"", 0
            for byte in noise:
                if word + bytes([byte]) in table:
                    word += bytes([byte])
                    continue
                codes.append(table[word])
                given += len(word)
                if len(codes) == 1 + 3840: break
                if next_code < 4096: table[word + bytes([byte])] = next_code
                next_code, word = next_code + 1, bytes([byte])
            write("table-to-4096.tif", grey_lzw_tiff(given, 1, [pack(codes + [257])], 1))
            pixels = bytes(generator.randrange(4) * 60 for _ in range(32 * 20))
            # One strip whose StripByteCounts is 0, the strip's bytes reaching the directory (written after them).
            zero = bytearray(grey_lzw_tiff(32, 20, [pack(encode(pixels))], 20))
            count_at = zero.index(struct.pack("<HHI", 279, 4, 1)) + 8
            zero[count_at:count_at + 4] = struct.pack("<I", 0)
            write("zero-byte-count.tif", bytes(zero))
            # The same for the other compressions: PackBits as one literal run per 32-pixel row, and deflate.
            packbits = b"".join(bytes([31]) + pixels[at:at + 32] for at in range(0, len(pixels), 32))
            for name, compression, strip in (("zero-byte-count-packbits.tif", 32773, packbits), ("zero-byte-count-deflate.tif", 8, zlib.compress(pixels))):
                zero = bytearray(grey_lzw_tiff(32, 20, [strip], 20, compression=compression))
                count_at = zero.index(struct.pack("<HHI", 279, 4, 1)) + 8
                zero[count_at:count_at + 4] = struct.pack("<I", 0)
                write(name, bytes(zero))
            # Two strips of the same rows stored once, least significant bit first, both offsets pointing at it.
            half = pack(encode(pixels[:32 * 10]))
            reversed_half = bytes(int(f"{byte:08b}"[::-1], 2) for byte in half)
            shared = bytearray(grey_lzw_tiff(32, 20, [reversed_half, reversed_half], 10, more_fields=[(266, 3, 1, 2)]))
            offsets = struct.pack("<2I", 8, 8 + len(half))
            shared[shared.index(offsets):shared.index(offsets) + 8] = struct.pack("<2I", 8, 8)
            write("shared-fill-order-2.tif", bytes(shared))
            verdicts()
            """, temporary.Path));
        Assert.Equal(5, verdicts.Count);
        Assert.All(verdicts, verdict => Assert.StartsWith("read", verdict.Value));
        var decoder = new ImageDecoder(new ImageLimits());
        foreach (var name in verdicts.Keys)
        {
            var upload = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            Assert.True(TrainerPixels(verdicts[name]).SequenceEqual(Decoded(decoder, upload)), $"{name}: {Refusal(decoder, upload) ?? "other pixels than the trainer's"}");
        }
    }

    /// <summary>
    /// Pillow reads an uncompressed strip's rows from its offset on, whatever its byte count says; ImageSharp painted
    /// what the count leaves out black. A strip counted short (or 0) of its rows decodes to the trainer's pixels: grey and
    /// RGB, the counts as LONGs or SHORTs, planes apart; one whose rows run past the file's end is refused by both.
    /// </summary>
    [Fact]
    public void AnUncompressedStripCountedShortOfItsRowsIsReadWhole()
    {
        using var temporary = new TemporaryDirectory("protopnet-raw-counts-");
        var verdicts = Verdicts(Pillow.RunPython(WriteRawCountFiles, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        foreach (var name in new[] { "sound.tif", "grey-second-short.tif", "rgb-last-short.tif", "rgb-middle-zero.tif", "short-counts-short.tif", "planar-short.tif" })
        {
            var upload = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            Assert.True(verdicts[name].StartsWith("read", StringComparison.Ordinal), $"the trainer should read {name}: {verdicts[name]}");
            var found = new TiffStripRewrites();
            Assert.Null(TiffStripData.FindCorruption(upload, withLibDeflate: true, found));
            Assert.True(name == "sound.tif" == (found.NewCounts.Count == 0), $"{name}: {found.NewCounts.Count} strips counted short");
            Assert.True(TrainerPixels(verdicts[name]).SequenceEqual(Decoded(decoder, upload)), $"{name}: {Refusal(decoder, upload) ?? "other pixels than the trainer's"}");
        }
        Assert.StartsWith("refused", verdicts["past-the-end.tif"]);
        Assert.StartsWith("The TIFF image is corrupt: its strip 2 needs 40 bytes at byte ", Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "past-the-end.tif"))));
    }

    /// <summary>
    /// Pillow reads an uncompressed TIFF's strips from its StripOffsets alone: each strip's rows from its offset on,
    /// whatever StripByteCounts says, and also where it gives fewer values than the offsets, none, or values of a type
    /// ImageSharp does not read, or is missing (ImageSharp refused all of these). Each decodes to the trainer's pixels,
    /// grey, RGB and planar, strips in file order and not; a strip whose rows run past the file's end is refused by both.
    /// </summary>
    [Fact]
    public void AnUncompressedTiffsStripsAreReadFromTheirOffsetsWhateverItsByteCountsSay()
    {
        using var temporary = new TemporaryDirectory("protopnet-raw-lists-");
        var verdicts = Verdicts(Pillow.RunPython(WriteStripListFiles + "\n" + """
            for kind, (samples, strips) in {"grey": (1, grey), "rgb": (3, rgb)}.items():
                for listed in range(4): write(f"{kind}-{listed}-counts.tif", lists(samples, strips, counts=[len(strips[0])] * listed))
                write(f"{kind}-no-counts.tif", lists(samples, strips, counts=None))
                write(f"{kind}-one-strip-no-counts.tif", lists(samples, [b"".join(strips)], rows_per_strip=8, counts=None))
            for count_type in (0, 1, 2, 5, 7, 10, 11, 12, 16, 17, 18): write(f"grey-counts-type-{count_type}.tif", lists(1, grey, count_type=count_type))
            write("grey-reordered-no-counts.tif", lists(1, grey, offsets=[32, 8, 44, 20], counts=None))
            write("planar-no-counts.tif", lists(3, planes, counts=None, planar=True))
            write("planar-5-counts.tif", lists(3, planes, counts=[12] * 5, planar=True))
            write("past-the-end-no-counts.tif", lists(1, grey, offsets=[8, 20, 32, 500], counts=None))
            # Past the file's end, though not past the end of the file with its lists written anew (about 340 bytes).
            write("past-the-end-2-counts.tif", lists(1, grey, offsets=[8, 20, 250, 44], counts=[12, 12]))
            verdicts()
            """, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(28, verdicts.Count);
        Assert.All(verdicts.Where(verdict => !verdict.Key.StartsWith("past-the-end", StringComparison.Ordinal)), verdict => Assert.StartsWith("read", verdict.Value));
        Assert.All(verdicts.Where(verdict => verdict.Key.StartsWith("past-the-end", StringComparison.Ordinal)), verdict => Assert.StartsWith("refused", verdict.Value));
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
    }

    /// <summary>
    /// Pillow reads an uncompressed TIFF's StripOffsets of any integer type as the numbers they are: BYTE, SBYTE and (in a
    /// classic TIFF) LONG8 too, which ImageSharp refused; and its StripByteCounts not at all (BYTE ones among them). Each
    /// such file, of one strip or four, grey or RGB, decodes to the trainer's pixels; offsets of types the trainer does not
    /// read as numbers (text, fractions, SLONG8) are refused by both.
    /// </summary>
    [Fact]
    public void AnUncompressedTiffsOffsetsOfByteTypesAreReadAsPillowReadsThem()
    {
        using var temporary = new TemporaryDirectory("protopnet-raw-list-types-");
        var verdicts = Verdicts(Pillow.RunPython(WriteStripListFiles + "\n" + """
            for kind, (samples, strips) in {"grey": (1, grey), "rgb": (3, rgb)}.items():
                for name, one in (("one-strip", [b"".join(strips)]), ("strips", strips)):
                    rows = 8 if len(one) == 1 else 2
                    for offset_type in (1, 6, 16): write(f"{kind}-{name}-offsets-type-{offset_type}.tif", lists(samples, one, rows_per_strip=rows, offset_type=offset_type))
                    write(f"{kind}-{name}-counts-type-1.tif", lists(samples, one, rows_per_strip=rows, count_type=1))
                    write(f"{kind}-{name}-both-type-1.tif", lists(samples, one, rows_per_strip=rows, offset_type=1, count_type=1))
                    write(f"{kind}-{name}-offsets-type-1-no-counts.tif", lists(samples, one, rows_per_strip=rows, offset_type=1, counts=None))
            for offset_type in (2, 5, 17): write(f"refused-offsets-type-{offset_type}.tif", lists(1, grey, offset_type=offset_type))
            # Past the file's end, though not past the end of the file with its lists written anew.
            write("refused-offsets-type-1-past-the-end.tif", lists(1, grey, offset_type=1, offsets=[8, 20, 250, 44]))
            verdicts()
            """, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(28, verdicts.Count);
        AssertRefusedByName(verdicts);
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
    }

    /// <summary>
    /// An 8 MB TIFF one pixel wide whose 8 million strips each have an offset of one BYTE (which Pillow reads, and a
    /// rewrite lays out for the decoder here) is refused for its size without its offsets being laid out: doing so took
    /// 776 MB and 2 seconds before the size was judged. Four rows high, it is refused for the length of its list.
    /// </summary>
    [Fact]
    public void MillionsOfStripOffsetsAreNotLaidOutBeforeTheSizeIsJudged()
    {
        const int rows = 8 << 20;
        var file = new byte[8 + rows + 2 + 12 * 9 + 4];
        "II*\0"u8.CopyTo(file);
        BitConverter.TryWriteBytes(file.AsSpan(4), 8 + rows);   // the directory after the offsets
        file.AsSpan(8, rows).Fill(8);                           // every strip at byte 8: one row of one grey pixel
        var entries = new (ushort Tag, ushort Type, uint Count, uint Value)[]
        {
            (256, 3, 1, 1), (257, 4, 1, rows), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 1, rows, 8), (277, 3, 1, 1), (278, 3, 1, 1), (284, 3, 1, 1),
        };
        WriteDirectory(file, 8 + rows, entries);
        var decoder = new ImageDecoder(new ImageLimits());
        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.StartsWith($"The TIFF image is 1x{rows} pixels; no side may be longer than", Refusal(decoder, file));
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 128L << 20);
        // Of a small image (8 by 4, a row a strip), 400,000 LONG offsets wrapping round its rows are refused: Pillow reads
        // every strip of them (the one further on of each row wins), the decoder here the first ones.
        const int offsets = 400_000;
        var small = new byte[8 + 8 + 4 * offsets + 2 + 12 * 9 + 4];
        "II*\0"u8.CopyTo(small);
        BitConverter.TryWriteBytes(small.AsSpan(4), 16 + 4 * offsets);
        small.AsSpan(8, 8).Fill(200);                                                    // one row of grey 200 at byte 8
        for (var i = 0; i < offsets; i++) BitConverter.TryWriteBytes(small.AsSpan(16 + 4 * i), 8u);
        var smallEntries = new (ushort Tag, ushort Type, uint Count, uint Value)[]
        {
            (256, 3, 1, 8), (257, 3, 1, 4), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, offsets, 16), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, 8),
        };
        WriteDirectory(small, 16 + 4 * offsets, smallEntries);
        Assert.Equal($"The TIFF image is corrupt: it lists {offsets} strip offsets, more than the {6 * 65536} any image's strips need (Pillow reads each, the decoder here the first).",
            Refusal(decoder, small));
    }

    /// <summary>A little-endian directory of <paramref name="entries"/> (values in the entries) at <paramref name="at"/>, its next pointer 0.</summary>
    private static void WriteDirectory(byte[] file, int at, (ushort Tag, ushort Type, uint Count, uint Value)[] entries)
    {
        BitConverter.TryWriteBytes(file.AsSpan(at), (ushort)entries.Length);
        for (var i = 0; i < entries.Length; i++)
        {
            var entry = file.AsSpan(at + 2 + 12 * i);
            BitConverter.TryWriteBytes(entry, entries[i].Tag);
            BitConverter.TryWriteBytes(entry[2..], entries[i].Type);
            BitConverter.TryWriteBytes(entry[4..], entries[i].Count);
            BitConverter.TryWriteBytes(entry[8..], entries[i].Value);
        }
    }

    /// <summary>
    /// A rewrite that writes a TIFF's directory anew after its end (its strip lists, a default for an empty BitsPerSample)
    /// must not make a field whose values lie past the upload's end look whole: Pillow stops reading the directory there,
    /// and cannot identify a file whose strips it has not read by then. Each such file is refused as the trainer refuses
    /// it; the same files with the field's values inside are read to the trainer's pixels.
    /// </summary>
    [Fact]
    public void AFieldPastTheUploadsEndIsJudgedThereWhateverARewriteAppends()
    {
        using var temporary = new TemporaryDirectory("protopnet-raw-list-past-end-");
        var verdicts = Verdicts(Pillow.RunPython(WriteStripListFiles + "\n" + """
            def with_name(data, past_the_end):
                # A DocumentName (269) of 40 characters, its values at the file's end (past it) or at its first bytes.
                start = struct.unpack("<I", data[4:8])[0]
                count = struct.unpack("<H", data[start:start + 2])[0]
                entries = [data[start + 2 + 12 * i:start + 14 + 12 * i] for i in range(count)]
                end = start + 2 + 12 * (count + 1) + 4
                entries.append(struct.pack("<HHII", 269, 2, 40, end if past_the_end else 8))
                entries.sort(key=lambda entry: struct.unpack("<H", entry[:2])[0])
                return data[:start] + struct.pack("<H", count + 1) + b"".join(entries) + b"\0\0\0\0"
            def emptied(data, tag):
                start = struct.unpack("<I", data[4:8])[0]
                changed = bytearray(data)
                for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", data[start:start + 2])[0], 12):
                    if struct.unpack("<H", data[entry:entry + 2])[0] == tag: changed[entry + 4:entry + 8] = struct.pack("<I", 0)
                return bytes(changed)
            for name, data in (("no-counts", lists(1, grey, counts=None)), ("counts", lists(1, grey)),
                               ("empty-bits", emptied(lists(1, [bytes(12 * 8)], rows_per_strip=8), 258))):
                write(f"{name}-name-inside.tif", with_name(data, False))
                write(f"refused-{name}-name-past-the-end.tif", with_name(data, True))
            verdicts()
            """, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(6, verdicts.Count);
        AssertRefusedByName(verdicts);
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
    }

    /// <summary>
    /// Pillow lays the StripOffsets past an uncompressed chunky TIFF's strips out again from the image's top, each strip
    /// over the one it wraps round to (decoded in the order of their offsets, the one further on wins), where ImageSharp
    /// read the first ones alone, to other pixels;
    /// it cannot identify a planar one with strips past its last plane, which ImageSharp read. Each decodes to the
    /// trainer's pixels (grey and RGB, one wrap or more, a short last strip, counts for some strips or none), or is refused
    /// as the trainer refuses it.
    /// </summary>
    [Fact]
    public void AnUncompressedTiffsOffsetsPastItsStripsAreLaidOutAgainFromTheTopAsPillowDoes()
    {
        using var temporary = new TemporaryDirectory("protopnet-raw-list-wraps-");
        var verdicts = Verdicts(Pillow.RunPython(WriteStripListFiles + "\n" + """
            more = [bytes(range(150 + 15 * k, 150 + 15 * k + 12)) for k in range(5)]
            write("grey-1-more.tif", lists(1, grey + more[:1]))
            write("grey-5-more.tif", lists(1, grey + more))
            write("grey-1-more-no-counts.tif", lists(1, grey + more[:1], counts=None))
            write("grey-2-more-4-counts.tif", lists(1, grey + more[:2], counts=[12] * 4))
            write("rgb-2-more.tif", lists(3, rgb + [bytes(range(36)), bytes(range(100, 136))]))
            write("grey-short-last-strip-1-more.tif", lists(1, grey + more[:1], height=7))
            write("one-strip-1-more.tif", lists(1, [b"".join(grey), bytes(range(48))], rows_per_strip=8))
            write("planar-1-more.tif", lists(3, planes + more[:1], planar=True))
            # A strip laid over by a later one is read all the same: past the file's end, the trainer refuses the file.
            write("grey-1-more-first-past-the-end.tif", lists(1, grey + more[:1], offsets=[250, 20, 32, 44, 56]))
            write("grey-1-more-past-the-end-no-counts.tif", lists(1, grey + more[:1], offsets=[8, 20, 32, 44, 250], counts=None))
            # Pillow decodes the strips in the order of their offsets: of two for the same rows the one further on wins,
            # whichever the list gives last.
            first_strip, extra_strip = 8, 8 + 4 * 12
            write("grey-1-more-listed-before.tif", lists(1, grey + more[:1], offsets=[extra_strip, 20, 32, 44, first_strip]))
            verdicts()
            """, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(11, verdicts.Count);
        string[] refused = ["planar-1-more.tif", "grey-1-more-first-past-the-end.tif", "grey-1-more-past-the-end-no-counts.tif"];
        Assert.All(verdicts.Where(verdict => !refused.Contains(verdict.Key)), verdict => Assert.StartsWith("read", verdict.Value));
        Assert.All(refused, name => Assert.StartsWith("refused", verdicts[name]));
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        Assert.Equal("The TIFF image is corrupt: it lists 13 strip offsets, more than the 12 strips of its 3 planes, which the trainer's Pillow cannot lay out.",
            Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "planar-1-more.tif"))));
    }

    /// <summary>
    /// An uncompressed TIFF whose height says more rows than its strips hold: Pillow maps a one-strip 8-bit grey, palette
    /// or 16-bit grey file whole from its offset and refuses it ("buffer is not large enough"), and reads the others
    /// with the missing rows black, where ImageSharp read other pixels (white, in rows it had too). Refused, as a compressed
    /// one is; a sound file is read.
    /// </summary>
    [Fact]
    public void AnUncompressedTiffTallerThanItsStripsIsRefused()
    {
        using var temporary = new TemporaryDirectory("protopnet-taller-");
        var verdicts = Verdicts(Pillow.RunPython(WriteTallerFiles, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(6, verdicts.Count);
        foreach (var name in verdicts.Keys.Where(name => name != "L-sound.tif"))
        {
            Assert.Equal("The TIFF image is corrupt: it lists 1 strips, but its 14 rows, 10 to a strip, need 2.",
                Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, name))));
        }
        Assert.True(TrainerPixels(verdicts["L-sound.tif"]).SequenceEqual(Decoded(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, "L-sound.tif")))));
        // Both kinds of the trainer's answer are among them: a mapped form it refuses, others it reads black below.
        Assert.StartsWith("refused: buffer is not large enough", verdicts["L-taller.tif"]);
        Assert.StartsWith("read", verdicts["RGB-taller.tif"]);
    }

    /// <summary>
    /// A fax-compressed TIFF decodes in the polarity it says: Pillow writes a bilevel image as BlackIsZero, which
    /// ImageSharp decoded inverted (it reads the runs as WhiteIsZero whatever the file says); WhiteIsZero ones as well.
    /// </summary>
    [Fact]
    public void AFaxTiffDecodesInThePolarityItSays()
    {
        using var temporary = new TemporaryDirectory("protopnet-fax-");
        var verdicts = Verdicts(Pillow.RunPython(Script + """
            picture = Image.new("L", (40, 30))
            picture.putdata([((x // 5 + y // 5) % 2) * 255 if x < 30 else 255 for y in range(30) for x in range(40)])
            for compression in ("group4", "group3", "tiff_ccitt"):
                stored = io.BytesIO()
                picture.convert("1").save(stored, "TIFF", compression=compression)
                data = bytearray(stored.getvalue())
                open(path(f"{compression}-black-is-zero.tif"), "wb").write(data)
                start = struct.unpack("<I", data[4:8])[0]
                for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", data[start:start + 2])[0], 12):
                    if struct.unpack("<H", data[entry:entry + 2])[0] == 262: data[entry + 8:entry + 10] = struct.pack("<H", 0)
                open(path(f"{compression}-white-is-zero.tif"), "wb").write(data)
            verdicts()
            """, temporary.Path));
        Assert.Equal(6, verdicts.Count);
        Assert.All(verdicts.Values, verdict => Assert.StartsWith("read", verdict));
        AssertJudgedAlike(new ImageDecoder(new ImageLimits()), temporary.Path, verdicts);
    }

    /// <summary>
    /// A PackBits strip counted past its rows (a literal and a repeat run after each strip's rows, or the last strip
    /// counted to the file's end, the directory among its bytes): libtiff stops once the rows are whole, where ImageSharp
    /// decodes every counted byte into a buffer of the strip's rows and refused the file ("Destination is too short").
    /// One strip and three (the last shorter), of 8-bit RGB and of 1-, 4- and 16-bit grey, each decodes to the trainer's
    /// pixels, as the same file counted exactly does.
    /// </summary>
    [Theory]
    [InlineData("rgb", 1)]
    [InlineData("rgb", 3)]
    [InlineData("grey-4-bits", 1)]
    [InlineData("grey-4-bits", 3)]
    [InlineData("grey-1-bit", 3)]
    [InlineData("grey-16-bits", 3)]
    public void APackBitsStripCountedPastItsRowsDecodesToTheTrainersPixels(string layout, int strips)
    {
        using var temporary = new TemporaryDirectory("protopnet-packbits-long-");
        var verdicts = Verdicts(Pillow.RunPython(WritePackBitsFiles + "\n" + $"""
            write("sound.tif", packbits_tiff("{layout}", {strips}))
            write("runs-after-each-strip.tif", packbits_tiff("{layout}", {strips}, after_each=bytes([2, 0xAA, 0xBB, 0xCC, 0xFB, 0x11])))
            write("last-to-the-end.tif", packbits_tiff("{layout}", {strips}, last_to_the_end=True))
            verdicts()
            """, temporary.Path));
        Assert.Equal(3, verdicts.Count);
        Assert.All(verdicts.Values, verdict => Assert.StartsWith("read", verdict));
        AssertJudgedAlike(new ImageDecoder(new ImageLimits()), temporary.Path, verdicts);
    }

    /// <summary>
    /// Pillow-written PackBits strips read with fewer bits per sample than they were written with (a layout the trainer
    /// has a mode for): the rows need half of each strip's bytes, the runs of the other half follow them. Where the rows
    /// end with a run (8-bit grey read as 4 bits, 16-bit grey as 8), the strip is given the count of its rows; where they
    /// end inside one (2 bits, 4 bits), which libtiff cuts and ImageSharp decoded whole past its buffer whatever the count
    /// said, it is written anew, cut at its rows. Each decodes to the trainer's pixels.
    /// </summary>
    [Fact]
    public void APillowWrittenPackBitsStripReadWithFewerBitsIsReadAsTheTrainerReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-packbits-fewer-bits-");
        var verdicts = Verdicts(Pillow.RunPython(Script + """
            base = Image.new("L", (40, 30))
            base.putdata([(x * 6 + y * 8) % 256 if x % 8 < 3 else y * 8 for y in range(30) for x in range(40)])
            for name, picture, read_as in (("grey", base, (4, 2)), ("grey16", base.convert("I").convert("I;16"), (8, 4))):
                stored = io.BytesIO()
                picture.save(stored, "TIFF", compression="packbits")
                data = bytearray(stored.getvalue())
                start = struct.unpack("<I", data[4:8])[0]
                bits_at = next(entry for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", data[start:start + 2])[0], 12)
                               if struct.unpack("<H", data[entry:entry + 2])[0] == 258) + 8
                for bits, kind in zip(read_as, ("run-ends-rows", "run-cut")):
                    data[bits_at:bits_at + 2] = struct.pack("<H", bits)
                    open(path(f"{name}-as-{bits}-bits-{kind}.tif"), "wb").write(bytes(data))
            verdicts()
            """, temporary.Path));
        Assert.Equal(4, verdicts.Count);
        Assert.All(verdicts.Values, verdict => Assert.StartsWith("read", verdict));
        var decoder = new ImageDecoder(new ImageLimits());
        foreach (var (name, verdict) in verdicts)
        {
            var upload = File.ReadAllBytes(Path.Combine(temporary.Path, name));
            var found = new TiffStripRewrites();
            Assert.Null(TiffStripData.FindCorruption(upload, withLibDeflate: true, found));
            var runCut = name.EndsWith("run-cut.tif", StringComparison.Ordinal);
            Assert.Equal(runCut, found.WrittenAnew.Count > 0);
            Assert.Equal(runCut, found.NewCounts.Count == 0);
            Assert.True(TrainerPixels(verdict).SequenceEqual(Decoded(decoder, upload)), $"{name}: {Refusal(decoder, upload) ?? "other pixels than the trainer's"}");
        }
    }

    /// <summary>
    /// PackBits strips whose rows end inside a run (a repeat or a literal run that goes on past them, with its bytes
    /// counted): libtiff cuts the run at the rows, where ImageSharp decoded it whole past its buffer of the rows and
    /// refused the file ("its fields contradict each other"). Each strip is written anew as libtiff decodes it, and the
    /// file decodes to the trainer's pixels; runs after such a strip are not read either.
    /// </summary>
    [Theory]
    [InlineData("rgb", 1, "repeat")]
    [InlineData("rgb", 3, "repeat")]
    [InlineData("grey-4-bits", 3, "repeat")]
    [InlineData("grey-16-bits", 3, "repeat")]
    [InlineData("grey-1-bit", 1, "literal")]
    [InlineData("grey-1-bit", 3, "literal")]
    public void APackBitsStripWhoseRowsEndInsideARunDecodesToTheTrainersPixels(string layout, int strips, string run)
    {
        using var temporary = new TemporaryDirectory("protopnet-packbits-cut-");
        var verdicts = Verdicts(Pillow.RunPython(WritePackBitsFiles + "\n" + $"""
            write("run-crossing-the-rows.tif", packbits_tiff("{layout}", {strips}, crossing_the_rows="{run}"))
            write("then-runs-after.tif", packbits_tiff("{layout}", {strips}, crossing_the_rows="{run}", after_each=bytes([2, 0xAA, 0xBB, 0xCC, 0xFB, 0x11])))
            verdicts()
            """, temporary.Path));
        Assert.Equal(2, verdicts.Count);
        Assert.All(verdicts.Values, verdict => Assert.StartsWith("read", verdict));
        foreach (var name in verdicts.Keys)
        {
            var found = new TiffStripRewrites();
            Assert.Null(TiffStripData.FindCorruption(File.ReadAllBytes(Path.Combine(temporary.Path, name)), withLibDeflate: true, found));
            Assert.Equal(strips, found.WrittenAnew.Count(strip => strip.PackBits));
        }
        AssertJudgedAlike(new ImageDecoder(new ImageLimits()), temporary.Path, verdicts);
    }

    /// <summary>
    /// A PackBits strip counted past the file's end: libtiff refuses it ("Read error on strip"), and so does the service
    /// (the file is truncated), one strip or the last of three; a strip counted exactly to the end is read by both.
    /// </summary>
    [Fact]
    public void APackBitsStripCountedPastTheFilesEndIsRefusedAsLibtiffRefusesIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-packbits-past-the-end-");
        var verdicts = Verdicts(Pillow.RunPython(WritePackBitsFiles + "\n" + """
            write("rgb-3-strips-to-the-end.tif", packbits_tiff("rgb", 3, strips_last=True, last_to_the_end=True))
            write("refused-rgb-1-strip-past-the-end.tif", packbits_tiff("rgb", 1, strips_last=True, past_the_end=1))
            write("refused-rgb-3-strips-past-the-end.tif", packbits_tiff("rgb", 3, strips_last=True, past_the_end=100))
            write("refused-grey-4-bits-3-strips-past-the-end.tif", packbits_tiff("grey-4-bits", 3, strips_last=True, past_the_end=1))
            verdicts()
            """, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(4, verdicts.Count);
        AssertRefusedByName(verdicts);
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        foreach (var name in verdicts.Keys.Where(name => name.StartsWith("refused", StringComparison.Ordinal)))
        {
            Assert.StartsWith("The TIFF image is truncated: ", Refusal(decoder, File.ReadAllBytes(Path.Combine(temporary.Path, name))));
        }
    }

    /// <summary>
    /// <c>packbits_tiff(layout, strips, ...)</c>: a PackBits TIFF of 10 rows in <c>strips</c> strips (the last shorter
    /// where they do not divide), each row's runs as libtiff writes them (3 or more equal bytes repeated, the rest
    /// literal), laid from byte 8 with the directory after them, or, <c>strips_last</c>, after the directory;
    /// <c>after_each</c>: bytes after each strip's rows, counted with them; <c>crossing_the_rows</c>: "repeat" or
    /// "literal", the last row of each strip encoded with four more bytes (its last byte again, or four others), so that
    /// its last run reaches past the rows; <c>last_to_the_end</c>: the last strip counted to the file's end;
    /// <c>past_the_end</c>: the last strip counted that many bytes past it.
    /// </summary>
    private const string WritePackBitsFiles = Script + """
        LAYOUTS = {"rgb": (24, 3, 8, 2), "grey-4-bits": (13, 1, 4, 1), "grey-1-bit": (21, 1, 1, 1), "grey-16-bits": (11, 1, 16, 1)}
        def packbits(row):
            out, at = bytearray(), 0
            while at < len(row):
                same = 1
                while at + same < len(row) and same < 128 and row[at + same] == row[at]: same += 1
                if same >= 3:
                    out += bytes([257 - same, row[at]])
                    at += same
                    continue
                end = at + 1
                while end < len(row) and end - at < 128 and not (end + 2 < len(row) and row[end] == row[end + 1] == row[end + 2]): end += 1
                out += bytes([end - at - 1]) + row[at:end]
                at = end
            return bytes(out)
        def packbits_tiff(layout, strips, after_each=b"", crossing_the_rows=None, last_to_the_end=False, past_the_end=0, strips_last=False):
            width, samples, bits, photometric = LAYOUTS[layout]
            height, row_bytes = 10, (width * samples * bits + 7) // 8
            rows = [bytes((x * 29 + y * 7) % 256 if x % 8 < 3 else (y * 50 + 3) % 256 for x in range(row_bytes)) for y in range(height)]
            rows_per_strip = -(-height // strips)
            def crossing(row): return row + (bytes([row[-1]]) * 4 if crossing_the_rows == "repeat" else bytes([0x01, 0x5A, 0x02, 0xA5]))
            def strip_rows(rows): return rows[:-1] + [crossing(rows[-1])] if crossing_the_rows else rows
            coded = [b"".join(packbits(row) for row in strip_rows(rows[at:at + rows_per_strip])) + after_each for at in range(0, height, rows_per_strip)]
            n = len(coded)
            # The directory's size, and that of the values it points at: offsets and counts (of several strips), BitsPerSample (of 3).
            directory_size, values_size = 2 + 12 * 9 + 4, (8 * n if n > 1 else 0) + (2 * samples if samples > 2 else 0)
            strips_at = 8 + directory_size + values_size if strips_last else 8
            directory_at = 8 if strips_last else 8 + sum(map(len, coded)) + sum(map(len, coded)) % 2
            offsets = [strips_at + sum(map(len, coded[:i])) for i in range(n)]
            counts = [len(strip) for strip in coded]
            end = max(strips_at + sum(counts), directory_at + directory_size + values_size)
            if last_to_the_end or past_the_end: counts[-1] = end - offsets[-1] + past_the_end
            values = bytearray()
            def value(kind, numbers):
                if len(numbers) == 1: return struct.pack("<HH", numbers[0], 0) if kind == 3 else struct.pack("<I", numbers[0])
                values.extend(struct.pack("<%d%s" % (len(numbers), "H" if kind == 3 else "I"), *numbers))
                return struct.pack("<I", directory_at + directory_size + len(values) - (2 if kind == 3 else 4) * len(numbers))
            fields = [(256, 3, [width]), (257, 3, [height]), (258, 3, [bits] * samples), (259, 3, [32773]), (262, 3, [photometric]),
                      (273, 4, offsets), (277, 3, [samples]), (278, 3, [rows_per_strip]), (279, 4, counts)]
            directory = struct.pack("<H", len(fields)) + b"".join(struct.pack("<HHI", tag, kind, len(numbers)) + value(kind, numbers) for tag, kind, numbers in fields) + b"\0\0\0\0"
            strip_bytes = b"".join(coded)
            header = b"II*\0" + struct.pack("<I", directory_at)
            if strips_last: return header + directory + bytes(values) + strip_bytes
            return header + strip_bytes + bytes(directory_at - 8 - len(strip_bytes)) + directory + bytes(values)
        def write(name, data): open(path(name), "wb").write(data)
        """;

    private const string WriteTallerFiles = Script + """
        base = Image.new("RGB", (20, 10))
        base.putdata([(x * 12, y * 25, 100) for y in range(10) for x in range(20)])
        def taller(data, rows):
            changed = bytearray(data)
            start = struct.unpack("<I", changed[4:8])[0]
            for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", changed[start:start + 2])[0], 12):
                if struct.unpack("<H", changed[entry:entry + 2])[0] == 257: changed[entry + 8:entry + 10] = struct.pack("<H", rows)
            return bytes(changed)
        pictures = {"L": base.convert("L"), "RGB": base, "I16": base.convert("L").convert("I").convert("I;16"), "1": base.convert("1"), "P": base.convert("P")}
        for name, picture in pictures.items():
            stored = io.BytesIO()
            picture.save(stored, "TIFF")
            open(path(f"{name}-taller.tif"), "wb").write(taller(stored.getvalue(), 14))
        stored = io.BytesIO()
        pictures["L"].save(stored, "TIFF")
        open(path("L-sound.tif"), "wb").write(stored.getvalue())
        verdicts()
        """;

    /// <summary>
    /// <c>lists(samples, strips, ...)</c>: an uncompressed TIFF 6 pixels wide (8 rows, unless told) of 8-bit samples, its strips laid one after another
    /// from byte 8, its StripOffsets and StripByteCounts as given (None: no such field) and of the types given; and
    /// <c>grey</c>, <c>rgb</c> and <c>planes</c>: the strips of 2 rows of a grey, an RGB and a planar RGB image.
    /// </summary>
    private const string WriteStripListFiles = Script + """
        def lists(samples, strips, rows_per_strip=2, offsets="laid", counts="laid", offset_type=4, count_type=4, planar=False, height=8):
            data = bytearray(b"II*\0\0\0\0\0")
            laid = []
            for strip in strips: laid.append(len(data)); data += strip
            if offsets == "laid": offsets = laid
            if counts == "laid": counts = [len(strip) for strip in strips]
            # Each type's values written as whole numbers of its size (a RATIONAL's numerator and denominator both the value).
            formats = {1: "B", 3: "H", 4: "I", 6: "b", 16: "Q", 17: "q", 5: "II", 10: "ii", 11: "I", 12: "Q", 18: "Q", 0: "B", 2: "B", 7: "B"}
            def value_field(kind, values):
                packed = struct.pack("<" + formats[kind] * len(values), *[value for value in values for _ in formats[kind]])
                if len(packed) <= 4: return packed.ljust(4, b"\0")
                data.extend(packed + b"\0" * (len(packed) % 2))
                return struct.pack("<I", len(data) - len(packed) - len(packed) % 2)
            fields = [(256, 3, [6]), (257, 3, [height]), (258, 3, [8] * samples), (259, 3, [1]), (262, 3, [2 if samples == 3 else 1]),
                      (273, offset_type, offsets), (277, 3, [samples]), (278, 3, [rows_per_strip])]
            if counts is not None: fields.append((279, count_type, counts))
            if planar: fields.append((284, 3, [2]))
            entries = b"".join(struct.pack("<HHI", tag, kind, len(values)) + value_field(kind, values) for tag, kind, values in sorted(fields))
            data[4:8] = struct.pack("<I", len(data))
            return bytes(data + struct.pack("<H", len(fields)) + entries + b"\0\0\0\0")
        def level(x, y, c): return (x * 13 + y * 29 + c * 71) % 256
        grey, rgb = ([bytes(level(x, y, c) for y in range(at, at + 2) for x in range(6) for c in range(samples)) for at in range(0, 8, 2)] for samples in (1, 3))
        planes = [bytes(level(x, y, c) for y in range(at, at + 2) for x in range(6)) for c in range(3) for at in range(0, 8, 2)]
        def write(name, data): open(path(name), "wb").write(data)
        """;

    private const string WriteRawCountFiles = Script + """
        def raw_tiff(name, samples, short_by, count_type=4, planar=False, cut=0):
            width, height, rows_per_strip = 20, 12, 5
            def level(x, y, c): return (x * 12 + y * 7 + c * 90) % 256
            planes = [bytes(level(x, y, c) for y in range(height) for x in range(width)) for c in range(samples)] if planar else \
                [bytes(level(x, y, c) for y in range(height) for x in range(width) for c in range(samples))]
            row = width * (1 if planar else samples)
            strips = [plane[at:at + rows_per_strip * row] for plane in planes for at in range(0, height * row, rows_per_strip * row)]
            counts = [len(strip) - short_by.get(i, 0) for i, strip in enumerate(strips)]
            n, entries = len(strips), 11
            lists = 8 + 2 + 12 * entries + 4
            counts_size = 2 if count_type == 3 else 4
            bits_at = lists + 4 * n + counts_size * n
            at = bits_at + 2 * samples
            offsets = []
            for strip in strips: offsets.append(at); at += len(strip)
            def entry(tag, kind, count, value): return struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value))
            fields = [entry(256, 3, 1, width), entry(257, 3, 1, height), entry(258, 3, samples, bits_at if samples > 1 else 8), entry(259, 3, 1, 1),
                      entry(262, 3, 1, 2 if samples == 3 else 1), entry(273, 4, n, lists), entry(277, 3, 1, samples), entry(278, 3, 1, rows_per_strip),
                      entry(279, count_type, n, lists + 4 * n), entry(284, 3, 1, 2 if planar else 1), entry(296, 3, 1, 1)]
            data = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", entries) + b"".join(fields) + b"\0\0\0\0"
            data += struct.pack("<%dI" % n, *offsets) + struct.pack("<%d%s" % (n, "H" if count_type == 3 else "I"), *counts) + struct.pack("<%dH" % samples, *[8] * samples)
            data += b"".join(strips)
            open(path(name), "wb").write(data[:len(data) - cut])
        raw_tiff("sound.tif", 3, {})
        raw_tiff("grey-second-short.tif", 1, {1: 60})
        raw_tiff("rgb-last-short.tif", 3, {2: 100})
        raw_tiff("rgb-middle-zero.tif", 3, {1: 300})
        raw_tiff("short-counts-short.tif", 3, {0: 17}, count_type=3)
        raw_tiff("planar-short.tif", 3, {4: 40}, planar=True)
        raw_tiff("past-the-end.tif", 1, {2: 30}, cut=30)
        verdicts()
        """;

    /// <summary>
    /// A palette TIFF's ColorMap gives 3 x 2^bits levels, reds, greens, then blues; Pillow reads whatever count it has in
    /// three equal parts (a 4-bit image's map of 768 levels: entry i is levels i, 256 + i and 512 + i). Maps of the
    /// count TIFF asks for and of other counts decode to the trainer's pixels.
    /// </summary>
    [Fact]
    public void APaletteTiffsColorMapIsReadInThirdsAsTheTrainerReadsIt()
    {
        using var temporary = new TemporaryDirectory("protopnet-palette-map-");
        var verdicts = Verdicts(Pillow.RunPython(WritePaletteMapFiles, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.All(verdicts, verdict => Assert.StartsWith("read", verdict.Value));
        var wrong = Disagreements(decoder, temporary.Path, verdicts);
        Assert.Equal(10, verdicts.Count);
        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
    }

    private const string WritePaletteMapFiles = Script + """
        def palette_tiff(name, bits, levels, colours_used, order="<"):
            width, height = 8, 4
            pixels = [(x + 3 * y) % colours_used for y in range(height) for x in range(width)]
            per_byte = 8 // bits
            rows = b"".join(bytes(sum(pixels[y * width + x + k] << (8 - bits * (k + 1)) for k in range(per_byte)) for x in range(0, width, per_byte)) for y in range(height))
            third = levels // 3
            colour_map = [((i * 37 + c * 80 + 11) % 256) << 8 for c in range(3) for i in range(third)]
            entries, directory = 10, 8
            map_at = directory + 2 + 12 * entries + 4
            pixels_at = map_at + 2 * len(colour_map)
            def entry(tag, kind, count, value): return struct.pack(order + "HHI", tag, kind, count) + (struct.pack(order + "HH", value, 0) if kind == 3 and count == 1 else struct.pack(order + "I", value))
            fields = [entry(256, 3, 1, width), entry(257, 3, 1, height), entry(258, 3, 1, bits), entry(259, 3, 1, 1), entry(262, 3, 1, 3),
                      entry(273, 4, 1, pixels_at), entry(277, 3, 1, 1), entry(278, 3, 1, height), entry(279, 4, 1, len(rows)), entry(320, 3, len(colour_map), map_at)]
            head = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", directory)
            data = head + struct.pack(order + "H", entries) + b"".join(fields) + b"\0\0\0\0"
            open(path(name), "wb").write(data + struct.pack(order + "%dH" % len(colour_map), *colour_map) + rows)
        palette_tiff("4-bit-48.tif", 4, 48, 16)
        palette_tiff("4-bit-96.tif", 4, 96, 16)
        palette_tiff("4-bit-768.tif", 4, 768, 16)
        palette_tiff("8-bit-768.tif", 8, 768, 256)
        palette_tiff("8-bit-48.tif", 8, 48, 16)
        palette_tiff("8-bit-96.tif", 8, 96, 32)
        palette_tiff("2-bit-12.tif", 2, 12, 4)
        palette_tiff("2-bit-768.tif", 2, 768, 4)
        palette_tiff("4-bit-96-big-endian.tif", 4, 96, 16, order=">")
        palette_tiff("8-bit-48-big-endian.tif", 8, 48, 16, order=">")
        verdicts()
        """;

    /// <summary>Python shared by the LZW and layout scripts: LZW codes packed as TIFF writes them, and a TIFF of given strips.</summary>
    private const string Common = Script + """
        def pack(codes):
            # Codes most significant bit first, 9 bits wide until the table reaches 511 entries (one early, as TIFF does).
            out, bits, count, width, free, after_clear = bytearray(), 0, 0, 9, 258, True
            for code in codes:
                bits, count = (bits << width) | code, count + width
                while count >= 8:
                    out.append((bits >> (count - 8)) & 0xFF)
                    count -= 8
                bits &= (1 << count) - 1
                if code == 256: free, width, after_clear = 258, 9, True
                elif code == 257: pass
                elif after_clear: after_clear = False
                else:
                    free += 1
                    if free > (1 << width) - 2 and width < 12: width += 1
            if count: out.append((bits << (8 - count)) & 0xFF)
            return bytes(out)
        def encode(data):
            table, next_code, codes, word = {bytes([i]): i for i in range(256)}, 258, [256], b""
            for byte in data:
                if word + bytes([byte]) in table:
                    word += bytes([byte])
                    continue
                codes.append(table[word])
                table[word + bytes([byte])] = next_code
                next_code, word = next_code + 1, bytes([byte])
            return codes + [table[word], 257]
        def grey_lzw_tiff(width, height, strips, rows_per_strip, bits=8, more_fields=(), compression=5):
            offsets, at = [], 8
            for strip in strips: offsets.append(at); at += len(strip)
            directory = at + (at & 1)
            fields = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, bits), (259, 3, 1, compression), (262, 3, 1, 1), (277, 3, 1, 1), (278, 3, 1, rows_per_strip), *more_fields]
            extra, extra_at = bytearray(), directory + 2 + 12 * (len(fields) + 2) + 4
            def longs(values):
                if len(values) == 1: return values[0]
                extra.extend(struct.pack("<%dI" % len(values), *values))
                return extra_at + len(extra) - 4 * len(values)
            fields += [(273, 4, len(strips), longs(offsets)), (279, 4, len(strips), longs([len(strip) for strip in strips]))]
            entries = b"".join(struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)) for tag, kind, count, value in sorted(fields))
            return b"II*\0" + struct.pack("<I", directory) + b"".join(strips) + b"\0" * (directory - at) + struct.pack("<H", len(fields)) + entries + b"\0\0\0\0" + bytes(extra)
        def write(name, data): open(path(name), "wb").write(data)
        """;

    private const string WriteLzwFiles = Common + "\n" + """
        picture = Image.new("RGB", (40, 30))
        picture.putdata([(x * 6, y * 8, (x * y) % 256) for y in range(30) for x in range(40)])
        picture.save(path("pillow-lzw.tif"), compression="tiff_lzw")
        picture.save(path("pillow-lzw-predictor.tif"), compression="tiff_lzw", tiffinfo={317: 2})
        picture.convert("L").save(path("pillow-lzw-strips.tif"), compression="tiff_lzw", tiffinfo={278: 4})
        generator = random.Random(1)
        pixels = bytes(generator.randrange(4) * 60 for _ in range(32 * 20))
        codes = encode(pixels)
        def one_strip(name, changed): write(name, grey_lzw_tiff(32, 20, [pack(changed)], 20))
        one_strip("no-end-code.tif", codes[:-1])
        one_strip("codes-after-rows.tif", codes[:-1] + [5, 600, 700])
        one_strip("clear-midway.tif", codes[:6] + [256] + codes[1:])
        one_strip("clear-twice.tif", [256] + codes)
        # One grey all along: each string one byte longer than the last, so the one that fills the rows runs past them.
        write("string-past-rows.tif", grey_lzw_tiff(32, 20, [pack(encode(bytes([90]) * (32 * 20 + 30)))], 20))
        one_strip("no-clear-first.tif", codes[1:])
        one_strip("early-end-code.tif", codes[:-3] + [257])
        one_strip("unknown-code.tif", codes[:5] + [500] + codes[6:])
        one_strip("clear-then-table-code.tif", [256, 258] + codes[1:])
        one_strip("runs-out.tif", codes[:len(codes) // 2])
        strips = [pack(encode(pixels[row * 32:(row + 4) * 32])) for row in range(0, 20, 4)]
        strips[1] = strips[1][:20]   # of about 90
        write("second-strip-cut.tif", grey_lzw_tiff(32, 20, strips, 4))
        # Noise encoded without a clear code once the table is full (12-bit codes up to 4095, no more entries): libtiff's
        # decoder adds entries on to 5,118 and reads it, ImageSharp's table ended at 4,096.
        noise = bytes(generator.randrange(256) for _ in range(64 * 70))
        table, next_code, unbroken, word = {bytes([i]): i for i in range(256)}, 258, [256], b""
        for byte in noise:
            if word + bytes([byte]) in table:
                word += bytes([byte])
                continue
            unbroken.append(table[word])
            if next_code < 4096: table[word + bytes([byte])] = next_code
            next_code, word = next_code + 1, bytes([byte])
        unbroken += [table[word], 257]
        assert 3900 < len(unbroken) < 4800, len(unbroken)
        write("table-past-4096.tif", grey_lzw_tiff(64, 70, [pack(unbroken)], 70))
        # A last strip of 2 rows (of 4) without its end code; the strips before it have theirs.
        strips = [pack(encode(pixels[row * 32:(row + 4) * 32])) for row in range(0, 20, 4)] + [pack(encode(pixels[:64])[:-1])]
        write("last-strip-no-end-code.tif", grey_lzw_tiff(32, 22, strips, 4))
        # A bilevel image whose strip's bytes are stored least significant bit first (FillOrder 2).
        bilevel = bytes(generator.randrange(256) for _ in range(4 * 16))
        reversed_bits = bytes(int(f"{byte:08b}"[::-1], 2) for byte in pack(encode(bilevel)))
        write("fill-order-2.tif", grey_lzw_tiff(32, 16, [reversed_bits], 16, bits=1, more_fields=[(266, 3, 1, 2)]))
        write("fill-order-2-cut.tif", grey_lzw_tiff(32, 16, [reversed_bits[:len(reversed_bits) // 2]], 16, bits=1, more_fields=[(266, 3, 1, 2)]))
        # The same, its strip's byte count running 40 bytes into the directory: libtiff reverses a copy of the strip and
        # stops at the rows; the directory must not be reversed with it.
        into_directory = bytearray(grey_lzw_tiff(32, 16, [reversed_bits], 16, bits=1, more_fields=[(266, 3, 1, 2)]))
        directory = struct.unpack("<I", into_directory[4:8])[0]
        for entry in range(directory + 2, directory + 2 + 12 * struct.unpack("<H", into_directory[directory:directory + 2])[0], 12):
            if struct.unpack("<H", into_directory[entry:entry + 2])[0] == 279: into_directory[entry + 8:entry + 12] = struct.pack("<I", len(reversed_bits) + 40)
        write("fill-order-2-into-directory.tif", bytes(into_directory))
        # Uncompressed rows (grey and bilevel) and PackBits runs (literal runs of up to 128 bytes), least significant bit first.
        def reverse(data): return bytes(int(f"{byte:08b}"[::-1], 2) for byte in data)
        write("fill-order-2-raw.tif", grey_lzw_tiff(32, 20, [reverse(pixels)], 20, more_fields=[(266, 3, 1, 2)], compression=1))
        write("fill-order-2-raw-bilevel.tif", grey_lzw_tiff(32, 16, [reverse(bilevel)], 16, bits=1, more_fields=[(266, 3, 1, 2)], compression=1))
        runs = b"".join(bytes([len(pixels[at:at + 128]) - 1]) + pixels[at:at + 128] for at in range(0, len(pixels), 128))
        write("fill-order-2-packbits.tif", grey_lzw_tiff(32, 20, [reverse(runs)], 20, more_fields=[(266, 3, 1, 2)], compression=32773))
        # Planar RGB, uncompressed, FillOrder 2: Pillow reads each plane with a raw mode of one letter, not reversed.
        planes = [bytes((x * 30 + plane * 70) % 256 for x in range(8 * 4)) for plane in range(3)]
        at = 8 + 3 * 32
        fields = [(256, 3, 1, 8), (257, 3, 1, 4), (258, 3, 3, at), (259, 3, 1, 1), (262, 3, 1, 2), (266, 3, 1, 2), (273, 4, 3, at + 6),
                  (277, 3, 1, 3), (278, 3, 1, 4), (279, 4, 3, at + 18), (284, 3, 1, 2)]
        values = struct.pack("<3H", 8, 8, 8) + struct.pack("<3I", 8, 40, 72) + struct.pack("<3I", 32, 32, 32)
        entries = b"".join(struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)) for tag, kind, count, value in fields)
        directory_at = at + len(values)
        write("fill-order-2-planar.tif", b"II*\0" + struct.pack("<I", directory_at) + b"".join(planes) + values + struct.pack("<H", len(fields)) + entries + b"\0\0\0\0")
        # RGBA with FillOrder 2: a layout Pillow does not open so ("cannot identify image file").
        picture.convert("RGBA").save(path("fill-order-2-rgba.tif"), compression="tiff_lzw", tiffinfo={266: 2})
        verdicts()
        """;

    private const string WrapStrip = Common + "\n" + """
        write("strip.tif", grey_lzw_tiff(512, 300, [open(path("strip"), "rb").read()], 300))
        try:
            print("read", open_image(path("strip.tif")).convert("L").tobytes().hex())
        except UnreadableImageError as error:
            print("refused", error.reason)
        """;

    private const string WriteLayouts = Common + "\n" + """
        def with_field(data, tag, kind, value, count=1):
            # The first directory written anew after the file's end with the field added (or replaced; None: removed;
            # a count of 2 repeats a SHORT value).
            start = struct.unpack("<I", data[4:8])[0]
            count_was = struct.unpack("<H", data[start:start + 2])[0]
            entries = [data[start + 2 + 12 * i:start + 14 + 12 * i] for i in range(count_was)]
            entries = [entry for entry in entries if struct.unpack("<H", entry[:2])[0] != tag]
            if value is not None:
                entries.append(struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, value if count == 2 else 0) if kind == 3 else struct.pack("<I", value)))
            entries.sort(key=lambda entry: struct.unpack("<H", entry[:2])[0])
            following = data[start + 2 + 12 * count_was:start + 6 + 12 * count_was]
            at = len(data) + len(data) % 2
            changed = bytearray(data) + bytes(at - len(data)) + struct.pack("<H", len(entries)) + b"".join(entries) + following
            changed[4:8] = struct.pack("<I", at)
            return bytes(changed)
        base = Image.new("RGB", (24, 16))
        base.putdata([(x * 10, y * 15, (x * y) % 256) for y in range(16) for x in range(24)])
        images = {"rgb": base, "grey": base.convert("L"), "rgba": base.convert("RGBA"), "bilevel": base.convert("1"),
                  "grey16": base.convert("L").convert("I").convert("I;16"), "float": base.convert("F"), "palette": base.convert("P")}
        for name, picture in images.items():
            for compression in ("raw", "tiff_lzw"):
                stored = io.BytesIO()
                picture.save(stored, "TIFF", compression=compression)
                data = stored.getvalue()
                prefix = f"{name}-{'raw' if compression == 'raw' else 'lzw'}"
                write(f"{prefix}-plain.tif", data)
                for value in (1, 2, 3): write(f"{prefix}-sampleformat-{value}.tif", with_field(data, 339, 3, value))
                for value in (0, 1, 2): write(f"{prefix}-extrasamples-{value}.tif", with_field(data, 338, 3, value))
                write(f"{prefix}-tilewidth.tif", with_field(data, 322, 3, 16))
                write(f"{prefix}-whiteiszero.tif", with_field(data, 262, 3, 0))
                write(f"{prefix}-fillorder-2.tif", with_field(data, 266, 3, 2))
                write(f"{prefix}-tilelength.tif", with_field(data, 323, 3, 16))
                # A TileLength alone other than the rows of a strip: libtiff reads runs of that many rows.
                write(f"{prefix}-tilelength-8.tif", with_field(data, 323, 3, 8))
                write(f"{prefix}-tilelength-64.tif", with_field(data, 323, 3, 64))
                # A TileLength of the image's height without a RowsPerStrip, and a TileLength of two values: libtiff refuses both.
                write(f"{prefix}-tilelength-no-rows.tif", with_field(with_field(data, 323, 3, 16), 278, 3, None))
                write(f"{prefix}-tilelength-twice.tif", with_field(data, 323, 3, 16, count=2))
        verdicts()
        """;

    private const string WriteRandomDamage = Common + "\n" + """
        generator = random.Random(7)
        pixels = bytes(generator.randrange(4) * 60 for _ in range(40 * 24))
        for case in range(300):
            strips = [pack(encode(pixels[row * 40:(row + 4) * 40])) for row in range(0, 24, 4)]
            which = generator.randrange(len(strips))
            strip = bytearray(strips[which])
            for _ in range(generator.choice([1, 1, 2, 3])):
                kind = generator.random()
                if kind < 0.6: strip[generator.randrange(len(strip))] ^= 1 << generator.randrange(8)
                elif kind < 0.8: strip = strip[:generator.randrange(1, len(strip))]
                else: strip[generator.randrange(len(strip))] = generator.choice([0, 0xFF, 0x80, 0x7F])
            strips[which] = bytes(strip)
            write(f"damaged-{case:03}.tif", grey_lzw_tiff(40, 24, strips, 4))
        verdicts()
        """;

    private const string WriteFieldTypes = Common + "\n" + """
        picture = Image.new("RGB", (40, 30))
        picture.putdata([(x * 6, y * 8, (x * y) % 256) for y in range(30) for x in range(40)])
        picture.save(path("lzw.tif"), compression="tiff_lzw")
        picture.save(path("raw.tif"))
        for source in ("lzw", "raw"):
            data = open(path(source + ".tif"), "rb").read()
            start = struct.unpack("<I", data[4:8])[0]
            for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", data[start:start + 2])[0], 12):
                tag = struct.unpack("<H", data[entry:entry + 2])[0]
                if tag not in (256, 257, 258, 259, 273, 277, 278, 279, 284, 338): continue
                kind_was, count = struct.unpack("<HI", data[entry + 2:entry + 8])
                for kind in (0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 65535, "count-0"):
                    changed = bytearray(data)
                    if kind == "count-0": changed[entry + 4:entry + 8] = struct.pack("<I", 0)
                    else: changed[entry + 2:entry + 4] = struct.pack("<H", kind)
                    write(f"{source}-{tag}-type-{kind}.tif" if kind != "count-0" else f"{source}-{tag}-count-0.tif", bytes(changed))
                if tag == 278:
                    # A negative number of rows, as a signed SHORT (the count and entry otherwise as they were).
                    changed = bytearray(data)
                    changed[entry + 2:entry + 12] = struct.pack("<HIhH", 8, 1, -4, 0)
                    write(f"{source}-278-negative.tif", bytes(changed))
                # The same value written whole as an 8-byte integer (LONG8, SLONG8) after the file's end.
                if count == 1 and kind_was in (3, 4):
                    value = struct.unpack("<H" if kind_was == 3 else "<I", data[entry + 8:entry + (10 if kind_was == 3 else 12)])[0]
                    for kind in (16, 17):
                        changed = bytearray(data) + struct.pack("<q", value)
                        changed[entry + 2:entry + 12] = struct.pack("<HII", kind, 1, len(data))
                        write(f"{source}-{tag}-whole-{kind}.tif", bytes(changed))
            os.remove(path(source + ".tif"))
        verdicts()
        """;
}
