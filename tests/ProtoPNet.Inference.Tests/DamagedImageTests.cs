using System.Buffers.Binary;
using System.Diagnostics;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// Damaged files that the trainer's decoder (Pillow, through open_image) refuses are refused here too, rather than
/// decoded with what is missing painted black and classified: ImageSharp decoded every one of them (a WebP is decoded
/// with libwebp, Pillow's own decoder, which the test machine has). Each file is a
/// sound one, written by Pillow or by hand, with one kind of damage that a fuzzer met; the sound ones decode on both sides.
/// </summary>
public class DamagedImageTests
{
    /// <summary>The damaged files and what the refusal here says of each.</summary>
    private static readonly (string Name, string Reason)[] Damaged =
    [
        ("deflate-stream.tif", "The TIFF image is corrupt: its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)."),
        ("samples.tif", "The TIFF image is corrupt: its BitsPerSample gives 3 values, but its SamplesPerPixel is 1."),
        ("photometric.tif", "The TIFF image is corrupt: it has no PhotometricInterpretation to say what its 3 samples per pixel are."),
        ("predictor.tif", "The TIFF image is corrupt: its Predictor is 10, not 1, 2 or 3."),
        ("width.tif", "The TIFF image is corrupt: its strip 0 needs 38400 bytes at byte "),
        ("fax-8-bits.tif", "The TIFF image is corrupt: its BitsPerSample is 8, but its fax compression (4) codes 1 bit per sample, and libtiff refuses any other."),
        ("fax3-64-bits.tif", "The TIFF image is corrupt: its BitsPerSample is 64, but its fax compression (3) codes 1 bit per sample, and libtiff refuses any other."),
        ("crc.png", "The PNG image is corrupt: its tEXt chunk at byte 33 fails its CRC check."),
        ("chunk-name.png", "The PNG image is corrupt: the chunk at byte 33 has no chunk name (bytes 74405874)."),
        ("rle8-height.bmp", "The BMP image is corrupt: its RLE data gives 32 of the 8x40 pixels it declares."),
        ("rle4-height.bmp", "The BMP image is corrupt: its RLE data gives 32 of the 8x40 pixels it declares."),
        ("depth.bmp", "The BMP image is corrupt: its header declares 12 bits per pixel."),
        ("masks.bmp", "The BMP image is corrupt: its G colour mask 0x87E0 does not fit its 16-bit pixels beside the others."),
        ("palette-257.png", "The PNG image is corrupt: its palette (PLTE) holds 257 colours, more than 256."),
        ("empty-trns.png", "The PNG image is corrupt: its transparency chunk (tRNS) has 0 bytes, fewer than the 2 that give a grey image's transparent colour."),
        ("trns-257.png", "The PNG image is corrupt: its transparency chunk (tRNS) holds 257 alpha values, more than a palette's 256."),
        ("wide-frame.png", "The PNG image is corrupt: its animation frame (fcTL) of 9x4 at (0, 0) reaches past the 8x4 image."),
        ("masks-444.bmp", "The BMP image is corrupt: its 16-bit colour masks are not one of the layouts the trainer's Pillow reads"),
        ("two-bits.bmp", "The BMP image is corrupt: its header declares 2 bits per pixel, a depth the trainer's Pillow does not read."),
        ("compression-6.bmp", "The BMP image is corrupt: its compression 6 is not one the trainer's Pillow reads"),
        ("anim-twice.webp", "The WebP image is corrupt: libwebp's demuxer, with which Pillow opens every WebP, refuses its container"),
        ("header-16.bmp", "The BMP image is corrupt: its info header of 16 bytes is of a kind the trainer's Pillow does not read (it reads 12, 40, 64, 108, 124)."),
        ("header-52.bmp", "The BMP image is corrupt: its info header of 52 bytes is of a kind the trainer's Pillow does not read"),
        ("header-110.bmp", "The BMP image is corrupt: its info header of 110 bytes is of a kind the trainer's Pillow does not read"),
        ("start.jpg", "The JPEG image is corrupt: its start-of-image marker (FF D8) is followed by byte 00 where the next marker (FF) must begin."),
        ("hidden.gif", "The GIF image is corrupt: its blocks reach the trailer (3B) at byte "),
        ("cut-partition.webp", "The WebP image is corrupt: libwebp, the decoder Pillow uses, cannot decode its image data."),
        // The same checks' other branches, each of which a mutation audit changed unseen.
        ("old-deflate-stream.tif", "The TIFF image is corrupt: its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)."),
        ("short-deflate.tif", "The TIFF image is corrupt: its strip 0 of deflate data inflates to fewer than the 3600 bytes its rows need."),
        ("gap-mask.bmp", "The BMP image is corrupt: its G colour mask 0x7A0 does not fit its 16-bit pixels beside the others."),
        ("wide-mask.bmp", "The BMP image is corrupt: its R colour mask 0x1F800 does not fit its 16-bit pixels beside the others."),
        ("long-runs.bmp", "The BMP image is corrupt: its RLE data gives 32 of the 8x8 pixels it declares."),
        ("short-control.gif", "The GIF image is corrupt: its graphic control extension at byte 25 has 2 bytes of fields, fewer than 3."),
        ("short-transparent.gif", "The GIF image is corrupt: its graphic control extension at byte 25 has 3 bytes of fields, fewer than 4."),
        ("no-identifier.gif", "The GIF image is corrupt: its application extension at byte 25 has no identifier."),
        ("no-loop.gif", "The GIF image is corrupt: its NETSCAPE2.0 application extension at byte 25 has no loop data."),
        ("code-size-12.gif", "The GIF image is corrupt: its first image's LZW minimum code size is 12, beyond GIF's codes of at most 12 bits"),
        ("code-size-13.gif", "The GIF image is corrupt: its first image's LZW minimum code size is 13, beyond GIF's codes of at most 12 bits"),
        ("start-01.jpg", "The JPEG image is corrupt: its start-of-image marker (FF D8) is followed by byte 01 where the next marker (FF) must begin."),
        // Deflate strips that give their rows but are no whole zlib stream, which libdeflate (libtiff's inflater) refuses.
        ("checksum.tif", "The TIFF image is corrupt: its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)."),
        ("no-checksum.tif", "The TIFF image is corrupt: its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)."),
        ("open-stream.tif", "The TIFF image is corrupt: its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)."),
        ("rows-per-strip.tif", "The TIFF image is corrupt: its RowsPerStrip field gives 3 values, not one."),
        ("no-offsets.tif", "The TIFF image is corrupt: it has no StripOffsets to say where its pixels are."),
        ("renamed-offsets.tif", "The TIFF image is corrupt: it has no StripOffsets to say where its pixels are."),
        ("colours.bmp", "The BMP image is corrupt: its header declares a palette of 2147483650 colours, more than the 65536 a BMP may have."),
        // A zlib header that asks for a preset dictionary: .NET throws a ZLibException, not InvalidDataException (it was a 500).
        ("dictionary.tif", "The TIFF image is corrupt: its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)."),
        ("dictionary.png", "The PNG image is corrupt: its image data's zlib header (bytes 78 20) asks for a preset dictionary, which PNG does not allow."),
        ("zlib-check.png", "The PNG image is corrupt: its image data's zlib header (bytes 78 9D) fails its check."),
        // A deflate stream cut 4 bytes short: libdeflate reads the missing bits as zeros and fails (cut by 1, it fills the rows first: read).
        ("cut-4.tif", "The TIFF image is corrupt: its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)."),
        ("few-strips.tif", "The TIFF image is corrupt: it lists 4 strips, but its 30 rows, 7 to a strip, need 5."),
        ("twice.tif", "The TIFF image is corrupt: its ImageWidth field appears twice, as 40 and 80."),
        // A second Compression of 1: Pillow reads the deflate strip as raw rows (here too short for them), ImageSharp inflates it.
        ("compression-twice.tif", "The TIFF image is corrupt: its Compression field appears twice, as 8 and 1."),
        ("bits-twice.tif", "The TIFF image is corrupt: its BitsPerSample field appears twice, as 8,8,8 and 16."),
        ("fax-rgb.tif", "The TIFF image is corrupt: its BitsPerSample is 8,8,8, but its fax compression (4) codes 1 bit per sample, and libtiff refuses any other."),
        ("long-palette.bmp", "The BMP image is corrupt: its palette of 300 colours is more than the 256 a palette holds, and not a ramp of greys."),
    ];

    /// <summary>Damaged files the trainer reads into other pixels than ImageSharp would (so refused here), and the refusal of each.</summary>
    private static readonly (string Name, string Reason)[] ReadOtherwise =
    [
        // A grey ramp of 300 colours: Pillow reads the 1-bit pixels as 8-bit greys.
        ("ramp-1-bit.bmp", "The BMP image is corrupt: its palette of 300 colours is more than the 2 a 1-bit picture can use."),
    ];

    private static readonly string[] Sound = ["deflate.tif", "predicted.tif", "rgb.tif", "grey.tif", "fax.tif", "fax3.tif", "text.png", "rle8.bmp", "rle4.bmp", "rgb.bmp", "rgb565.bmp", "photo.jpg", "filled.jpg", "lost-marker.jpg", "small.gif", "empty-comment.gif", "photo.webp", "animation.webp",
        "strips.tif", "rle8-absolute.bmp", "rle4-absolute.bmp", "rle4-short-absolute.bmp", "rle8-delta.bmp", "one-fill.jpg",
        "long-stream.tif", "palette.bmp", "raw-predictor.tif", "grey-ramp.bmp", "cut-1.tif",
        "rows-twice.tif", "no-count.tif", "empty-first-idat.png", "bytewise-idat.png", "palette-769.png", "extra-byte-bad-checksum.png", "two-frame-controls.png", "trns-256.png"];

    [Fact]
    public void ADamagedFileTheTrainerRefusesIsRefusedHereAndItsSoundOriginalDecodes()
    {
        using var temporary = new TemporaryDirectory("protopnet-damaged-");
        var verdicts = Pillow.RunPython(WriteFiles, temporary.Path).Trim().Split('\n').Select(line => line.Trim().Split(' ', 2))
            .ToDictionary(parts => parts[0], parts => parts[1]);
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.True(LibWebp.IsAvailable, LibWebp.Description);
        Assert.True(LibWebpDemux.IsAvailable, LibWebpDemux.Description);
        Assert.True(LibDeflate.IsAvailable, LibDeflate.Description);

        foreach (var name in Sound)
        {
            Assert.True(verdicts[name] == "read", $"the trainer should read {name}: {verdicts[name]}");
            decoder.Decode(File.ReadAllBytes(Path.Combine(temporary.Path, name))).Dispose();
        }
        foreach (var (name, _) in Damaged) Assert.True(verdicts[name].StartsWith("refused", StringComparison.Ordinal), $"the trainer should refuse {name}, and reads it");
        foreach (var (name, _) in ReadOtherwise) Assert.True(verdicts[name] == "read", $"the trainer should read {name}: {verdicts[name]}");
        // Every file's answer, then one assertion: a failure lists each file not refused as it should be.
        var wrong = Damaged.Concat(ReadOtherwise).Select(file => (file.Name, file.Reason, Answer: Refusal(decoder, Path.Combine(temporary.Path, file.Name))))
            .Where(file => !file.Answer.StartsWith($"{ImageRejection.NotDecodable}: {file.Reason}", StringComparison.Ordinal))
            .Select(file => $"{file.Name}: {file.Answer}").ToArray();
        Assert.True(wrong.Length == 0, string.Join('\n', wrong));
    }

    /// <summary>
    /// The checks read offsets, counts and runs that the file declares: whatever the bytes, a file is decoded or refused,
    /// never answered with another exception (a 500). Every prefix of every file, and every byte of its first 96 set
    /// to 0x00, 0x7F and 0xFF.
    /// </summary>
    [Fact]
    public void EveryCutOrChangedCopyOfTheseFilesIsDecodedOrRefused()
    {
        using var temporary = new TemporaryDirectory("protopnet-damaged-");
        Pillow.RunPython(WriteFiles, temporary.Path);
        var decoder = new ImageDecoder(new ImageLimits());
        var copies = 0;
        foreach (var file in Directory.GetFiles(temporary.Path))
        {
            var bytes = File.ReadAllBytes(file);
            var changed = Enumerable.Range(0, Math.Min(bytes.Length, 96)).SelectMany(at => new byte[] { 0x00, 0x7F, 0xFF }.Select(value =>
            {
                var copy = (byte[])bytes.Clone();
                copy[at] = value;
                return copy;
            }));
            foreach (var copy in Enumerable.Range(1, bytes.Length - 1).Select(length => bytes[..length]).Concat(changed))
            {
                copies++;
                try
                {
                    decoder.Decode(copy).Dispose();
                }
                catch (ImageRejectedException)
                {
                    // refused with a problem of its own: a 4xx
                }
            }
        }
        Assert.True(copies > 10_000, $"only {copies} copies");
    }

    /// <summary>
    /// TIFF fields that point near 2^64 (the sums of offset and size wrapped, and a read threw: a 500) or declare billions
    /// of samples per pixel (summed one by one: seconds, or for ever): refused at once.
    /// </summary>
    [Fact]
    public void HostileTiffFieldsAreRefusedAtOnce()
    {
        const ulong NearTheEnd = 0xFFFFFFFFFFFFFFF8;
        (ushort, ushort, ulong, ulong)[] grey = [(256, 3, 1, 8), (257, 3, 1, 2), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 16, 1, 0), (278, 3, 1, 2), (279, 16, 1, 16)];
        (ushort, ushort, ulong, ulong)[] With(ushort tag, ushort type, ulong count, ulong value) =>
            [.. grey.Where(entry => entry.Item1 != tag).Append((tag, type, count, value)).OrderBy(entry => entry.Item1)];
        var cases = new (string Name, byte[] File, string Reason)[]
        {
            ("a Predictor of two values near 2^64", BigTiff(With(317, 16, 2, NearTheEnd)), "Truncated: The TIFF image is truncated: the TIFF tag 317 needs 16 bytes at byte 18446744073709551608"),
            ("a SamplesPerPixel of two values near 2^64", BigTiff(With(277, 16, 2, NearTheEnd)), "Truncated: The TIFF image is truncated: the TIFF tag 277 needs 16 bytes at byte 18446744073709551608"),
            ("a strip near 2^64", BigTiff(With(273, 16, 1, NearTheEnd)), "Truncated: The TIFF image is truncated: the TIFF image 0 strip or tile 0 needs 16 bytes at byte 18446744073709551608; the file ends after "),
            ("a first directory near 2^64", FirstDirectoryAt(NearTheEnd, BigTiff(grey)), "Truncated: The TIFF image is truncated: the TIFF data ends after 208 bytes, before image directory 0 at byte 18446744073709551608."),
            ("2^62 samples per pixel", BigTiff(With(277, 16, 1, 1UL << 62)), "NotDecodable: The TIFF image is corrupt: its SamplesPerPixel is 4611686018427387904, more than the 6 of any image the trainer reads."),
            // Rows of 8 x 65535 bits: a deflate bomb shared by every strip inflated for seconds before the bits were judged.
            ("65535 bits per sample", BigTiff(With(258, 3, 1, 65535)), "NotDecodable: The TIFF image is corrupt: its BitsPerSample makes more than the 64 bits per pixel of any TIFF the trainer reads."),
            // The decoder says int.MaxValue for a side beyond int's range: the refusal tells the header's own numbers.
            ("sides of 2^32 - 1", BigTiff([.. With(256, 4, 1, uint.MaxValue).Where(entry => entry.Item1 != 257).Append(((ushort)257, (ushort)4, 1UL, (ulong)uint.MaxValue)).OrderBy(entry => entry.Item1)]),
                "TooManyPixels: The TIFF image is 4294967295x4294967295 = 18446744065119617025 pixels; the limit is "),
            ("a side of 2^40", BigTiff(With(256, 16, 1, 1UL << 40)), "TooManyPixels: The TIFF image is 1099511627776x2 = 2199023255552 pixels; the limit is "),
        };
        var decoder = new ImageDecoder(new ImageLimits());
        foreach (var (name, file, reason) in cases)
        {
            var clock = Stopwatch.StartNew();
            var answer = Refusal(decoder, file);
            Assert.True(answer.StartsWith(reason, StringComparison.Ordinal), $"{name}: {answer}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"{name}: {clock.Elapsed.TotalSeconds:0.0} s");
        }
        Assert.Equal("decoded", Refusal(decoder, BigTiff(grey)));
        // ImageSharp cannot read this header itself; the check must not wrap its sum of bits past 2^64 either.
        Assert.Equal("its BitsPerSample makes more than the 64 bits per pixel of any TIFF the trainer reads",
            TiffStripData.FindCorruption(BigTiff(With(258, 16, 1, ulong.MaxValue))));
    }

    /// <summary>
    /// Every strip of a TIFF may point at one region: each was copied whole to be inflated (a 19 MB upload of 65,535 strips
    /// took 101 s), and each compressed strip is decoded from all its bytes (65,535 strips over one 100 KB run of empty
    /// deflate blocks: minutes, in ImageSharp too). Strips are read where they lie, and strips that claim more than 16 MB
    /// beyond the file's own bytes are refused at once; within that, strips sharing a region are sound.
    /// </summary>
    [Fact]
    public void StripsThatShareOneRegionAreJudgedQuickly()
    {
        var shared = SharedStripsTiff(strips: 8192, region: 4 << 20, claimed: 4 << 20);
        var clock = Stopwatch.StartNew();
        Assert.Equal($"its compressed strips claim more than {shared.Length + (16 << 20)} bytes of a {shared.Length}-byte file (strips that share their data are decoded again for each)",
            TiffStripData.FindCorruption(shared));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"{clock.Elapsed.TotalSeconds:0.0} s");

        var sound = SharedStripsTiff(strips: 8192, region: 4 << 20, claimed: 1024);
        clock.Restart();
        Assert.Null(TiffStripData.FindCorruption(sound));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"{clock.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>A grey deflate TIFF 64 pixels wide of one-row strips, each claiming <paramref name="claimed"/> bytes of one region (a row's zlib stream, then zeros).</summary>
    private static byte[] SharedStripsTiff(int strips, int region, int claimed)
    {
        const int Width = 64;
        var row = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(row, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true)) zlib.Write(new byte[Width]);
        // The data after the header: the region, then the strips' offsets (all 8, the region's start) and byte counts.
        var data = new byte[region + 8 * strips];
        row.ToArray().CopyTo(data, 0);
        for (var strip = 0; strip < strips; strip++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(region + 4 * strip), 8);
            BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(region + 4 * (strips + strip)), (uint)claimed);
        }
        uint offsetsAt = 8 + (uint)region, countsAt = offsetsAt + 4 * (uint)strips;
        return ClassicTiff(data, [(256, 4, 1, Width), (257, 4, 1, (uint)strips), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
            (273, 4, (uint)strips, offsetsAt), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, (uint)strips, countsAt)]);
    }

    /// <summary>
    /// Without libdeflate (a system without <c>libdeflate0</c>) deflate strips are judged as libtiff judges them with
    /// zlib: inflated until the rows are there, whatever follows; an error or too few bytes before that is refused.
    /// </summary>
    [Fact]
    public void WithoutLibDeflateStripsAreJudgedAsLibtiffDoesWithZlib()
    {
        var rows = Enumerable.Range(0, 8 * 4).Select(i => (byte)(i * 5)).ToArray();
        byte[] Deflated(byte[] pixels)
        {
            var stream = new MemoryStream();
            using (var zlib = new System.IO.Compression.ZLibStream(stream, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true)) zlib.Write(pixels);
            return stream.ToArray();
        }
        string? Judged(byte[] strip, bool withLibDeflate) => TiffStripData.FindCorruption(GreyDeflateTiff(8, 4, strip), withLibDeflate, rewrites: null);

        var whole = Deflated(rows);
        Assert.Null(Judged(whole, withLibDeflate: false));
        Assert.Null(Judged(whole[..^4], withLibDeflate: false));   // no checksum: zlib stops at the rows
        Assert.Equal("its strip 0 of deflate data inflates to 24 bytes; its rows need 32", Judged(Deflated(rows[..24]), withLibDeflate: false));
        var broken = (byte[])whole.Clone();
        broken[1] ^= 0x01;   // the header's check bits
        Assert.Equal("its strip 0 is not a sound zlib stream (zlib stops on an error in it before its rows)", Judged(broken, withLibDeflate: false));
        // libdeflate, given the same strips: the stream without its checksum fails there.
        Assert.Equal("its strip 0 is not a sound zlib stream (libdeflate, which libtiff inflates with, stops on an error in it)", Judged(whole[..^4], withLibDeflate: true));
        Assert.Equal("its strip 0 of deflate data inflates to fewer than the 32 bytes its rows need", Judged(Deflated(rows[..24]), withLibDeflate: true));
    }

    /// <summary>
    /// Subsampled YCbCr (the default subsampling is 2 by 2) packs fewer bytes a row than one sample per pixel: such a
    /// strip is left to the decoder (Pillow reads it; counted as full rows it was refused as short).
    /// </summary>
    [Fact]
    public void ASubsampledYCbCrStripIsNotCountedAsFullRows()
    {
        var stream = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(stream, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true)) zlib.Write(new byte[16 * 8 * 3 / 2]);
        (ushort, ushort, uint, uint)[] ycbcr = [(262, 3, 1, 6), (277, 3, 1, 3)];
        Assert.Null(TiffStripData.FindCorruption(GreyDeflateTiff(16, 8, stream.ToArray(), ycbcr)));
        Assert.Null(TiffStripData.FindCorruption(GreyDeflateTiff(16, 8, stream.ToArray(), [.. ycbcr, (530, 3, 2, 2 | 2 << 16)])));
        Assert.Equal("its strip 0 of deflate data inflates to fewer than the 384 bytes its rows need",
            TiffStripData.FindCorruption(GreyDeflateTiff(16, 8, stream.ToArray(), [.. ycbcr, (530, 3, 2, 1 | 1 << 16)])));
    }

    /// <summary>A little-endian grey TIFF of one deflate strip, with <paramref name="replaced"/> entries (tag, type, count, value) put in or added.</summary>
    private static byte[] GreyDeflateTiff(int width, int height, byte[] strip, params (ushort Tag, ushort Type, uint Count, uint Value)[] replaced)
    {
        (ushort Tag, ushort Type, uint Count, uint Value)[] basic =
            [(256, 3, 1, (uint)width), (257, 3, 1, (uint)height), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 8),
             (277, 3, 1, 1), (278, 3, 1, (uint)height), (279, 4, 1, (uint)strip.Length)];
        var entries = basic.Where(entry => replaced.All(other => other.Tag != entry.Tag)).Concat(replaced).OrderBy(entry => entry.Tag).ToArray();
        return ClassicTiff(strip, entries);
    }

    /// <summary>A little-endian classic TIFF: its header, <paramref name="data"/> from byte 8, then one directory of these entries (a SHORT of one value held as such, any other value field as a LONG).</summary>
    private static byte[] ClassicTiff(byte[] data, (ushort Tag, ushort Type, uint Count, uint Value)[] entries)
    {
        var directoryAt = 8 + data.Length + data.Length % 2;
        var file = new byte[directoryAt + 2 + 12 * entries.Length + 4];
        "II*\0"u8.CopyTo(file);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(4), (uint)directoryAt);
        data.CopyTo(file, 8);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(directoryAt), (ushort)entries.Length);
        for (var i = 0; i < entries.Length; i++)
        {
            var at = directoryAt + 2 + 12 * i;
            BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at), entries[i].Tag);
            BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at + 2), entries[i].Type);
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at + 4), entries[i].Count);
            if (entries[i].Type == 3 && entries[i].Count == 1) BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at + 8), (ushort)entries[i].Value);
            else BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at + 8), entries[i].Value);   // two SHORTs: the low one first
        }
        return file;
    }

    /// <summary>The BigTIFF with its first directory said to be at <paramref name="offset"/>.</summary>
    private static byte[] FirstDirectoryAt(ulong offset, byte[] bigTiff)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(bigTiff.AsSpan(8), offset);
        return bigTiff;
    }

    /// <summary>A little-endian BigTIFF of 8x2 grey pixels in one uncompressed strip, with these entries (tag, type, count, value); a StripOffsets of 0 points at the pixels.</summary>
    private static byte[] BigTiff((ushort Tag, ushort Type, ulong Count, ulong Value)[] entries)
    {
        const int Directory = 16;
        var pixels = Directory + 8 + 20 * entries.Length + 8;
        var file = new byte[pixels + 16];
        "II"u8.CopyTo(file);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(2), 43);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(4), 8);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(8), Directory);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(Directory), (ulong)entries.Length);
        for (var i = 0; i < entries.Length; i++)
        {
            var at = Directory + 8 + 20 * i;
            var (tag, type, count, value) = entries[i];
            BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at), tag);
            BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at + 2), type);
            BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at + 4), count);
            if (type == 3 && count == 1) BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at + 12), (ushort)value);
            else BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at + 12), tag == 273 && value == 0 ? (ulong)pixels : value);
        }
        for (var i = pixels; i < file.Length; i++) file[i] = (byte)(i * 7);
        return file;
    }

    private static string Refusal(ImageDecoder decoder, string file) => Refusal(decoder, File.ReadAllBytes(file));

    private static string Refusal(ImageDecoder decoder, byte[] file)
    {
        try
        {
            decoder.Decode(file).Dispose();
            return "decoded";
        }
        catch (ImageRejectedException refused)
        {
            return $"{refused.Rejection}: {refused.Message}";
        }
    }

    /// <summary>Writes each sound file and its damaged copies into argv[1]; prints "name read" or "name refused: why" per file.</summary>
    private const string WriteFiles = """
        import os, struct, sys, zlib
        from PIL import Image, PngImagePlugin, TiffImagePlugin
        from protopnet_trainer.image_files import UnreadableImageError, open_image
        folder = sys.argv[1]
        def path(name): return os.path.join(folder, name)
        def damaged(source, name, change):
            data = bytearray(open(path(source), "rb").read())
            change(data)
            open(path(name), "wb").write(data)
        def tiff_entry(data, tag):
            start = struct.unpack("<I", data[4:8])[0]
            for entry in range(start + 2, start + 2 + 12 * struct.unpack("<H", data[start:start + 2])[0], 12):
                if struct.unpack("<H", data[entry:entry + 2])[0] == tag: return entry
            raise KeyError(tag)
        def set_tiff_value(tag, value):
            def change(data): data[tiff_entry(data, tag) + 8:tiff_entry(data, tag) + 10] = struct.pack("<H", value)
            return change
        def strip_of(data): return struct.unpack("<I", data[tiff_entry(data, 273) + 8:tiff_entry(data, 273) + 12])[0]
        def strip_bytes(data): return struct.unpack("<I", data[tiff_entry(data, 279) + 8:tiff_entry(data, 279) + 12])[0]
        def rename_tiff_tag(tag, new):
            def change(data): data[tiff_entry(data, tag):tiff_entry(data, tag) + 2] = struct.pack("<H", new)
            return change

        picture = Image.new("RGB", (40, 30))
        picture.putdata([(x * 6, y * 8, (x * y) % 256) for y in range(30) for x in range(40)])
        picture.save(path("deflate.tif"), compression="tiff_adobe_deflate")
        picture.save(path("rgb.tif"))
        picture.convert("L").resize((24, 16)).save(path("grey.tif"))
        def break_stream(data):
            strip = struct.unpack("<I", data[tiff_entry(data, 273) + 8:tiff_entry(data, 273) + 12])[0]
            data[strip + 1] ^= 0x01   # the zlib header's check bits: ImageSharp decoded on
        damaged("deflate.tif", "deflate-stream.tif", break_stream)
        picture.save(path("predicted.tif"), compression="tiff_adobe_deflate", tiffinfo={317: 2})   # horizontal differencing
        damaged("predicted.tif", "predictor.tif", set_tiff_value(317, 10))
        damaged("rgb.tif", "samples.tif", set_tiff_value(277, 1))
        damaged("rgb.tif", "photometric.tif", rename_tiff_tag(262, 263))   # Threshholding: no PhotometricInterpretation left
        damaged("grey.tif", "width.tif", set_tiff_value(256, 2400))
        # Fax compression codes 1 bit per pixel: libtiff refuses another depth ("Bits/sample must be 1 for Group 3/4").
        picture.convert("1").save(path("fax.tif"), compression="group4")
        picture.convert("1").save(path("fax3.tif"), compression="group3")
        damaged("fax.tif", "fax-8-bits.tif", set_tiff_value(258, 8))
        damaged("fax3.tif", "fax3-64-bits.tif", set_tiff_value(258, 64))
        # Three samples of 8 bits, fax-compressed: libtiff refuses any other depth than 1 bit per sample.
        def fax_rgb(data): data[tiff_entry(data, 259) + 8:tiff_entry(data, 259) + 10] = struct.pack("<H", 4)
        damaged("rgb.tif", "fax-rgb.tif", fax_rgb)

        text = PngImagePlugin.PngInfo()
        text.add_text("note", "a chunk before the image data")
        picture.save(path("text.png"), pnginfo=text)
        def break_text(data): data[41] ^= 0x20   # a letter of the tEXt chunk at byte 33 (after IHDR)
        damaged("text.png", "crc.png", break_text)
        def rename_text(data): data[38] = ord("@")
        damaged("text.png", "chunk-name.png", rename_text)

        # Chunk values ImageSharp decodes past and Pillow cannot use: a palette of 257 colours, a grey image's empty
        # transparency chunk, an animation frame wider than the image.
        def png_chunk(kind, body): return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        def before_idat(chunk):
            def insert(data): at = data.index(b"IDAT") - 4; data[at:at] = chunk
            return insert
        palette = Image.new("P", (8, 4))
        palette.putpalette(bytes(range(48)))
        palette.save(path("palette.png"))
        def long_palette(data):
            at = data.index(b"PLTE") - 4
            length = struct.unpack(">I", data[at:at + 4])[0]
            data[at:at + 12 + length] = png_chunk(b"PLTE", bytes(3 * 257))
        damaged("palette.png", "palette-257.png", long_palette)
        def palette_of(length):
            def change(data):
                at = data.index(b"PLTE") - 4
                data[at:at + 12 + struct.unpack(">I", data[at:at + 4])[0]] = png_chunk(b"PLTE", bytes(length))
            return change
        damaged("palette.png", "palette-769.png", palette_of(3 * 256 + 1))   # 256 whole colours and a byte: Pillow reads it
        # Every row, then a byte more, then a wrong checksum: Pillow stops at the last row and reads the file.
        rows = b"".join(b"\x00" + bytes(range(y, y + 8)) for y in range(4))
        extra = zlib.compress(rows + b"\x00")
        open(path("extra-byte-bad-checksum.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 4, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", extra[:-4] + b"\xde\xad\xbe\xef") + png_chunk(b"IEND", b""))
        picture.convert("L").resize((8, 4)).save(path("grey.png"))
        damaged("grey.png", "empty-trns.png", before_idat(png_chunk(b"tRNS", b"")))
        damaged("palette.png", "trns-257.png", before_idat(png_chunk(b"tRNS", bytes(range(256)) + b"\x00")))   # "palette index out of range"
        damaged("palette.png", "trns-256.png", before_idat(png_chunk(b"tRNS", bytes(range(256)))))   # more than its 16 colours: read
        frame = struct.pack(">IIIIIHHBB", 0, 9, 4, 0, 0, 1, 10, 0, 0)   # sequence 0, 9x4 at (0, 0) of an 8x4 image
        damaged("grey.png", "wide-frame.png", before_idat(png_chunk(b"acTL", struct.pack(">II", 1, 0)) + png_chunk(b"fcTL", frame)))
        # Sound: two frame controls numbered 0 and 1, each within the image (the numbering is followed from one to the next).
        frames = [struct.pack(">IIIIIHHBB", n, 8, 4, 0, 0, 1, 10, 0, 0) for n in (0, 1)]
        damaged("grey.png", "two-frame-controls.png",
                before_idat(png_chunk(b"acTL", struct.pack(">II", 1, 0)) + b"".join(png_chunk(b"fcTL", f) for f in frames)))

        def bmp(bits, compression, colours, pixels, height=4, width=8, masks=b""):
            header_end = 14 + 40 + len(masks) + 4 * colours
            info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression, len(pixels), 2835, 2835, colours, 0)
            return b"BM" + struct.pack("<IHHI", header_end + len(pixels), 0, 0, header_end) + info + masks + \
                b"".join(struct.pack("<BBBB", v, v, v, 0) for v in range(0, 256, 256 // max(colours, 1)) if colours) + pixels
        rle8 = b"".join(bytes((8, row * 40, 0, 0)) for row in range(4)) + b"\x00\x01"
        open(path("rle8.bmp"), "wb").write(bmp(8, 1, 256, rle8))
        rle4 = b"".join(bytes((8, 0x10 * row + 3, 0, 0)) for row in range(4)) + b"\x00\x01"
        open(path("rle4.bmp"), "wb").write(bmp(4, 2, 16, rle4))
        def taller(data): data[22:26] = struct.pack("<i", 40)
        damaged("rle8.bmp", "rle8-height.bmp", taller)
        damaged("rle4.bmp", "rle4-height.bmp", taller)
        picture.resize((8, 4)).save(path("rgb.bmp"))
        def deeper(data): data[28:30] = struct.pack("<H", 12)
        damaged("rgb.bmp", "depth.bmp", deeper)
        masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
        open(path("rgb565.bmp"), "wb").write(bmp(16, 3, 0, bytes(range(64)), masks=masks))
        def overlapping(data): data[58:62] = struct.pack("<I", 0x87E0)
        damaged("rgb565.bmp", "masks.bmp", overlapping)
        # What ImageSharp reads and Pillow does not: 4-4-4 masks (whole runs, apart, but not a layout Pillow has), 2 bits
        # per pixel (Windows CE's), compression 6 (alpha bitfields).
        def masks_444(data): data[54:66] = struct.pack("<III", 0x0F00, 0x00F0, 0x000F)
        damaged("rgb565.bmp", "masks-444.bmp", masks_444)
        open(path("two-bits.bmp"), "wb").write(bmp(2, 0, 4, bytes(16)))
        def compression_6(data): data[30:34] = struct.pack("<I", 6)
        damaged("rgb565.bmp", "compression-6.bmp", compression_6)
        def short_header(data): data[14:18] = struct.pack("<I", 16)   # OS/2 2.x's 16-byte header: width, height, planes, bits
        damaged("rgb.bmp", "header-16.bmp", short_header)
        # Adobe's 52-byte header, and one between version 4's and 5's: ImageSharp read both.
        def header_of(size):
            def change(data): data[14:18] = struct.pack("<I", size)
            return change
        damaged("rgb.bmp", "header-52.bmp", header_of(52))
        damaged("rgb.bmp", "header-110.bmp", header_of(110))

        picture.save(path("photo.jpg"), quality=90)
        def stray_byte(data): data[2] = 0   # where the first marker after start-of-image begins
        damaged("photo.jpg", "start.jpg", stray_byte)
        # Sound, though unusual: fill bytes (FF) before a marker, after start-of-image and before the tables, as the
        # standard allows and libjpeg reads.
        def fill(data): data[2:2] = b"\xff\xff"; data[data.index(b"\xff\xdb", 4):data.index(b"\xff\xdb", 4)] = b"\xff\xff\xff"
        damaged("photo.jpg", "filled.jpg", fill)
        # Damaged, yet read by libjpeg with a warning: the first segment's marker code turned into FF, so FF FF 00 follows
        # start-of-image. No fill bytes to drop (FF 00 is no marker): decoded as before.
        def lose_marker(data): assert data[3] == 0xE0; data[3] = 0xFF
        damaged("photo.jpg", "lost-marker.jpg", lose_marker)

        # A GIF whose only image lies inside the data of an extension of an unknown label: Pillow passes over the
        # extension's data and meets the trailer; ImageSharp read the label alone and came upon the image.
        Image.new("P", (2, 2), 1).save(path("small.gif"))
        small = open(path("small.gif"), "rb").read()
        header = 13 + 3 * 2 ** ((small[10] & 7) + 1)
        image = small[small.index(b",", header):-1]   # the image descriptor and its data, without the trailer
        open(path("hidden.gif"), "wb").write(small[:header] + b"\x21\x99" + bytes((len(image),)) + image + b"\x00\x3b")

        # Extensions before the image that Pillow cannot read: a graphic control extension too short for its delay, or
        # for the transparent index its flags announce; an application extension with no identifier, or NETSCAPE2.0's
        # with no loop data.
        def before_image(name, extension):
            at = small.index(b",", header)
            open(path(name), "wb").write(small[:at] + extension + small[at:])
        before_image("short-control.gif", b"\x21\xf9\x02\x00\x00\x00")
        before_image("short-transparent.gif", b"\x21\xf9\x03\x01\x00\x00\x00")
        before_image("no-identifier.gif", b"\x21\xff\x00\x00")
        before_image("no-loop.gif", b"\x21\xff\x0bNETSCAPE2.0\x00")
        before_image("empty-comment.gif", b"\x21\xfe\x00")

        # An LZW minimum code size beyond GIF's 12-bit codes: Pillow refuses it, ImageSharp decoded garbage.
        def code_size(name, bits):
            at = small.index(b",", header) + 10
            open(path(name), "wb").write(small[:at] + bytes((bits,)) + small[at + 1:])
        code_size("code-size-12.gif", 12)
        code_size("code-size-13.gif", 13)

        # A lossy WebP whose data ends two bytes into its coefficients, its chunk and RIFF sizes made to agree: whole as
        # chunks, but libwebp runs out of data (ImageSharp read zeros on).
        picture.save(path("photo.webp"), quality=80)
        def cut_partition(data):
            assert data[12:16] == b"VP8 "
            keep = 10 + ((data[20] | data[21] << 8 | data[22] << 16) >> 5) + 2   # frame header, first partition, 2 bytes
            del data[20 + keep:]
            if keep % 2: data.append(0)   # a chunk's padding byte
            data[16:20] = struct.pack("<I", keep)
            data[4:8] = struct.pack("<I", len(data) - 8)
        damaged("photo.webp", "cut-partition.webp", cut_partition)
        # An animation whose ANIM chunk is repeated, its RIFF size left as it was (14 bytes short of its chunks, a fuzzer's
        # find): libwebp's demuxer, through which Pillow opens every WebP, refuses the container; the frames here read on.
        picture.save(path("animation.webp"), save_all=True, append_images=[picture.rotate(90)], duration=100)
        def anim_twice(data):
            at = data.index(b"ANIM")
            data[at:at] = data[at:at + 8 + struct.unpack("<I", data[at + 4:at + 8])[0]]
        damaged("animation.webp", "anim-twice.webp", anim_twice)

        # Deflate strips as an older writer marks them (Compression 32946), one of them broken.
        damaged("deflate-stream.tif", "old-deflate-stream.tif", set_tiff_value(259, 32946))
        # A whole zlib stream of 40 bytes fewer than the rows need.
        def short_stream(data):
            rows = zlib.decompress(bytes(data[strip_of(data):strip_of(data) + strip_bytes(data)]))
            shorter = zlib.compress(rows[:-40])
            data[tiff_entry(data, 273) + 8:tiff_entry(data, 273) + 12] = struct.pack("<I", len(data))
            data[tiff_entry(data, 279) + 8:tiff_entry(data, 279) + 12] = struct.pack("<I", len(shorter))
            data += shorter
        damaged("deflate.tif", "short-deflate.tif", short_stream)
        # Strips of 7 rows, the last one shorter (30 rows): each inflates to its own rows.
        TiffImagePlugin.STRIP_SIZE, strip_size = 7 * 40 * 3, TiffImagePlugin.STRIP_SIZE   # Pillow's bytes per strip
        picture.save(path("strips.tif"), compression="tiff_adobe_deflate")
        TiffImagePlugin.STRIP_SIZE = strip_size
        assert Image.open(path("strips.tif")).tag_v2[278] == 7

        def set_mask(index, mask):
            def change(data): data[54 + 4 * index:58 + 4 * index] = struct.pack("<I", mask)
            return change
        damaged("rgb565.bmp", "gap-mask.bmp", set_mask(1, 0x07A0))     # green with a gap
        damaged("rgb565.bmp", "wide-mask.bmp", set_mask(0, 0x1F800))  # red past the pixel's 16 bits
        # RLE rows of runs longer than the row (cut at its end), so 8x8 pixels need eight rows, not four.
        open(path("long-runs.bmp"), "wb").write(bmp(8, 1, 256, bytes((12, 80, 0, 0)) * 4 + b"\x00\x01", height=8))
        # Sound RLE: absolute runs (padded to a word in RLE8), and a delta that skips two rows.
        absolute8 = b"".join(bytes((0, 3, row, row + 1, row + 2, 0, 5, 200, 0, 0)) for row in range(4)) + b"\x00\x01"
        open(path("rle8-absolute.bmp"), "wb").write(bmp(8, 1, 256, absolute8))
        absolute4 = b"".join(bytes((0, 8, 0x12, 0x34, 0x56, 0x78, 0, 0)) for row in range(4)) + b"\x00\x01"
        open(path("rle4-absolute.bmp"), "wb").write(bmp(4, 2, 16, absolute4))
        # An absolute run of 4 pixels (2 bytes) and an encoded run of 12 make the one row of 16.
        open(path("rle4-short-absolute.bmp"), "wb").write(bmp(4, 2, 16, bytes((0, 4, 0x12, 0x34, 12, 0x56, 0, 1)), height=1, width=16))
        open(path("rle8-delta.bmp"), "wb").write(bmp(8, 1, 256, bytes((8, 40, 0, 2, 0, 2, 8, 120, 0, 1))))

        def other_byte(data): data[2] = 1
        damaged("photo.jpg", "start-01.jpg", other_byte)
        def one_fill(data): at = data.index(b"\xff\xdb", 4); data[at:at] = b"\xff"
        damaged("photo.jpg", "one-fill.jpg", one_fill)

        def restream(make):
            def change(data):
                rows = zlib.decompress(bytes(data[strip_of(data):strip_of(data) + strip_bytes(data)]))
                stream = make(rows)
                data[tiff_entry(data, 273) + 8:tiff_entry(data, 273) + 12] = struct.pack("<I", len(data))
                data[tiff_entry(data, 279) + 8:tiff_entry(data, 279) + 12] = struct.pack("<I", len(stream))
                data += stream
            return change
        def break_checksum(data): data[strip_of(data) + strip_bytes(data) - 1] ^= 0x01   # the stream's Adler-32, its last byte
        damaged("deflate.tif", "checksum.tif", break_checksum)
        damaged("deflate.tif", "no-checksum.tif", restream(lambda rows: zlib.compress(rows)[:-4]))
        def flushed(rows):
            stream = zlib.compressobj()
            return stream.compress(rows) + stream.flush(zlib.Z_SYNC_FLUSH)   # every row, and no last block
        damaged("deflate.tif", "open-stream.tif", restream(flushed))
        # Sound: a stream that goes on past the rows (as a writer that pads its last strip makes it) is cut at them.
        damaged("deflate.tif", "long-stream.tif", restream(lambda rows: zlib.compress(rows + bytes(120))))
        def rows_per_strip_values(data):
            entry = tiff_entry(data, 278)
            data[entry + 2:entry + 12] = struct.pack("<HII", 4, 3, len(data))   # three LONGs of 0 at the file's end
            data += bytes(12)
        damaged("rgb.tif", "rows-per-strip.tif", rows_per_strip_values)
        def no_offsets(data): data[tiff_entry(data, 273) + 4:tiff_entry(data, 273) + 8] = struct.pack("<I", 0)
        damaged("rgb.tif", "no-offsets.tif", no_offsets)
        damaged("rgb.tif", "renamed-offsets.tif", rename_tiff_tag(273, 272))
        picture.resize((8, 4)).convert("P").save(path("palette.bmp"))
        def many_colours(data): data[46:50] = struct.pack("<I", 2 ** 31 + 2)
        damaged("palette.bmp", "colours.bmp", many_colours)

        def ask_for_dictionary(at):
            def change(data): data[at(data):at(data) + 2] = b"\x78\x20"   # a valid header (a multiple of 31) with FDICT set
            return change
        damaged("deflate.tif", "dictionary.tif", ask_for_dictionary(strip_of))
        def png_dictionary(data):
            idat = data.index(b"IDAT") - 4
            length = struct.unpack(">I", data[idat:idat + 4])[0]
            ask_for_dictionary(lambda data: idat + 8)(data)
            data[idat + 8 + length:idat + 12 + length] = struct.pack(">I", zlib.crc32(bytes(data[idat + 4:idat + 8 + length])))
        damaged("text.png", "dictionary.png", png_dictionary)
        # Sound: a Predictor on uncompressed strips, which no reader applies (libtiff reads it for LZW and deflate only).
        picture.save(path("raw-predictor.tif"), tiffinfo={317: 4})

        def cut_stream(cut):
            def change(data): data[tiff_entry(data, 279) + 8:tiff_entry(data, 279) + 12] = struct.pack("<I", strip_bytes(data) - cut)
            return change
        damaged("deflate.tif", "cut-1.tif", cut_stream(1))
        damaged("deflate.tif", "cut-4.tif", cut_stream(4))
        def fewer_strips(data):
            for tag in (273, 279): data[tiff_entry(data, tag) + 4:tiff_entry(data, tag) + 8] = struct.pack("<I", 4)
        damaged("strips.tif", "few-strips.tif", fewer_strips)
        def width_twice(data):
            entry = tiff_entry(data, 284)   # PlanarConfiguration (1, the default) turned into a second ImageWidth
            data[entry:entry + 12] = struct.pack("<HHII", 256, 3, 1, 80)
        damaged("rgb.tif", "twice.tif", width_twice)
        def bmp_palette(colours, grey):
            entries = b"".join(bytes((i & 255,) * 3 if grey else ((i * 7) & 255, i & 255, (i * 3) & 255)) + b"\0" for i in range(colours))
            data = bytearray(bmp(8, 0, 0, bytes(range(32)), masks=entries))   # the palette where masks would go, after the header
            data[46:50] = struct.pack("<I", colours)
            return data
        open(path("long-palette.bmp"), "wb").write(bmp_palette(300, grey=False))
        open(path("grey-ramp.bmp"), "wb").write(bmp_palette(300, grey=True))   # Pillow reads a longer palette of greys as grey
        def second_field(tag, value):
            def change(data):
                entry = tiff_entry(data, 284)   # PlanarConfiguration (1, the default) turned into a second field
                data[entry:entry + 12] = struct.pack("<HHII", tag, 3, 1, value)
            return change
        damaged("deflate.tif", "compression-twice.tif", second_field(259, 1))
        damaged("strips.tif", "rows-twice.tif", second_field(278, 8))   # both decoders take the first: read alike
        damaged("strips.tif", "bits-twice.tif", second_field(258, 16))   # Pillow takes the last, 16 bits: refused
        def no_count(data): data[tiff_entry(data, 279) + 8:tiff_entry(data, 279) + 12] = struct.pack("<I", 0)
        damaged("deflate.tif", "no-count.tif", no_count)   # one strip: libtiff reads it to the file's end
        def ramp_1_bit(data):
            data[28:30] = struct.pack("<H", 1)   # the 8-bit grey ramp's pixels read as 1-bit ones
        damaged("grey-ramp.bmp", "ramp-1-bit.bmp", ramp_1_bit)
        # Sound: the image data split into IDAT chunks anywhere, the first of them empty, or each one byte (ImageSharp read
        # the zlib header from the first chunk alone).
        def split_image_data(sizes):
            def change(data):
                idat = data.index(b"IDAT") - 4
                length = struct.unpack(">I", data[idat:idat + 4])[0]
                stream, parts = bytes(data[idat + 8:idat + 8 + length]), []
                for size in sizes(len(stream)):
                    parts.append(stream[:size])
                    stream = stream[size:]
                chunks = b"".join(struct.pack(">I", len(part)) + b"IDAT" + part + struct.pack(">I", zlib.crc32(b"IDAT" + part)) for part in parts)
                data[idat:idat + 12 + length] = chunks
            return change
        damaged("text.png", "empty-first-idat.png", split_image_data(lambda total: [0, total]))
        damaged("text.png", "bytewise-idat.png", split_image_data(lambda total: [1] * total))
        def zlib_check_bits(data):
            idat = data.index(b"IDAT") - 4
            length = struct.unpack(">I", data[idat:idat + 4])[0]
            data[idat + 9] ^= 0x01
            data[idat + 8 + length:idat + 12 + length] = struct.pack(">I", zlib.crc32(bytes(data[idat + 4:idat + 8 + length])))
        damaged("text.png", "zlib-check.png", zlib_check_bits)

        for name in sorted(os.listdir(folder)):
            try:
                open_image(path(name))
                print(name, "read")
            except UnreadableImageError as error:
                print(name, "refused:", error.reason)
        """;
}
