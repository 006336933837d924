using System.Diagnostics;
using System.Globalization;

namespace ProtoPNet.Benchmarks;

public sealed record LoadResult(int Concurrency, long Completed, double Seconds, double P50, double P99)
{
    /// <summary>Every latency measured, sorted, in milliseconds (to combine slices of one measurement).</summary>
    public double[] Latencies { get; init; } = [];

    /// <summary>This measurement and a later slice of it as one: counts, time and CPU added, percentiles of all latencies.</summary>
    public LoadResult Add(LoadResult other)
    {
        var all = Latencies.Concat(other.Latencies).Order().ToArray();
        return this with
        {
            Completed = Completed + other.Completed, Seconds = Seconds + other.Seconds,
            P50 = LoadRunner.Percentile(all, 0.50), P99 = LoadRunner.Percentile(all, 0.99), Latencies = all,
            CpuMilliseconds = CpuMilliseconds + other.CpuMilliseconds,
            ClientCpuMilliseconds = ClientCpuMilliseconds + other.ClientCpuMilliseconds,
        };
    }

    /// <summary>Images per operation (a batched run); 1 for one image per operation.</summary>
    public int ImagesPerOperation { get; init; } = 1;

    public double ImagesPerSecond => Completed * ImagesPerOperation / Seconds;

    public LoadResult PerOperation(int images) => this with { ImagesPerOperation = images };

    /// <summary>CPU time the measured process spent (timed part only), in milliseconds.</summary>
    public double CpuMilliseconds { get; init; }

    /// <summary>
    /// CPU milliseconds per image: what the throughput would be on an otherwise idle machine when CPU-bound
    /// (cores x 1000 / this), unlike img/s, which other work on a shared machine changes.
    /// </summary>
    public double CpuMsPerImage => CpuMilliseconds / Math.Max(1, Completed * ImagesPerOperation);

    /// <summary>CPU time of this benchmark process meanwhile (the load generator, for an HTTP measurement), in milliseconds.</summary>
    public double ClientCpuMilliseconds { get; init; }

    /// <summary>The load generator's CPU milliseconds per operation: on a machine it shares with the service, not the service's to use.</summary>
    public double ClientCpuMsPerOperation => ClientCpuMilliseconds / Math.Max(1, Completed);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{ImagesPerSecond:0.0} img/s, p50 {P50:0.00} ms, p99 {P99:0.00} ms ({Completed} in {Seconds:0.0} s)");
}

/// <summary>Runs an operation from N concurrent workers for a fixed time (after a short warm-up) and records every latency.</summary>
public static class LoadRunner
{
    /// <param name="cpuTime">The CPU time so far of the process doing the work (this one, or the service's).</param>
    public static async Task<LoadResult> RunAsync(int concurrency, double seconds, Func<Task> operation, Func<TimeSpan>? cpuTime = null)
    {
        static TimeSpan OwnCpuTime() => Process.GetCurrentProcess().TotalProcessorTime;
        cpuTime ??= OwnCpuTime;
        // Warm-up: every worker once, so connections, pools and first-run costs are paid before timing.
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(operation)));
        var cpuBefore = cpuTime();
        var ownCpuBefore = OwnCpuTime();

        var latencies = new List<double>[concurrency];
        var total = Stopwatch.StartNew();
        var deadline = TimeSpan.FromSeconds(seconds);
        var workers = Enumerable.Range(0, concurrency).Select(worker => Task.Run(async () =>
        {
            var own = latencies[worker] = new List<double>(4096);
            while (total.Elapsed < deadline)
            {
                var started = Stopwatch.GetTimestamp();
                await operation();
                own.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        })).ToArray();
        await Task.WhenAll(workers);
        var elapsed = total.Elapsed.TotalSeconds;
        var cpu = (cpuTime() - cpuBefore).TotalMilliseconds;
        var ownCpu = (OwnCpuTime() - ownCpuBefore).TotalMilliseconds;
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new LoadResult(concurrency, all.Length, elapsed, Percentile(all, 0.50), Percentile(all, 0.99)) { CpuMilliseconds = cpu, ClientCpuMilliseconds = ownCpu, Latencies = all };
    }

    internal static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
