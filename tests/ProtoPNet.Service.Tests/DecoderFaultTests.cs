using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// A fault of the image decoder's own code on an upload (an exception that is not a refusal) is the service's to mend:
/// the client is refused 400 image-not-decodable, and the fault is logged as an error with its exception and counted
/// in /metrics (protopnet_decoder_faults_total), so that it is seen without a 500 reaching anyone.
/// </summary>
[Collection(BundlesCollection.Name)]
public class DecoderFaultTests(TrainerBundles bundles)
{
    [Fact]
    public async Task ADecoderFaultIsLoggedAsAnErrorAndCountedInTheMetrics()
    {
        using var factory = bundles.SmokeService();
        using var client = factory.CreateClient();
        // Shown at 0 before the first fault, so that an alert on its increase sees the first one.
        Assert.Contains("\nprotopnet_decoder_faults_total 0\n", await PrometheusText.ScrapeAsync(client));

        var decoder = factory.Services.GetRequiredService<ImageDecoder>();
        var refusal = Assert.Throws<ImageRejectedException>(() => decoder.Decode(new UnreadableBytes(1000).Memory));
        Assert.Equal(ImageRejection.NotDecodable, refusal.Rejection);
        Assert.Throws<ImageRejectedException>(() => decoder.Decode(new byte[] { 1, 2, 3 }));   // a refusal, not a fault

        var logged = Assert.Single(factory.Logs.Entries, e => e.Level == LogLevel.Error && e.Category == typeof(ImageDecoder).FullName);
        Assert.StartsWith("The image decoder failed on an upload, which was refused 400 image-not-decodable", logged.Message);
        Assert.Equal(1, PrometheusText.Sum(await PrometheusText.ScrapeAsync(client), "protopnet_decoder_faults_total"));
    }
}
