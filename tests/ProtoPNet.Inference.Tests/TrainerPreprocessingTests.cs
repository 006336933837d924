using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The service's preprocessing (decode, colour space, stretch resize, tensor) of a non-uniform image equals the
/// trainer's (PIL through torchvision, src/trainer/protopnet_trainer/data.py ImageSet) for the same file, bit for bit:
/// both resize in PIL's integer arithmetic (22-bit fixed-point weights, 8-bit rounding after each pass) and divide the
/// same 8-bit values by 255 in float32, so no rounding is left to tolerate. (With ImageSharp's float resamplers, about
/// one value in twenty was one 8-bit step off, and a bicubic enlargement up to nine steps.)
/// </summary>
public class TrainerPreprocessingTests(ITestOutputHelper output)
{
    private static readonly (int Width, int Height, int Channels, int InputWidth, int InputHeight, string Interpolation, string Contrast, bool Draft)[] AllCases =
    [
        (45, 37, 3, 32, 32, "bilinear", "none", false),   // odd width: a half-transparent PNG (see PictureFile), composited over white first
        (45, 37, 1, 28, 28, "bilinear", "none", false),
        (97, 61, 3, 32, 32, "bilinear", "none", false),   // shrink, both axes by different factors
        (97, 61, 3, 32, 32, "bicubic", "none", false),
        (300, 200, 3, 32, 32, "bilinear", "none", false), // shrink by about 9: the kernel widens
        (640, 480, 3, 224, 224, "bilinear", "none", false), // a photo into a ResNet's input (the vectorised passes, row ends)
        (480, 640, 3, 224, 224, "bicubic", "none", false),
        // JPEG files: the service decodes them with libjpeg-turbo, the library Pillow decodes with (TurboJpeg).
        (641, 479, 3, 224, 224, "bilinear", "none", false), // a photo, 4:2:0 chroma
        (121, 91, 1, 28, 28, "bilinear", "none", false),   // into a grey model, 4:4:4 chroma
        (93, 71, 1, 28, 28, "bilinear", "auto", false),    // a product shot, as the scorecard's product-shot set is
        (20, 13, 3, 32, 32, "bilinear", "none", false),   // enlarge
        (20, 13, 3, 32, 32, "bicubic", "none", false),
        (61, 97, 1, 28, 28, "bilinear", "none", false),   // grey: PIL converts to L first, then resizes
        (32, 32, 3, 32, 32, "bilinear", "none", false),   // already the model's size: no resize on either side
        (97, 32, 3, 32, 32, "bilinear", "none", false),   // only the width changes
        (32, 61, 3, 32, 32, "bicubic", "none", false),    // only the height changes
        (97, 61, 3, 32, 32, "nearest", "none", false),
        (20, 13, 3, 32, 32, "nearest", "none", false),
        // The contrast step (input.contrast "auto", contrast.py / ContrastNormalizer): product-like photos on a light
        // ground are inverted and stretched; the gradient picture (mixed border) is only stretched.
        (90, 70, 1, 28, 28, "bilinear", "auto", false),
        (90, 70, 3, 32, 32, "bicubic", "auto", false),
        (64, 64, 1, 28, 28, "bilinear", "auto", false),
        (45, 37, 3, 32, 32, "bilinear", "auto", false),
        // JPEGs decoded at a reduced DCT scale (input.jpegDraft; Pillow's draft in the trainer, TurboJPEG's scaling here).
        (641, 479, 3, 224, 224, "bilinear", "none", true),   // 1/2: 321x240, 4:2:0
        (1000, 900, 3, 224, 224, "bicubic", "none", true),   // 1/4: 250x225
        (1211, 911, 3, 112, 112, "bilinear", "none", true),  // 1/8: 152x114, 4:4:4
        (121, 91, 1, 28, 28, "bilinear", "none", true),     // 1/2 into a grey model
        (1000, 601, 3, 224, 224, "bilinear", "none", true),  // EXIF orientation 6: turned upright after the 1/2 decode
        (300, 200, 3, 32, 32, "bilinear", "none", true),    // a PNG: no DCT to scale, decoded in full on both sides
        // Inputs that are not square (a bundle's input.height != input.width): each side resized to its own length, and
        // the draft scale chosen for both (a 140x60 input takes 1/8 of 1211x911; the sides swapped would take 1/4).
        (97, 61, 3, 40, 24, "bilinear", "none", false),
        (97, 61, 3, 24, 40, "bicubic", "none", false),
        (20, 13, 3, 48, 20, "bicubic", "none", false),
        (90, 70, 1, 36, 20, "bilinear", "auto", false),
        (1211, 911, 3, 140, 60, "bilinear", "none", true),
        (1000, 601, 3, 70, 120, "bilinear", "none", true),   // upright 601x1000: 1/8 (for 120x70 it would be 1/4)
    ];

    public static TheoryData<int, int, int, int, int, string, string, bool> Cases()
    {
        var cases = new TheoryData<int, int, int, int, int, string, string, bool>();
        foreach (var (width, height, channels, inputWidth, inputHeight, interpolation, contrast, draft) in AllCases)
            cases.Add(width, height, channels, inputWidth, inputHeight, interpolation, contrast, draft);
        return cases;
    }

    /// <summary>The trainer's tensor of every case, made by one Python run (importing torch takes seconds).</summary>
    private static readonly Lazy<(float[] Tensor, bool Inverted)[]> TrainerTensors = new(() => ComputeTrainerTensors(AllCases));

    [Theory]
    [MemberData(nameof(Cases))]
    public void ServiceTensorEqualsTheTrainersPilTensor(int width, int height, int channels, int inputWidth, int inputHeight, string interpolation,
        string contrast, bool draft)
    {
        var file = PictureFile(width, height);

        var input = new InputSection
        {
            Channels = channels, Height = inputHeight, Width = inputWidth, ColorSpace = channels == 1 ? "gray" : "rgb", Interpolation = interpolation,
            Contrast = contrast, JpegDraft = draft,
        };
        var service = new float[channels * inputHeight * inputWidth];
        bool inverted;
        using (var decoded = new ImageDecoder(new ImageLimits()).DecodeFor(file, input))
        {
            inverted = InputTensorWriter.Write(decoded.Pixels, input, service, 0);
            var upright = IsTurned(width, height) ? (height, width) : (width, height);
            Assert.Equal(upright, (decoded.Width, decoded.Height));   // the upload's size, however it was decoded
            var scale = draft && JpegChroma(width, height) is not null ? ImageDecoder.JpegDraftScale(width, height, inputWidth, inputHeight, IsTurned(width, height)) : 1;
            Assert.Equal(((upright.Item1 + scale - 1) / scale, (upright.Item2 + scale - 1) / scale), (decoded.Pixels.Width, decoded.Pixels.Height));
            if (draft && JpegChroma(width, height) is not null) Assert.True(scale > 1, $"the case {width}x{height} -> {inputWidth}x{inputHeight} should decode at a reduced scale");
        }
        var (trainer, trainerInverted) = TrainerTensors.Value[Array.IndexOf(AllCases, (width, height, channels, inputWidth, inputHeight, interpolation, contrast, draft))];
        // The product-like pictures, on a light ground, are inverted by the contrast step on both sides.
        Assert.Equal(trainerInverted, inverted);
        if (contrast == "auto" && IsProductPicture(width, height)) Assert.True(inverted);
        if (contrast == "auto") Assert.Equal(0f, service.Min());
        Assert.Equal(service.Length, trainer.Length);

        var differing = Enumerable.Range(0, service.Length).Where(i => service[i] != trainer[i]).ToArray();
        var largest = differing.Select(i => Math.Abs(service[i] - trainer[i])).DefaultIfEmpty(0f).Max();
        output.WriteLine($"{width}x{height} -> {inputWidth}x{inputHeight} {interpolation}, {channels} channel(s): {differing.Length} of {service.Length} " +
                         $"values differ, by at most {largest * 255:0.###}/255");
        Assert.True(differing.Length == 0, $"{differing.Length} of {service.Length} values differ from the trainer's, by up to {largest * 255:0.###}/255; " +
                                           $"the first at index {differing.FirstOrDefault()}");
        // The picture is not uniform: a resampler that ignored its content could not pass by luck.
        // (A grey product picture's garment spans fewer 8-bit levels than the gradients: about 90 distinct values.)
        var enough = IsProductPicture(width, height) ? 50 : 100;
        Assert.True(trainer.Distinct().Count() > enough, $"only {trainer.Distinct().Count()} distinct values");
    }

    [Fact]
    public void ASixteenBitGreyPngDecodesToTheTrainersEightBitValues()
    {
        // 16-bit greyscale (scans, medical and microscope images): PIL's own conversion to 8 bits clips every value above
        // 255 to white; the trainer rounds as the service's decoder does.
        var (ours, theirs) = GreyRampDecodedByBoth("g16.png", """
            # Every 16-bit value's neighbourhood that rounds differently: a ramp over the range.
            values = (np.arange(64 * 48, dtype=np.int64) * 65535 // (64 * 48 - 1)).astype(np.uint16).reshape(48, 64)
            values[0, :8] = [0, 128, 129, 383, 385, 32767, 33023, 65535]
            picture = Image.fromarray(values, "I;16")
            """);
        Assert.Equal(theirs, ours);
    }

    /// <summary>
    /// A TIFF's Orientation tag, each of its eight values, in a file Pillow writes plain and deflated: both sides see the
    /// picture upright and alike. (The service ignored the tag, which the decoder leaves out of the EXIF profile; the
    /// trainer's Pillow 9 applied it twice, turning a picture stored on its side upside down.)
    /// </summary>
    [Fact]
    public void ATiffsOrientationIsAppliedAsInTheTrainer()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-");
        var directory = temporary.Path;
        var png = Path.Combine(directory, "p.png");
        using (var picture = Picture(46, 30)) File.WriteAllBytes(png, TestImages.Encode(picture, TestImages.Png));
        var sizes = Pillow.RunPython("""
            import os, sys
            import numpy as np
            from PIL import Image
            from protopnet_trainer.image_files import open_image
            picture = Image.open(sys.argv[1]).convert("RGB")
            for compression in ("raw", "tiff_deflate"):
                for orientation in range(1, 9):
                    path = os.path.join(sys.argv[2], f"{compression}-{orientation}.tif")
                    picture.save(path, compression=compression, tiffinfo={0x0112: orientation})
                    decoded = open_image(path)
                    np.asarray(decoded, dtype=np.uint8).tofile(path + ".rgb")
                    print(decoded.size[0], decoded.size[1])
            """, png, directory).Trim().Split('\n');
        Assert.Equal(16, sizes.Length);
        using var upright = Image.Load<Rgb24>(png);
        for (var i = 0; i < 16; i++)
        {
            var (compression, orientation) = (i < 8 ? "raw" : "tiff_deflate", i % 8 + 1);
            var file = Path.Combine(directory, $"{compression}-{orientation}.tif");
            var input = new InputSection { Channels = 3, Height = 30, Width = 46, ColorSpace = "rgb" };
            using var decoded = new ImageDecoder(new ImageLimits()).DecodeFor(File.ReadAllBytes(file), input);
            var turned = orientation >= 5;
            Assert.Equal(turned ? "30 46" : "46 30", sizes[i].Trim());
            Assert.Equal(turned ? (30, 46) : (46, 30), (decoded.Pixels.Width, decoded.Pixels.Height));
            var ours = new byte[decoded.Pixels.Width * decoded.Pixels.Height * 3];
            decoded.Pixels.CopyPixelDataTo(ours);
            Assert.True(File.ReadAllBytes(file + ".rgb").SequenceEqual(ours), $"{compression}, orientation {orientation}: the pixels differ from the trainer's");
        }
    }

    /// <summary>
    /// The Orientation tag as other writers store it: a LONG, a LONG8 (BigTIFF), two values (the first counts), values
    /// stored at an offset, big-endian, out of range. Both sides read it alike (the service read only one SHORT).
    /// </summary>
    [Fact]
    public void ATiffsOrientationIsReadAsTheTrainerReadsItHoweverItIsStored()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-tags-");
        var directory = temporary.Path;
        var answers = Pillow.RunPython("""
            import os, struct, sys
            import numpy as np
            from protopnet_trainer.image_files import open_image
            pixels = bytes([10, 20, 30, 40, 50, 60])   # 3 x 2, 8-bit grey, one strip right after the header

            def tiff(orientation, order="<", big=False):
                # orientation: (type, count, values) of tag 274; values that do not fit in the entry go after it.
                kind, count, values = orientation
                value_size, entry_size = (8, 20) if big else (4, 12)
                fmt = {3: "H", 4: "I", 16: "Q"}[kind]
                strip = 16 if big else 8
                ifd = strip + len(pixels)
                header = (b"II" if order == "<" else b"MM") + (struct.pack(order + "HHHQ", 43, 8, 0, ifd) if big else struct.pack(order + "HI", 42, ifd))
                tags = [(256, 3, 1, [3]), (257, 3, 1, [2]), (258, 3, 1, [8]), (259, 3, 1, [1]), (262, 3, 1, [1]),
                        (273, 4, 1, [strip]), (274, kind, count, values), (277, 3, 1, [1]), (278, 3, 1, [2]), (279, 4, 1, [6])]
                extra_at = ifd + (8 if big else 2) + len(tags) * entry_size + value_size
                body, extra = struct.pack(order + ("Q" if big else "H"), len(tags)), b""
                for tag, typ, n, vals in tags:
                    data = struct.pack(order + {3: "H", 4: "I", 16: "Q"}[typ] * len(vals), *vals)
                    if len(data) > value_size:
                        field = struct.pack(order + ("Q" if big else "I"), extra_at + len(extra))
                        extra += data
                    else:
                        field = data.ljust(value_size, b"\0")
                    body += struct.pack(order + "HH", tag, typ) + struct.pack(order + ("Q" if big else "I"), n) + field
                body += bytes(value_size)   # no next directory
                return header + pixels + body + extra

            cases = {"short": tiff((3, 1, [6])), "short-be": tiff((3, 1, [6]), ">"), "long": tiff((4, 1, [6])),
                     "long-be": tiff((4, 1, [8]), ">"), "two-shorts": tiff((3, 2, [6, 1])), "two-longs": tiff((4, 2, [8, 1])),
                     "big-long8": tiff((16, 1, [6]), big=True), "big-short": tiff((3, 1, [3]), big=True),
                     "zero": tiff((3, 1, [0])), "nine": tiff((4, 1, [9]))}
            for name, data in cases.items():
                path = os.path.join(sys.argv[1], name + ".tif")
                with open(path, "wb") as f:
                    f.write(data)
                picture = open_image(path)
                print(name, picture.size[0], picture.size[1], ",".join(str(v) for v in np.asarray(picture)[..., 0].ravel()))
            """, directory).Trim().Split('\n');
        Assert.Equal(10, answers.Length);
        foreach (var answer in answers)
        {
            var (name, trainer) = (answer.Split(' ')[0], answer.Trim());
            var file = File.ReadAllBytes(Path.Combine(directory, name + ".tif"));
            var input = new InputSection { Channels = 1, Height = 2, Width = 3, ColorSpace = "gray" };
            using var decoded = new ImageDecoder(new ImageLimits()).DecodeFor(file, input);
            var grey = new List<byte>();
            for (var y = 0; y < decoded.Pixels.Height; y++)
            for (var x = 0; x < decoded.Pixels.Width; x++) grey.Add(decoded.Pixels[x, y].R);
            Assert.Equal(trainer, $"{name} {decoded.Pixels.Width} {decoded.Pixels.Height} {string.Join(",", grey)}");
        }
        // The cases turn the picture as they should: a test that both sides ignore the tag could not pass.
        Assert.Contains("long 2 3 40,10,50,20,60,30", answers.Select(a => a.Trim()));
        Assert.Contains("nine 3 2 10,20,30,40,50,60", answers.Select(a => a.Trim()));
    }

    /// <summary>
    /// A bilevel TIFF as Pillow writes it uncompressed, with no BitsPerSample tag (one bit, the tag's default): the
    /// decoder refused it for the missing tag; it decodes to the trainer's pixels.
    /// </summary>
    [Fact]
    public void ABilevelTiffWithoutBitsPerSampleDecodesAsInTheTrainer()
    {
        using var temporary = new TemporaryDirectory("protopnet-bilevel-");
        var directory = temporary.Path;
        var sizes = Pillow.RunPython("""
            import os, sys
            import numpy as np
            from PIL import Image
            from protopnet_trainer.image_files import open_image
            picture = Image.new("1", (37, 21), 1)
            picture.paste(0, (3, 2, 20, 15))
            for name in ("bilevel.tif",):
                path = os.path.join(sys.argv[1], name)
                picture.save(path)   # uncompressed: Pillow's own writer, which leaves the tag out
                assert 258 not in Image.open(path).tag_v2
                decoded = open_image(path)
                np.asarray(decoded, dtype=np.uint8).tofile(path + ".rgb")
                print(name, decoded.size[0], decoded.size[1])
            """, directory).Trim().Split('\n').Select(line => line.Trim()).ToArray();
        Assert.Equal(["bilevel.tif 37 21"], sizes);
        foreach (var name in (string[])["bilevel.tif"])
        {
            var ours = ServicePixels(Path.Combine(directory, name), new InputSection { Channels = 3, Height = 21, Width = 37, ColorSpace = "rgb" });
            var theirs = File.ReadAllBytes(Path.Combine(directory, name + ".rgb"));
            Assert.True(theirs.SequenceEqual(ours), $"{name}: {Enumerable.Range(0, ours.Length).Count(i => ours[i] != theirs[i])} values differ");
            Assert.Equal([0, 255], theirs.Distinct().Order().Select(v => (int)v));
        }
    }

    /// <summary>
    /// The forms the trainer warns of (image_check.form_the_service_refuses): Pillow reads them, this decoder refuses
    /// them. Should the decoder learn one, this fails, and the trainer's warning must drop it.
    /// </summary>
    [Fact]
    public void TheFormsTheTrainerWarnsOfAreTheOnesRefusedHere()
    {
        using var temporary = new TemporaryDirectory("protopnet-forms-");
        var directory = temporary.Path;
        var forms = Pillow.RunPython("""
            import os, sys
            from PIL import Image
            from protopnet_trainer.image_check import form_the_service_refuses
            from protopnet_trainer.image_files import open_image
            Image.new("CMYK", (24, 16), (0, 200, 200, 0)).save(os.path.join(sys.argv[1], "cmyk.tif"))
            frames = [Image.new("RGB", (24, 16), colour) for colour in ((40, 40, 220), (40, 40, 200))]
            frames[0].save(os.path.join(sys.argv[1], "animated.webp"), save_all=True, append_images=frames[1:])
            Image.new("RGB", (24, 16), (220, 40, 40)).save(os.path.join(sys.argv[1], "rgb.tif"))
            # A tiled TIFF (Pillow writes strips only): 32x32 RGB in four uncompressed 16x16 tiles.
            import struct
            entries = [(256, 32), (257, 32), (258, None), (259, 1), (262, 2), (277, 3), (284, 1), (322, 16), (323, 16), (324, None), (325, None)]
            at = 8 + 2 + 12 * len(entries) + 4
            tile = bytes((40, 200, 40)) * 256
            tiled = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
            for tag, value in entries:
                if tag == 258: tiled += struct.pack("<HHII", tag, 3, 3, at)
                elif tag in (324, 325): tiled += struct.pack("<HHII", tag, 4, 4, at + 6 if tag == 324 else at + 22)
                else: tiled += struct.pack("<HHIHH", tag, 3, 1, value, 0)
            tiled += struct.pack("<I3H", 0, 8, 8, 8) + struct.pack("<4I", *(at + 38 + i * len(tile) for i in range(4)))
            tiled += struct.pack("<4I", *[len(tile)] * 4) + tile * 4
            open(os.path.join(sys.argv[1], "tiled.tif"), "wb").write(tiled)
            # In strips, but naming tile sizes beside them (TileWidth alone, or with TileLength): read here, so not warned of.
            def with_tile_sizes(name, sizes):
                # rgb.tif's directory with the tile sizes added, written anew after the file's end.
                data = bytearray(open(os.path.join(sys.argv[1], "rgb.tif"), "rb").read())
                directory = struct.unpack("<I", data[4:8])[0]
                count = struct.unpack("<H", data[directory:directory + 2])[0]
                entries = [bytes(data[directory + 2 + 12 * i:directory + 14 + 12 * i]) for i in range(count)]
                entries = sorted(entries + [struct.pack("<HHIHH", tag, 3, 1, 16, 0) for tag in sizes], key=lambda entry: entry[:2][::-1])
                data[4:8] = struct.pack("<I", len(data))
                data += struct.pack("<H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
                open(os.path.join(sys.argv[1], name), "wb").write(data)
            with_tile_sizes("strips-tile-width.tif", [322])
            with_tile_sizes("strips-tile-sizes.tif", [322, 323])
            Image.new("LA", (24, 16), (100, 200)).save(os.path.join(sys.argv[1], "la.tif"))
            Image.new("RGBX", (24, 16), (20, 40, 60, 0)).save(os.path.join(sys.argv[1], "rgbx.tif"))
            Image.new("LAB", (24, 16), (100, 120, 130)).save(os.path.join(sys.argv[1], "lab.tif"))
            Image.new("I", (24, 16), 70000).save(os.path.join(sys.argv[1], "signed.tif"))   # SampleFormat 2
            # The same samples said to be unsigned (Pillow reads both as mode I): refused too, with a warning (the trainer
            # clips them to 16 bits, ImageSharp scaled 32 bits: a black picture where the trainer's is white).
            unsigned = bytearray(open(os.path.join(sys.argv[1], "signed.tif"), "rb").read())
            directory = struct.unpack("<I", unsigned[4:8])[0]
            for entry in range(directory + 2, directory + 2 + 12 * struct.unpack("<H", unsigned[directory:directory + 2])[0], 12):
                if struct.unpack("<H", unsigned[entry:entry + 2])[0] == 339: unsigned[entry + 8:entry + 10] = struct.pack("<H", 1)
            open(os.path.join(sys.argv[1], "unsigned.tif"), "wb").write(unsigned)
            for name in ("cmyk.tif", "tiled.tif", "la.tif", "rgbx.tif", "lab.tif", "signed.tif", "animated.webp", "rgb.tif", "unsigned.tif",
                         "strips-tile-width.tif", "strips-tile-sizes.tif"):
                path = os.path.join(sys.argv[1], name)
                open_image(path)   # the trainer reads every one
                print(name, form_the_service_refuses(path))
            """, directory).Trim().Split('\n').Select(line => line.Trim()).ToArray();
        Assert.Equal(["cmyk.tif CMYK TIFF", "tiled.tif tiled TIFF", "la.tif grey-and-alpha TIFF", "rgbx.tif RGBX TIFF", "lab.tif CIELab TIFF",
            "signed.tif signed-integer TIFF", "animated.webp None", "rgb.tif None", "unsigned.tif 32-bit integer TIFF",
            "strips-tile-width.tif None", "strips-tile-sizes.tif None"], forms);
        var decoder = new ImageDecoder(new ImageLimits());
        var refused = Assert.Throws<ImageRejectedException>(() => decoder.Decode(File.ReadAllBytes(Path.Combine(directory, "cmyk.tif"))).Dispose());
        Assert.Equal("The TIFF image is in a form not decoded here: The specified TIFF photometric interpretation is not supported: " +
            "Separated (CMYK colour: send the picture in RGB, e.g. as PNG or JPEG).", refused.Message);
        var tiled = Assert.Throws<ImageRejectedException>(() => decoder.Decode(File.ReadAllBytes(Path.Combine(directory, "tiled.tif"))).Dispose());
        Assert.EndsWith("(a tiled TIFF: send the picture as PNG or JPEG, or as a TIFF in strips).", tiled.Message);
        foreach (var name in (string[])["la.tif", "rgbx.tif", "lab.tif", "signed.tif", "unsigned.tif"])
        {
            var other = Assert.Throws<ImageRejectedException>(() => decoder.Decode(File.ReadAllBytes(Path.Combine(directory, name))).Dispose());
            Assert.StartsWith("The TIFF image is in a form not decoded here: ", other.Message);
            Assert.EndsWith(" (send the picture as PNG or JPEG).", other.Message);
        }
        foreach (var name in (string[])["animated.webp", "rgb.tif", "strips-tile-width.tif", "strips-tile-sizes.tif"])
        {
            decoder.Decode(File.ReadAllBytes(Path.Combine(directory, name))).Dispose();
        }
    }

    /// <summary>
    /// An animated WebP is its first frame on the animation's canvas, as the trainer's Pillow shows it: frames of the
    /// whole canvas, a first frame that the encoder cropped to its opaque part (placed at its offset, the rest of the
    /// canvas transparent and so white), a lossy one with an alpha chunk, one whose file says it has no alpha (the rest
    /// of the canvas black, as Pillow reads it as RGB), and one with an EXIF orientation (and a still one).
    /// The service refused the animations.
    /// </summary>
    [Fact]
    public void AnAnimatedWebPIsItsFirstFrameAsInTheTrainer()
    {
        using var temporary = new TemporaryDirectory("protopnet-webp-");
        var directory = temporary.Path;
        var names = Pillow.RunPython("""
            import os, sys
            import numpy as np
            from PIL import Image
            from protopnet_trainer.image_files import open_image
            y, x = np.mgrid[0:30, 0:40]
            pattern = np.stack([x * 6, y * 8, (x * y) % 256], axis=-1).astype(np.uint8)
            framed = np.zeros((30, 40, 4), np.uint8)
            framed[6:24, 10:34, :3] = pattern[6:24, 10:34]
            framed[6:24, 10:34, 3] = np.where(x[6:24, 10:34] % 3 == 0, 128, 255)   # half-transparent columns
            second = [Image.new("RGBA", (40, 30), (40, 40, 200, 255))]
            def save(name, first, **options):
                path = os.path.join(sys.argv[1], name)
                first.save(path, save_all=True, append_images=[frame.convert(first.mode) for frame in second], **options)
                return path
            paths = [save("full.webp", Image.fromarray(pattern), lossless=True),
                     save("cropped.webp", Image.fromarray(framed, "RGBA"), lossless=True),
                     save("lossy.webp", Image.fromarray(framed, "RGBA"), quality=80)]
            # The same cropped frame with the file's alpha flag cleared.
            data = bytearray(open(paths[1], "rb").read())
            assert data[12:16] == b"VP8X" and data[20] & 0x10
            data[20] &= ~0x10
            paths.append(os.path.join(sys.argv[1], "no-alpha.webp"))
            open(paths[-1], "wb").write(bytes(data))
            exif = Image.Exif()
            exif[0x0112] = 6
            paths.append(save("turned.webp", Image.fromarray(pattern), lossless=True, exif=exif.tobytes()))
            paths.append(os.path.join(sys.argv[1], "turned-still.webp"))
            Image.fromarray(pattern).save(paths[-1], lossless=True, exif=exif.tobytes())
            for path in paths:
                with Image.open(path) as opened:
                    assert opened.n_frames == (1 if "still" in path else 2), path
                picture = open_image(path)
                np.asarray(picture, dtype=np.uint8).tofile(path + ".rgb")
                print(os.path.basename(path), picture.size[0], picture.size[1])
            """, directory).Trim().Split('\n').Select(line => line.Trim()).ToArray();
        Assert.Equal(["full.webp 40 30", "cropped.webp 40 30", "lossy.webp 40 30", "no-alpha.webp 40 30", "turned.webp 30 40", "turned-still.webp 30 40"], names);
        var decoder = new ImageDecoder(new ImageLimits());
        foreach (var name in names.Select(line => line.Split(' ')[0]))
        {
            var file = Path.Combine(directory, name);
            var cropped = WebpFirstFrame.Find(File.ReadAllBytes(file));
            Assert.Equal(name is not "turned-still.webp", cropped is not null);
            if (name is "cropped.webp") Assert.True(cropped!.X > 0 && cropped.Y > 0, $"the encoder did not crop the first frame: {cropped}");
            using var decoded = decoder.Decode(File.ReadAllBytes(file));
            Assert.Equal("WebP", decoded.Format);
            var ours = new byte[decoded.Pixels.Width * decoded.Pixels.Height * 3];
            decoded.Pixels.CopyPixelDataTo(ours);
            var theirs = File.ReadAllBytes(file + ".rgb");
            Assert.True(theirs.SequenceEqual(ours), $"{name}: {Enumerable.Range(0, ours.Length).Count(i => ours[i] != theirs[i])} of {ours.Length} values differ from the trainer's");
        }
    }

    /// <summary>
    /// Lossy WebPs, a small one with alpha and one large enough that its pixels are stored in several blocks, decode to
    /// the trainer's pixels exactly: both sides decode with libwebp (LibWebp), the large one through the pooled buffer.
    /// </summary>
    [Fact]
    public void ALossyWebPDecodesToTheTrainersPixels()
    {
        using var temporary = new TemporaryDirectory("protopnet-webp-lossy-");
        var names = Pillow.RunPython("""
            import os, sys
            import numpy as np
            from PIL import Image
            from protopnet_trainer.image_files import open_image
            def pattern(width, height):
                y, x = np.mgrid[0:height, 0:width]
                return np.stack([(x * 7 + y) % 256, (y * 5) % 256, (x * y) % 251], axis=-1).astype(np.uint8)
            alpha = np.dstack([pattern(45, 37), np.where(np.mgrid[0:37, 0:45][1] % 4 == 0, 100, 255).astype(np.uint8)])
            Image.fromarray(alpha, "RGBA").save(os.path.join(sys.argv[1], "alpha.webp"), quality=75)
            Image.fromarray(pattern(1300, 1000)).save(os.path.join(sys.argv[1], "large.webp"), quality=80)
            for name in ("alpha.webp", "large.webp"):
                path = os.path.join(sys.argv[1], name)
                np.asarray(open_image(path), dtype=np.uint8).tofile(path + ".rgb")
                print(name)
            """, temporary.Path).Trim().Split('\n').Select(line => line.Trim()).ToArray();
        Assert.Equal(["alpha.webp", "large.webp"], names);
        Assert.True(LibWebp.IsAvailable, LibWebp.Description);
        var decoder = new ImageDecoder(new ImageLimits());
        foreach (var name in names)
        {
            var file = Path.Combine(temporary.Path, name);
            using var decoded = decoder.Decode(File.ReadAllBytes(file));
            var ours = new byte[decoded.Pixels.Width * decoded.Pixels.Height * 3];
            decoded.Pixels.CopyPixelDataTo(ours);
            var theirs = File.ReadAllBytes(file + ".rgb");
            Assert.True(theirs.SequenceEqual(ours), $"{name}: {Enumerable.Range(0, ours.Length).Count(i => ours[i] != theirs[i])} of {ours.Length} values differ from the trainer's");
        }
    }

    [Fact]
    public void AFloatTiffDecodesToTheTrainersEightBitValues()
    {
        // 32-bit float greyscale TIFFs (measurements, scientific cameras), 0 to 1: the trainer decoded them black.
        var (ours, theirs) = GreyRampDecodedByBoth("f.tif", """
            # A ramp over [0, 1] fine enough to meet every rounding edge, and values outside it.
            values = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
            values[0, :8] = [-0.5, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 254.5 / 255, 1.0, 2.0]
            picture = Image.fromarray(values, "F")
            """);
        Assert.True(theirs.SequenceEqual(ours), $"{Enumerable.Range(0, ours.Length).Count(i => ours[i] != theirs[i])} of {ours.Length} values differ; the first row: trainer {string.Join(",", theirs.Take(24))}, service {string.Join(",", ours.Take(24))}");
    }

    [Fact]
    public void ACameraMpoDecodesAtTheDraftScaleAsInTheTrainer()
    {
        // MPO: a JPEG followed by more frames (a camera's preview, a stereo pair). Pillow reads it as its own format;
        // both sides must still decode its first frame at the draft scale.
        using var temporary = new TemporaryDirectory("protopnet-mpo-");
        var directory = temporary.Path;
        var (png, mpo, trainerPixels) = (Path.Combine(directory, "p.png"), Path.Combine(directory, "c.mpo"), Path.Combine(directory, "t.rgb"));
        using (var picture = Picture(642, 480)) File.WriteAllBytes(png, TestImages.Encode(picture, TestImages.Png));
        var size = Pillow.RunPython("""
            import sys
            import numpy as np
            from PIL import Image
            from protopnet_trainer.image_files import open_image
            picture = Image.open(sys.argv[1]).convert("RGB")
            picture.save(sys.argv[2], "MPO", save_all=True, append_images=[picture.rotate(90)], quality=90)
            decoded = open_image(sys.argv[2], (224, 224))
            np.asarray(decoded, dtype=np.uint8).tofile(sys.argv[3])
            print(decoded.size[0], decoded.size[1])
            """, png, mpo, trainerPixels).Trim();
        Assert.Equal("321 240", size);

        var input = new InputSection { Channels = 3, Height = 224, Width = 224, ColorSpace = "rgb", JpegDraft = true };
        using var decoded = new ImageDecoder(new ImageLimits()).DecodeFor(File.ReadAllBytes(mpo), input);
        Assert.Equal((642, 480), (decoded.Width, decoded.Height));
        var ours = new byte[321 * 240 * 3];
        decoded.Pixels.CopyPixelDataTo(ours);
        Assert.Equal(File.ReadAllBytes(trainerPixels), ours);
    }

    [Fact]
    public void JpegDraftScaleIsTheTrainersRule()
    {
        // Sides around the scale steps for each input side, inputs square and not, orientations that swap the sides or not.
        int[] sides = [1, 27, 56, 111, 223, 224, 447, 448, 895, 896, 1791, 1792, 4000];
        (int Width, int Height)[] inputs = [(224, 224), (28, 28), (100, 40)];
        var cases = (from w in sides from h in sides from input in inputs from orientation in new[] { 1, 6 }
                     select (w, h, input, orientation)).ToArray();
        var lines = Pillow.RunPython("""
            import sys
            from protopnet_trainer.image_files import jpeg_draft_scale
            for case in sys.argv[1:]:
                w, h, iw, ih, orientation = map(int, case.split(","))
                print(jpeg_draft_scale((w, h), (iw, ih), orientation))
            """, [.. cases.Select(c => $"{c.w},{c.h},{c.input.Width},{c.input.Height},{c.orientation}")])
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(cases.Length, lines.Length);
        for (var i = 0; i < cases.Length; i++)
        {
            var (w, h, input, orientation) = cases[i];
            Assert.True(int.Parse(lines[i]) == ImageDecoder.JpegDraftScale(w, h, input.Width, input.Height, transposed: orientation == 6),
                $"{w}x{h} for {input.Width}x{input.Height}, orientation {orientation}: the trainer decodes at 1/{lines[i]}");
        }
        Assert.Equal([1, 2, 4, 8], lines.Select(int.Parse).Distinct().Order());
    }

    /// <summary>
    /// A PNG file of gradients in each channel plus noise and a hard-edged square: every resampling choice shows. Files of
    /// an odd width have an alpha channel, from opaque to fully transparent, so the compositing over white shows too.
    /// </summary>
    private static byte[] PictureFile(int width, int height)
    {
        if (IsProductPicture(width, height)) return ProductPictureFile(width, height);
        if (JpegChroma(width, height) is { } chroma)
        {
            using var photo = Picture(width, height);
            if (IsTurned(width, height))
            {
                photo.Metadata.ExifProfile = new ExifProfile();
                photo.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);   // stored on its side
            }
            return TestImages.Encode(photo, new JpegEncoder { Quality = 90, ColorType = chroma });
        }
        using var picture = Picture(width, height);
        return TestImages.Encode(picture, TestImages.Png);
    }

    /// <summary>The cases whose file is a JPEG, and its chroma subsampling.</summary>
    private static JpegColorType? JpegChroma(int width, int height) => (width, height) switch
    {
        (641, 479) or (93, 71) or (1000, 900) or (1000, 601) => JpegColorType.YCbCrRatio420,
        (121, 91) or (1211, 911) => JpegColorType.YCbCrRatio444,
        _ => null,
    };

    /// <summary>The case whose JPEG carries EXIF orientation 6 (stored on its side: upright it is height x width).</summary>
    private static bool IsTurned(int width, int height) => (width, height) == (1000, 601);

    private static Image<Rgba32> Picture(int width, int height)
    {
        var random = new Random(width * 1000 + height);
        var transparent = width % 2 == 1 && width < 60;
        var image = new Image<Rgba32>(width, height);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
        {
            var inSquare = x > width / 3 && x < width / 2 && y > height / 4 && y < height * 3 / 4;
            var alpha = transparent ? (byte)random.Next(256) : (byte)255;
            image[x, y] = inSquare
                ? new Rgba32(250, 20, 240, alpha)
                : new Rgba32((byte)(255 * x / (width - 1)), (byte)random.Next(256), (byte)(255 * y / (height - 1)), alpha);
        }
        return image;
    }

    private static bool IsProductPicture(int width, int height) => (width, height) is (90, 70) or (64, 64) or (93, 71);

    /// <summary>
    /// A product-like photo: a dark, shaded garment on a light, slightly noisy ground.
    /// </summary>
    private static byte[] ProductPictureFile(int width, int height)
    {
        var random = new Random(width * 7 + height);
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
        {
            var inGarment = Math.Abs(x - width / 2) < width * 3 / 8 && y > height / 8 && y < height * 7 / 8;
            var shade = 10 + 70 * y / height + 30 * x / width + random.Next(40);
            var ground = (byte)(225 + random.Next(25));
            image[x, y] = inGarment ? new Rgb24((byte)shade, (byte)(shade / 2 + random.Next(30)), (byte)(shade + 20)) : new Rgb24(ground, ground, (byte)(ground - 10));
        }
        return JpegChroma(width, height) is { } chroma
            ? TestImages.Encode(image, new JpegEncoder { Quality = 90, ColorType = chroma })
            : TestImages.Encode(image, TestImages.Png);
    }

    /// <summary>The service's decoded pixels of a file (8-bit RGB, row by row), before the resize to the input.</summary>
    /// <summary>
    /// A 64 x 48 greyscale picture that <paramref name="makePicture"/> (Python, numpy as np and PIL's Image at hand) makes
    /// as <c>picture</c>, saved as <paramref name="fileName"/> by Pillow: its pixels as the service decodes the file, and
    /// as the trainer does (which must keep more than 200 distinct values of the ramp).
    /// </summary>
    private static (byte[] Service, byte[] Trainer) GreyRampDecodedByBoth(string fileName, string makePicture)
    {
        using var temporary = new TemporaryDirectory("protopnet-grey-ramp-");
        var (file, trainerPixels) = (Path.Combine(temporary.Path, fileName), Path.Combine(temporary.Path, "t.gray"));
        var size = Pillow.RunPython("import sys\nimport numpy as np\nfrom PIL import Image\nfrom protopnet_trainer.image_files import open_image\n"
            + makePicture + "\n" + """
            picture.save(sys.argv[1])
            decoded = open_image(sys.argv[1])
            np.asarray(decoded, dtype=np.uint8).tofile(sys.argv[2])
            print(decoded.size[0], decoded.size[1])
            """, file, trainerPixels).Trim();
        Assert.Equal("64 48", size);
        var service = ServicePixels(file, new InputSection { Channels = 1, Height = 48, Width = 64, ColorSpace = "gray" });
        var trainer = File.ReadAllBytes(trainerPixels);
        Assert.True(trainer.Distinct().Count() > 200, $"only {trainer.Distinct().Count()} distinct values: the ramp did not survive");
        return (service, trainer);
    }

    private static byte[] ServicePixels(string file, InputSection input)
    {
        using var decoded = new ImageDecoder(new ImageLimits()).DecodeFor(File.ReadAllBytes(file), input);
        var pixels = new byte[decoded.Pixels.Width * decoded.Pixels.Height * 3];
        decoded.Pixels.CopyPixelDataTo(pixels);
        return pixels;
    }

    /// <summary>The trainer's tensors for the cases' files: its ImageSet over a one-image split, as float32 [C, H, W].</summary>
    private static (float[] Tensor, bool Inverted)[] ComputeTrainerTensors(
        (int Width, int Height, int Channels, int InputWidth, int InputHeight, string Interpolation, string Contrast, bool Draft)[] cases)
    {
        using var temporary = new TemporaryDirectory("protopnet-preprocessing-");
        var directory = temporary.Path;
        var arguments = new List<string>();
        for (var i = 0; i < cases.Length; i++)
        {
            var (width, height, channels, inputWidth, inputHeight, interpolation, contrast, draft) = cases[i];
            var image = Path.Combine(directory, $"{i}.img");
            File.WriteAllBytes(image, PictureFile(width, height));
            arguments.AddRange([image, channels.ToString(), inputWidth.ToString(), inputHeight.ToString(), interpolation, contrast, draft ? "draft" : "full",
                Path.Combine(directory, $"{i}.f32")]);
        }
        Pillow.RunPython("""
            import sys
            from protopnet_trainer.contrast import normalize_contrast
            from protopnet_trainer.data import ImageSet, Split
            from protopnet_trainer.image_files import open_image

            jobs = sys.argv[1:]
            for at in range(0, len(jobs), 8):
                path, channels, width, height, interpolation, contrast, decoding, out = jobs[at:at + 8]
                # Loaded as the ImageFolder and CUB-200 data sources load a file.
                draft = (int(width), int(height)) if decoding == "draft" else None
                split = Split("test", ["only"], int(channels), ["0"], [0], lambda _, path=path, draft=draft: open_image(path, draft))
                size = (int(height), int(width))
                tensor = ImageSet(split, size, interpolation, contrast=contrast).image(0)
                tensor.numpy().astype("<f4").tofile(out)
                inverted = contrast == "auto" and normalize_contrast(ImageSet(split, size, interpolation).image(0))[1]
                open(out + ".inverted", "w").write("1" if inverted else "0")
            """, [.. arguments]);
        return Enumerable.Range(0, cases.Length).Select(i =>
        {
            var bytes = File.ReadAllBytes(Path.Combine(directory, $"{i}.f32"));
            var values = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
            return (values, File.ReadAllText(Path.Combine(directory, $"{i}.f32.inverted")) == "1");
        }).ToArray();
    }
}
