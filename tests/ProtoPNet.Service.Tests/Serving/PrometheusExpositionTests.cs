using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// An unloaded version's series leave /metrics at the next scrape, and those of its requests that end later at the
/// scrape after them; once no request of it can still be running, the version is forgotten, so that a process that has
/// served thousands of versions does not walk them all at every scrape. The .NET runtime's documented families are
/// exposed with their Prometheus types and current values.
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

    /// <summary>A value past the last bucket (a request over 30 s) is in +Inf alone: +Inf always equals the count.</summary>
    [Fact]
    public void AValuePastTheLastBucketIsCountedInInfOnly()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var metrics = new ServiceMetrics(services.GetRequiredService<IMeterFactory>());
        using var exposition = new PrometheusExposition(metrics, TimeProvider.System);
        metrics.RequestDuration.Record(0.003, ServiceMetrics.Tag("endpoint", "Classify"));
        metrics.RequestDuration.Record(45, ServiceMetrics.Tag("endpoint", "Classify"));
        var lines = exposition.Scrape().Split('\n');
        string Value(string series) => lines.Single(line => line.StartsWith(series + " ", StringComparison.Ordinal)).Split(' ')[^1];
        Assert.Equal("1", Value("protopnet_request_duration_seconds_bucket{endpoint=\"Classify\",le=\"0.005\"}"));
        Assert.Equal("1", Value("protopnet_request_duration_seconds_bucket{endpoint=\"Classify\",le=\"30\"}"));
        Assert.Equal("2", Value("protopnet_request_duration_seconds_bucket{endpoint=\"Classify\",le=\"+Inf\"}"));
        Assert.Equal("2", Value("protopnet_request_duration_seconds_count{endpoint=\"Classify\"}"));
        Assert.Equal("45.003", Value("protopnet_request_duration_seconds_sum{endpoint=\"Classify\"}"));
    }

    [Fact]
    public void TheRuntimesFamiliesAreExposedWithTheirTypesAndCurrentValues()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var metrics = new ServiceMetrics(services.GetRequiredService<IMeterFactory>());
        using var exposition = new PrometheusExposition(metrics, TimeProvider.System);
        try
        {
            throw new InvalidDataException("counted");
        }
        catch (InvalidDataException)
        {
        }
        var before = exposition.Scrape();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true);
        var after = exposition.Scrape();

        var types = System.Text.RegularExpressions.Regex.Matches(after, @"^# TYPE (dotnet_\S+) (\S+)$", System.Text.RegularExpressions.RegexOptions.Multiline)
            .ToDictionary(match => match.Groups[1].Value, match => match.Groups[2].Value);
        var apiDocument = File.ReadAllText(Path.Combine(ProtoPNet.Tests.Shared.Trainer.RepositoryRoot, "docs", "API.md"));
        Assert.Equal(PrometheusExposition.RuntimeFamilies.Count, types.Count);
        Assert.All(types, family =>
        {
            Assert.Equal(family.Key.EndsWith("_total", StringComparison.Ordinal) ? "counter" : "gauge", family.Value);
            Assert.True(apiDocument.Contains($"| `{family.Key}` | {family.Value} |", StringComparison.Ordinal), $"docs/API.md's runtime table leaves out {family.Key} ({family.Value})");
        });
        Assert.Equal("gauge", types["dotnet_thread_pool_queue_length"]);
        Assert.Equal("counter", types["dotnet_gc_pause_time_seconds_total"]);

        // Observed at each scrape: a collection between two scrapes shows, and a total is read whole, not added up.
        static double Value(string scrape, string series) =>
            double.Parse(scrape.Split('\n').Single(line => line.StartsWith(series + " ", StringComparison.Ordinal))[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        const string Gen2 = "dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}";
        Assert.Equal(GC.CollectionCount(2), Value(after, Gen2));
        Assert.True(Value(after, Gen2) > Value(before, Gen2));
        Assert.InRange(Value(after, "dotnet_gc_pause_time_seconds_total"), GC.GetTotalPauseDuration().TotalSeconds - 0.5, GC.GetTotalPauseDuration().TotalSeconds);
        Assert.InRange(Value(after, "dotnet_process_memory_working_set_bytes"), 1 << 20, Environment.WorkingSet * 4.0);
        Assert.True(Value(after, "dotnet_exceptions_total{error_type=\"InvalidDataException\"}") >= 1);
    }
}
