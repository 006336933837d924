using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Tests.Shared;
using static ProtoPNet.Inference.Tests.TrainerParity;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The trainer's Pillow opens a TIFF's first page and reads no further directory; the service classifies that page too,
/// so damage in the chain after it (a pointer back to itself, past the file's end, into a cut page) must not have the
/// file refused.
/// </summary>
public class TiffLaterPagesTests
{
    [Fact]
    public void ATiffWhoseLaterPagesAreDamagedIsReadAsItsFirstPage()
    {
        using var temporary = new TemporaryDirectory("protopnet-tiff-pages-");
        var verdicts = Verdicts(Pillow.RunPython(WritePages, temporary.Path));
        var decoder = new ImageDecoder(new ImageLimits());
        Assert.Equal(8, verdicts.Count);
        Assert.All(verdicts.Values, verdict => Assert.StartsWith("read", verdict));
        AssertJudgedAlike(decoder, temporary.Path, verdicts);
        // A page alone passes as it is; a first directory cut before its pointer to the next is left to the completeness check.
        var onePage = File.ReadAllBytes(Path.Combine(temporary.Path, "one-page.tif"));
        Assert.True(TiffLaterImages.WithFirstImageAlone(onePage).Span.SequenceEqual(onePage));
        var cut = onePage[..^2];
        Assert.True(TiffLaterImages.WithFirstImageAlone(cut).Span.SequenceEqual(cut));
        Assert.StartsWith("The TIFF image is truncated", Refusal(decoder, cut));
    }


    private const string WritePages = Script + """
        pages = [Image.new("RGB", (24, 16), colour) for colour in ((200, 100, 50), (20, 40, 220), (90, 200, 90))]
        for page, picture in enumerate(pages): picture.putpixel((page, page), (255, 255, 255))
        stored = io.BytesIO()
        pages[0].save(stored, "TIFF", compression="tiff_lzw", save_all=True, append_images=pages[1:])
        data = stored.getvalue()
        open(path("three-pages.tif"), "wb").write(data)
        pages[0].save(path("one-page.tif"), compression="tiff_lzw")
        first = struct.unpack("<I", data[4:8])[0]
        next_at = first + 2 + 12 * struct.unpack("<H", data[first:first + 2])[0]
        second = struct.unpack("<I", data[next_at:next_at + 4])[0]
        def pointing(at, value):
            changed = bytearray(data)
            changed[at:at + 4] = struct.pack("<I", value)
            return bytes(changed)
        open(path("back-to-itself.tif"), "wb").write(pointing(next_at, first))
        open(path("back-to-the-header.tif"), "wb").write(pointing(next_at, 8))
        open(path("past-the-end.tif"), "wb").write(pointing(next_at, 0xFFFFFFFF))
        open(path("into-its-last-bytes.tif"), "wb").write(pointing(next_at, len(data) - 3))
        open(path("second-page-cut.tif"), "wb").write(data[:second + 20])
        second_next = second + 2 + 12 * struct.unpack("<H", data[second:second + 2])[0]
        open(path("second-points-back.tif"), "wb").write(pointing(second_next, first))
        verdicts()
        """;
}
