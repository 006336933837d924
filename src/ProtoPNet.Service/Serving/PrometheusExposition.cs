using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Prometheus text exposition (format 0.0.4) of the <c>ProtoPNet.Service</c> meter's instruments and of a documented set
/// of the .NET runtime's (<see cref="RuntimeFamilies"/>), aggregated here from a <see cref="MeterListener"/>: counters as
/// <c>_total</c>, histograms with the buckets their instrument advises (cumulative <c>_bucket</c>, <c>_sum</c>,
/// <c>_count</c>), observable instruments read at each scrape. Small and dependency-free, so the metric names are exactly
/// the documented ones.
/// </summary>
public sealed class PrometheusExposition : IDisposable
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Family> _families = new();
    private readonly Lock _scrapeLock = new();
    private readonly TimeProvider _time;

    /// <summary>
    /// How long an unloaded version's series are still dropped at each scrape: longer than any request of it can still be
    /// finishing (its measurements are recorded as it ends). After that the version is forgotten, so that a process that
    /// has served thousands of versions does not walk them all at every scrape.
    /// </summary>
    public static readonly TimeSpan ForgetUnloadedAfter = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The .NET runtime's instruments (meter <c>System.Runtime</c>, one per process) that /metrics shows, with the
    /// Prometheus type of each: what an operator reads a service's pauses and pressure from (GC pauses and heap, CPU time,
    /// the thread pool's queue, lock contention, exceptions). The type is named here, not taken from the instrument's kind:
    /// .NET 10 publishes the thread pool's thread count and queue length as observable counters, though both go down.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, FamilyType> RuntimeFamilies = new Dictionary<string, FamilyType>
    {
        ["dotnet.gc.collections"] = FamilyType.Counter,
        ["dotnet.gc.pause.time"] = FamilyType.Counter,
        ["dotnet.gc.heap.total_allocated"] = FamilyType.Counter,
        ["dotnet.gc.last_collection.heap.size"] = FamilyType.Gauge,
        ["dotnet.gc.last_collection.memory.committed_size"] = FamilyType.Gauge,
        ["dotnet.process.memory.working_set"] = FamilyType.Gauge,
        ["dotnet.process.cpu.time"] = FamilyType.Counter,
        ["dotnet.thread_pool.thread.count"] = FamilyType.Gauge,
        ["dotnet.thread_pool.queue.length"] = FamilyType.Gauge,
        ["dotnet.thread_pool.work_item.count"] = FamilyType.Counter,
        ["dotnet.monitor.lock_contentions"] = FamilyType.Counter,
        ["dotnet.exceptions"] = FamilyType.Counter,
    };

    public enum FamilyType { Counter, Gauge, Histogram }

    public PrometheusExposition(ServiceMetrics metrics, TimeProvider time)
    {
        _time = time;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            // This host's meter (tests run several hosts in one process, each with a meter of the same name) and the
            // process's runtime meter.
            FamilyType type;
            if (ReferenceEquals(instrument.Meter, metrics.Meter)) type = TypeOf(instrument);
            else if (instrument.Meter is { Name: "System.Runtime", Scope: null } && RuntimeFamilies.TryGetValue(instrument.Name, out var runtimeType)) type = runtimeType;
            else return;
            var family = _families[instrument] = new Family(instrument, type);
            if (metrics.ShownFromZero.Contains(instrument)) family.Record(0, []);
            listener.EnableMeasurementEvents(instrument, family);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.MeasurementsCompleted = (instrument, _) => _families.TryRemove(instrument, out var _);
        _listener.Start();
        metrics.VersionServing += (model, version, serving) =>
        {
            var labels = ($"model=\"{Family.Escape(model, help: false)}\"", $"version=\"{Family.Escape(version, help: false)}\"");
            lock (_loaded)
            {
                var count = _loaded.GetValueOrDefault(labels).Count + (serving ? 1 : -1);
                _loaded[labels] = (count, _time.GetUtcNow());
            }
        };
    }

    /// <summary>
    /// How many loaded instances each (model, version) label pair has (a folder rewritten in place loads the version
    /// again before the old instance goes), and since when; each scrape drops the series of the pairs at 0. A request
    /// that finishes after its version was unloaded records its measurements then, so dropping them once would not do;
    /// a pair at 0 for <see cref="ForgetUnloadedAfter"/> is forgotten.
    /// </summary>
    private readonly Dictionary<(string Model, string Version), (int Count, DateTimeOffset Since)> _loaded = new();

    /// <summary>The (model, version) pairs whose series a scrape still drops or keeps: the loaded and the recently unloaded.</summary>
    internal int RememberedVersions
    {
        get
        {
            lock (_loaded) return _loaded.Count;
        }
    }

    private static FamilyType TypeOf(Instrument instrument) => instrument switch
    {
        Histogram<double> or Histogram<long> => FamilyType.Histogram,
        Counter<long> or Counter<double> or ObservableCounter<long> or ObservableCounter<double> => FamilyType.Counter,
        _ => FamilyType.Gauge,
    };

    /// <summary>The text of one scrape.</summary>
    public string Scrape()
    {
        lock (_scrapeLock)
        {
            foreach (var family in _families.Values.Where(f => f.IsObserved)) family.ClearObserved();
            (string Model, string Version)[] unloaded;
            var forgetBefore = _time.GetUtcNow() - ForgetUnloadedAfter;
            lock (_loaded)
            {
                unloaded = _loaded.Where(pair => pair.Value.Count <= 0).Select(pair => pair.Key).ToArray();
                foreach (var labels in unloaded.Where(labels => _loaded[labels].Since < forgetBefore)) _loaded.Remove(labels);
            }
            foreach (var (model, version) in unloaded)
            {
                foreach (var family in _families.Values) family.Forget(model, version);
            }
            _listener.RecordObservableInstruments();
            var text = new StringBuilder(4096);
            foreach (var family in _families.Values.OrderBy(f => f.Name, StringComparer.Ordinal)) family.Write(text);
            return text.ToString();
        }
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>One instrument: its Prometheus name and one series per label set.</summary>
    private sealed class Family
    {
        private readonly Instrument _instrument;
        private readonly FamilyType _type;
        private readonly double[]? _buckets;
        private readonly ConcurrentDictionary<string, Series> _series = new(StringComparer.Ordinal);

        public Family(Instrument instrument, FamilyType type)
        {
            _instrument = instrument;
            _type = type;
            IsObserved = instrument.IsObservable;
            if (instrument is Histogram<double> histogram) _buckets = histogram.Advice?.HistogramBucketBoundaries?.ToArray();
            _buckets ??= type == FamilyType.Histogram ? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] : null;
            var name = instrument.Name.Replace('.', '_');
            if (instrument.Unit == "s") name += "_seconds";
            if (instrument.Unit == "By" && !name.EndsWith("_bytes", StringComparison.Ordinal)) name += "_bytes";
            if (type == FamilyType.Counter) name += "_total";
            Name = name;
        }

        public string Name { get; }

        /// <summary>Read at each scrape, each reading the whole value (a gauge's now, an observable counter's total).</summary>
        public bool IsObserved { get; }

        public void ClearObserved() => _series.Clear();

        /// <summary>Removes the series whose labels hold both of these.</summary>
        public void Forget(string modelLabel, string versionLabel)
        {
            foreach (var key in _series.Keys)
            {
                var labels = key.Split(',');
                if (labels.Contains(modelLabel) && labels.Contains(versionLabel)) _series.TryRemove(key, out _);
            }
        }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var labels = Labels(tags);
            var series = _series.GetOrAdd(labels, _ => new Series(_buckets?.Length ?? 0));
            lock (series)
            {
                if (IsObserved)
                {
                    series.Sum = value;
                    return;
                }
                series.Sum += value;
                series.Count++;
                if (_buckets is null) return;
                var bucket = Array.BinarySearch(_buckets, value);
                if (bucket < 0) bucket = ~bucket;
                if (bucket < _buckets.Length) series.Buckets[bucket]++;
            }
        }

        public void Write(StringBuilder text)
        {
            if (_series.IsEmpty) return;
            var type = _type switch { FamilyType.Histogram => "histogram", FamilyType.Gauge => "gauge", _ => "counter" };
            text.Append("# HELP ").Append(Name).Append(' ').Append(Escape(_instrument.Description ?? "", help: true)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(' ').Append(type).Append('\n');
            foreach (var (labels, series) in _series.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                lock (series)
                {
                    if (_type != FamilyType.Histogram)
                    {
                        text.Append(Name).Append(Braces(labels)).Append(' ').Append(Number(series.Sum)).Append('\n');
                        continue;
                    }
                    long cumulative = 0;
                    for (var i = 0; i < _buckets!.Length; i++)
                    {
                        cumulative += series.Buckets[i];
                        text.Append(Name).Append("_bucket").Append(Braces(Join(labels, $"le=\"{Number(_buckets[i])}\""))).Append(' ')
                            .Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
                    }
                    text.Append(Name).Append("_bucket").Append(Braces(Join(labels, "le=\"+Inf\""))).Append(' ')
                        .Append(series.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
                    text.Append(Name).Append("_sum").Append(Braces(labels)).Append(' ').Append(Number(series.Sum)).Append('\n');
                    text.Append(Name).Append("_count").Append(Braces(labels)).Append(' ')
                        .Append(series.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }
            }
        }

        private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length == 0) return "";
            var pairs = new List<string>(tags.Length);
            foreach (var tag in tags)
            {
                // The runtime's label names have dots (gc.heap.generation), which Prometheus does not allow.
                pairs.Add($"{tag.Key.Replace('.', '_')}=\"{Escape(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "", help: false)}\"");
            }
            pairs.Sort(StringComparer.Ordinal);
            return string.Join(',', pairs);
        }

        private static string Join(string labels, string extra) => labels.Length == 0 ? extra : labels + "," + extra;
        private static string Braces(string labels) => labels.Length == 0 ? "" : "{" + labels + "}";

        public static string Escape(string value, bool help)
        {
            var escaped = value.Replace("\\", "\\\\").Replace("\n", "\\n");
            return help ? escaped : escaped.Replace("\"", "\\\"");
        }

        private static string Number(double value) =>
            double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : value.ToString("R", CultureInfo.InvariantCulture);
    }

    private sealed class Series(int buckets)
    {
        public readonly long[] Buckets = new long[buckets];
        public double Sum;
        public long Count;
    }
}
