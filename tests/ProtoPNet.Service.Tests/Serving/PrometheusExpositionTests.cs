using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// An unloaded version's series leave /metrics at the next scrape, and those of its requests that end later at the
/// scrape after them; once no request of it can still be running, the version is forgotten, so that a process that has
/// served thousands of versions does not walk them all at every scrape.
/// </summary>
public class PrometheusExpositionTests
{
    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 5, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void AnUnloadedVersionsSeriesGoAndAfterAWhileTheVersionIsForgotten()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var metrics = new ServiceMetrics(services.GetRequiredService<IMeterFactory>());
        var clock = new ManualClock();
        using var exposition = new PrometheusExposition(metrics, clock);
        void RunOf(string version) => metrics.InferenceDuration.Record(0.01, ServiceMetrics.Tag("model", "m"), ServiceMetrics.Tag("version", version));
        metrics.Serving("m", "v1");
        metrics.Serving("m", "v2");
        RunOf("v1");
        RunOf("v2");
        Assert.Contains("version=\"v1\"", exposition.Scrape());

        metrics.Unloaded("m", "v1");
        var scrape = exposition.Scrape();
        Assert.DoesNotContain("version=\"v1\"", scrape);
        Assert.Contains("version=\"v2\"", scrape);
        // A run of v1 that ends after the unload: dropped at the next scrape too.
        clock.Now += TimeSpan.FromMinutes(5);
        RunOf("v1");
        Assert.DoesNotContain("version=\"v1\"", exposition.Scrape());
        Assert.Equal(2, exposition.RememberedVersions);

        // Past ForgetUnloadedAfter, v1 is forgotten; v2, still loaded, is kept with its series.
        clock.Now += PrometheusExposition.ForgetUnloadedAfter;
        Assert.DoesNotContain("version=\"v1\"", exposition.Scrape());
        Assert.Equal(1, exposition.RememberedVersions);
        Assert.Contains("version=\"v2\"", exposition.Scrape());
    }
}
