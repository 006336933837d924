using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Prometheus text exposition (format 0.0.4) of the <c>ProtoPNet.Service</c> meter's instruments, aggregated here from a
/// <see cref="MeterListener"/>: counters as <c>_total</c>, histograms with the buckets their instrument advises (cumulative
/// <c>_bucket</c>, <c>_sum</c>, <c>_count</c>), observable gauges read at each scrape. Small and dependency-free, so the
/// metric names are exactly the documented ones.
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

    public PrometheusExposition(ServiceMetrics metrics, TimeProvider time)
    {
        _time = time;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            // Only this host's meter: tests run several hosts in one process, each with a meter of the same name.
            if (!ReferenceEquals(instrument.Meter, metrics.Meter)) return;
            _families[instrument] = new Family(instrument);
            listener.EnableMeasurementEvents(instrument, _families[instrument]);
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

    /// <summary>The text of one scrape.</summary>
    public string Scrape()
    {
        lock (_scrapeLock)
        {
            foreach (var family in _families.Values.Where(f => f.IsGauge)) family.ClearGauge();
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
        private readonly double[]? _buckets;
        private readonly ConcurrentDictionary<string, Series> _series = new(StringComparer.Ordinal);

        public Family(Instrument instrument)
        {
            _instrument = instrument;
            IsGauge = instrument is ObservableGauge<long> or ObservableGauge<double>;
            IsHistogram = instrument is Histogram<double> or Histogram<long>;
            if (instrument is Histogram<double> histogram) _buckets = histogram.Advice?.HistogramBucketBoundaries?.ToArray();
            _buckets ??= IsHistogram ? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] : null;
            var name = instrument.Name.Replace('.', '_');
            if (instrument.Unit == "s") name += "_seconds";
            if (instrument is Counter<long> or Counter<double>) name += "_total";
            Name = name;
        }

        public string Name { get; }
        public bool IsGauge { get; }
        private bool IsHistogram { get; }

        public void ClearGauge() => _series.Clear();

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
                if (IsGauge)
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
            var type = IsHistogram ? "histogram" : IsGauge ? "gauge" : "counter";
            text.Append("# HELP ").Append(Name).Append(' ').Append(Escape(_instrument.Description ?? "", help: true)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(' ').Append(type).Append('\n');
            foreach (var (labels, series) in _series.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                lock (series)
                {
                    if (!IsHistogram)
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
                pairs.Add($"{tag.Key}=\"{Escape(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "", help: false)}\"");
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
