using System.Net;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// An upload cut short (50 %, 80 %, 95 % of its bytes, or only its last bytes) is answered 400 image-truncated in every
/// accepted format, never classified as if it were whole; a complete file with extra bytes after it is classified as usual.
/// </summary>
[Collection(BundlesCollection.Name)]
public class TruncatedUploadTests(TrainerBundles bundles)
{
    private HttpClient Client => bundles.Service.CreateClient();

    /// <summary>A training image of the smoke bundle, 96 x 96, as real files: (name, content type, bytes).</summary>
    private (string Name, string ContentType, byte[] Bytes)[] Uploads()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 3, 96, 96);
        using var image = Image.Load<Rgb24>(png);
        (string, string, IImageEncoder)[] encoders =
        [
            ("png", "image/png", new PngEncoder()), ("jpeg", "image/jpeg", new JpegEncoder { Quality = 90 }), ("gif", "image/gif", new GifEncoder()),
            ("bmp", "image/bmp", new BmpEncoder()), ("webp", "image/webp", new WebpEncoder()), ("tiff", "image/tiff", new TiffEncoder()),
        ];
        return
        [
            .. encoders.Select(e => (e.Item1, e.Item2, Http.Encode(image, e.Item3))),
            ("jpeg-progressive", "image/jpeg", Pillow.Reencode(png, "JPEG", "quality=90, progressive=True")),
            ("tiff-directory-first", "image/tiff", Pillow.Reencode(png, "TIFF", "compression='raw'")),
        ];
    }

    [Fact]
    public async Task CutUploadsAre400ImageTruncatedInEveryFormat()
    {
        foreach (var (name, contentType, bytes) in Uploads())
        {
            // ImageSharp's TIFF ends with a padding byte after its last value; its smallest real cut is 2 bytes.
            var lastBytes = name == "tiff" ? 2 : 1;
            foreach (var length in new[] { bytes.Length / 2, bytes.Length * 8 / 10, bytes.Length * 95 / 100, bytes.Length - lastBytes })
            {
                var cut = bytes[..length];
                var raw = await Client.PostAsync("/classify", Http.Raw(cut, contentType));
                var problem = await Http.ProblemAsync(raw, HttpStatusCode.BadRequest, "image-truncated");
                Assert.Contains("truncated", problem.GetProperty("detail").GetString());
                var multipart = await Client.PostAsync("/classify", Http.Multipart(("image", cut, contentType)));
                await Http.ProblemAsync(multipart, HttpStatusCode.BadRequest, "image-truncated");
            }
        }
    }

    /// <summary>
    /// The same pixels give the same logits, to the last bit, on a service of its own: on the shared one a request still
    /// running from another test could put one of the two in a batch with its image, and a batched answer differs from a
    /// lone one in its last digits (docs/API.md), which would say nothing about the trailing bytes.
    /// </summary>
    [Fact]
    public async Task CompleteUploadsWithTrailingBytesAreClassifiedAsWithout()
    {
        await using var service = bundles.SmokeService();
        var client = service.CreateClient();
        var trailer = new byte[200];
        new Random(5).NextBytes(trailer);
        foreach (var (name, contentType, bytes) in Uploads())
        {
            var whole = await Http.JsonAsync(await client.PostAsync("/classify", Http.Raw(bytes, contentType)));
            var extended = await Http.JsonAsync(await client.PostAsync("/classify", Http.Raw([.. bytes, .. trailer], contentType)));
            Assert.Equal(96, extended.GetProperty("image").GetProperty("width").GetInt32());
            var expected = whole.GetProperty("topClasses").EnumerateArray().Select(p => p.GetProperty("logit").GetDouble()).ToArray();
            var actual = extended.GetProperty("topClasses").EnumerateArray().Select(p => p.GetProperty("logit").GetDouble()).ToArray();
            Assert.True(expected.SequenceEqual(actual), $"{name}: the trailing bytes changed the answer");
        }
    }

    [Fact]
    public async Task BatchAnswersACutImageWithItsOwnTruncatedProblem()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 3, 96, 96);
        var jpeg = Uploads().Single(u => u.Name == "jpeg").Bytes;
        var content = Http.Multipart(("image", png, "image/png"), ("image", jpeg[..(jpeg.Length * 8 / 10)], "image/jpeg"));
        var results = (await Http.JsonAsync(await Client.PostAsync("/classify/batch", content))).GetProperty("results").EnumerateArray().ToArray();
        Assert.True(results[0].TryGetProperty("topClasses", out _));
        Assert.Equal(400, results[1].GetProperty("status").GetInt32());
        Assert.EndsWith("image-truncated", results[1].GetProperty("type").GetString());
    }
}

/// <summary>A full spool folder is the server's condition (503 upload-spool-full), not a cut-off upload (400).</summary>
public class UploadSpoolTests
{
    [Theory]
    [InlineData(28, true)]          // ENOSPC
    [InlineData(122, true)]         // EDQUOT
    [InlineData(unchecked((int)0x80070070), true)]   // ERROR_DISK_FULL
    [InlineData(39, false)]         // ENOTEMPTY
    [InlineData(5, false)]          // EIO
    public void OnlyAWriteWithoutRoomIsAFullSpool(int hresult, bool full)
    {
        Assert.Equal(full, Classifying.UploadReader.IsStorageFull(new IOException("write failed", hresult)));
        Assert.False(Classifying.UploadReader.IsStorageFull(new Microsoft.AspNetCore.Http.BadHttpRequestException("cut short")));
    }
}
