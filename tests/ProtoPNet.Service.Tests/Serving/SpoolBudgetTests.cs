using System.Net;
using Microsoft.Extensions.DependencyInjection;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// Images:MaxSpooledBytes: the multipart image parts being spooled, all uploads together, stay under it (a Kubernetes
/// emptyDir's sizeLimit evicts the pod instead of failing a write): an upload that would pass it while others spool is
/// 503 upload-spool-full, one that alone is larger is 413, and what an upload spooled is given back when it ends.
/// </summary>
[Collection(BundlesCollection.Name)]
public class SpoolBudgetTests(TrainerBundles bundles)
{
    private const int Limit = 200_000;

    /// <summary>A PNG of noise of about 150 KB (incompressible): two of them do not fit in the limit.</summary>
    private static byte[] NoisePng(int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(224, 224);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++) random.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.GetRowSpan(y)));
        });
        return Http.Encode(image, new PngEncoder());
    }

    [Fact]
    public async Task UploadsSpoolTogetherWithinTheLimitAndGiveTheirShareBack()
    {
        await using var factory = bundles.SmokeService(("Images:MaxBytes", Limit.ToString()), ("Images:MaxSpooledBytes", Limit.ToString()));
        var spool = factory.Services.GetRequiredService<SpoolBudget>();
        var client = factory.CreateClient();
        var (first, second) = (NoisePng(1), NoisePng(2));
        Assert.InRange(first.Length, 140_000, Limit);

        // A slow client holds 120 KB of the spool: another upload of 150 KB does not fit beside it, for now.
        using var multipart = Http.Multipart(("image", first, "image/png"));
        var body = await multipart.ReadAsByteArrayAsync();
        var resume = new TaskCompletionSource();
        var slow = factory.Server.CreateClient().PostAsync("/classify",
            new PausingContent(body, 120_000, resume.Task, multipart.Headers.ContentType!.ToString()));
        await Eventually.TrueAsync(() => spool.Spooled >= 100_000, () => $"spooled {spool.Spooled}");
        var refused = await client.PostAsync("/classify", Http.Multipart(("image", second, "image/png")));
        var problem = await Http.ProblemAsync(refused, HttpStatusCode.ServiceUnavailable, "upload-spool-full");
        Assert.Contains("Images:MaxSpooledBytes", problem.GetProperty("detail").GetString());
        Assert.True(refused.Headers.RetryAfter is not null, "a 503 to retry says when");

        // The slow upload finishes; its share and the refused one's are given back, and the second upload fits now.
        resume.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await slow).StatusCode);
        await Eventually.TrueAsync(() => spool.Spooled == 0, () => $"spooled {spool.Spooled} after both ended");
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/classify", Http.Multipart(("image", second, "image/png")))).StatusCode);
        Assert.Equal(0, PrometheusText.Sum(await PrometheusText.ScrapeAsync(client), "protopnet_spooled_bytes"));

        // Two such images in one request are more than the service ever spools: not worth retrying.
        var tooLarge = await client.PostAsync("/classify/batch", Http.Multipart(("image", first, "image/png"), ("image", second, "image/png")));
        await Http.ProblemAsync(tooLarge, HttpStatusCode.RequestEntityTooLarge, "image-too-large");
        await Eventually.TrueAsync(() => spool.Spooled == 0, () => $"spooled {spool.Spooled} after the refusal");
    }
}
