using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// The service's instruments (System.Diagnostics.Metrics, meter <c>ProtoPNet.Service</c>), named in Triton's spirit.
/// /metrics shows them in Prometheus text format (<see cref="PrometheusExposition"/>): a dot becomes '_', seconds get
/// '_seconds' and counters '_total', e.g. <c>protopnet.request.duration</c> is <c>protopnet_request_duration_seconds</c>.
/// </summary>
public sealed class ServiceMetrics : IDisposable
{
    public const string MeterName = "ProtoPNet.Service";

    /// <summary>Spans of the service's own work (a batch's network run), exported when tracing is on.</summary>
    public static readonly ActivitySource ActivitySource = new(MeterName);

    private static readonly double[] LatencyBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private static readonly double[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    private readonly Meter _meter;

    public ServiceMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        Requests = _meter.CreateCounter<long>("protopnet.requests", "{request}", "Requests by model, version, endpoint and HTTP status.");
        RequestDuration = Histogram("protopnet.request.duration", "Whole request time, from the first byte read to the answer written.");
        QueueDuration = Histogram("protopnet.queue.duration", "Time a request's images waited in its model's queue before their network run began (one sample per request).");
        InferenceDuration = Histogram("protopnet.inference.duration", "Time of one network run (one batch).");
        ExplanationDuration = Histogram("protopnet.explanation.duration", "Time to explain one image from the network outputs.");
        BatchSize = _meter.CreateHistogram("protopnet.batch.size", "{image}", "Images per network run.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = BatchBuckets });
        ModelLoads = _meter.CreateCounter<long>("protopnet.model.loads", "{bundle}", "Bundle loads by model and result (loaded or refused).");
        DecoderFaults = _meter.CreateCounter<long>("protopnet.decoder.faults", "{image}",
            "Uploads the image decoder failed on with an exception of its own (refused 400 and logged as errors): each one a fault to mend.");
    }

    /// <summary>
    /// Counters without labels that /metrics shows at 0 before their first count: Prometheus does not count a series'
    /// first sample in an increase, so a fault counter that first appears at 1 would not fire an alert on its increase.
    /// </summary>
    public IReadOnlyCollection<Instrument> ShownFromZero => [DecoderFaults];

    /// <summary>This host's meter (another host in the same process has its own, with the same name).</summary>
    public Meter Meter => _meter;

    public Counter<long> Requests { get; }
    public Histogram<double> RequestDuration { get; }
    public Histogram<double> QueueDuration { get; }
    public Histogram<double> InferenceDuration { get; }
    public Histogram<double> ExplanationDuration { get; }
    public Histogram<double> BatchSize { get; }
    public Counter<long> ModelLoads { get; }
    public Counter<long> DecoderFaults { get; }

    /// <summary>An observable gauge read at each scrape (queue depth, execution provider, served versions).</summary>
    public void ObserveGauge(string name, string unit, string description, Func<IEnumerable<Measurement<long>>> observe) =>
        _meter.CreateObservableGauge(name, observe, unit, description);

    private Histogram<double> Histogram(string name, string description) =>
        _meter.CreateHistogram(name, "s", description, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });

    public static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);

    /// <summary>Raised when a model version starts serving (true) and when it is unloaded (false): an unloaded version's
    /// series are dropped from /metrics (a service that publishes a version a day would otherwise keep every old
    /// version's series for good).</summary>
    public event Action<string, string, bool>? VersionServing;

    public void Serving(string model, string version) => VersionServing?.Invoke(model, version, true);

    public void Unloaded(string model, string version) => VersionServing?.Invoke(model, version, false);

    public void Dispose() => _meter.Dispose();
}
