using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using ProtoPNet.Benchmarks;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

// Throughput of one bundle at each concurrency level, with p50/p99 latency and CPU time per image:
//  - in-process ONNX Runtime, batch 1 (session.Run from N callers) and at the batch size a batcher of --max-batch-size
//    forms (one caller running min(N, max batch size) images per run);
//  - the in-process pipeline (decode, run, explain; batch 1);
//  - GET /health/live on 127.0.0.1, the round trip of a request that does nothing (the floor under /classify's latency);
//  - POST /classify on 127.0.0.1 to the Release service as a user gets it (its defaults, plus any --set), and to one
//    with a fixed batch of --max-batch-size and one run at a time (the configuration before the execution strategy was
//    measured at load), unless --no-fixed; or, with --versus Section:Key=value, to one configured as the first plus
//    those settings (an A/B of one setting in one run); with --versus-build DIR, to another build of the service (the
//    Release output folder of an earlier commit's worktree: an A/B of a code change in one run).
// The measurements of one concurrency level take turns in --rounds slices, so that other work on a shared machine
// weighs on all of them alike and their ratios hold.
// --soak S instead runs /classify on the default service for S seconds at the highest --concurrency and reports the
// service's resident memory at start and end.
if (BenchmarkOptions.AsksForHelp(args))
{
    Console.WriteLine(BenchmarkOptions.Usage);
    return 0;
}
BenchmarkOptions options;
try
{
    options = BenchmarkOptions.Parse(args);
}
catch (ArgumentException exception)
{
    Console.Error.WriteLine($"{exception.Message}\n{BenchmarkOptions.Usage}");
    return 2;
}
// "models/x/v/" (as shell completion writes it) and "models/x/v" are the same bundle.
var bundleDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Bundle));
// The in-process baseline runs the session as the service does (no spinning threads, whose waiting would count as CPU
// time), on the provider the service is given (--set Inference:ExecutionProvider=cuda: CUDA or a stop that says why).
var inferenceOptions = new InferenceOptions { ExecutionProvider = options.ExecutionProvider, IntraOpThreads = options.IntraOpThreads };
using var bundle = new BundleLoader(new SessionFactory(inferenceOptions)).Load(bundleDirectory);
var imagePath = options.Image ?? Path.Combine(bundleDirectory, "prototypes", "0", "source.png");
var imageBytes = await File.ReadAllBytesAsync(imagePath);
var decoder = new ImageDecoder(new ImageLimits());
var classifier = new Classifier(decoder);
string imageType;
using (var probe = decoder.Decode(imageBytes))
{
    imageType = "image/" + probe.Format.ToLowerInvariant();
    Console.WriteLine($"bundle {bundle.Name}@{bundle.Version}: input {bundle.Manifest.Input.Channels}x{bundle.Manifest.Input.Height}x{bundle.Manifest.Input.Width}, " +
                      $"{bundle.ClassCount} classes, {bundle.PrototypeCount} prototypes, provider {bundle.Provider.Provider}" +
                      (bundle.Provider.FallbackReason is { } reason ? $" (CUDA cannot be used: {reason})" : ""));
    Console.WriteLine($"image {imagePath} ({probe.Width}x{probe.Height} {probe.Format}, {imageBytes.Length} bytes); {Environment.ProcessorCount} cores; " +
                      $"{options.Seconds} s per measurement in {options.Rounds} rounds");
}

Dictionary<string, string> AsEnvironment(IEnumerable<string> settings) =>
    settings.Select(s => s.Split('=', 2)).GroupBy(s => s[0].Replace(":", "__")).ToDictionary(g => g.Key, g => g.Last()[1]);
var userSettings = AsEnvironment(options.ServiceSettings);
await using var service = options.Url is null
    ? await ServiceProcess.StartAsync(bundleDirectory, bundle.Name, options.IntraOpThreads, userSettings)
    : null;
HttpClient Client(string url) => new(new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
{
    BaseAddress = new Uri(url),
    Timeout = TimeSpan.FromSeconds(120),
};
using var http = Client(options.Url ?? service!.Url);
var classifyPath = $"/classify?model={Uri.EscapeDataString(bundle.Name)}@{Uri.EscapeDataString(bundle.Version)}";
var versionPath = $"/models/{Uri.EscapeDataString(bundle.Name)}/versions/{Uri.EscapeDataString(bundle.Version)}";
var strategy = await ExecutionStrategyOf(http);
Console.WriteLine($"service execution strategy: {strategy}");

var statuses = new ConcurrentDictionary<int, long>();
// The load generator's clients (their connections), closed when the benchmark ends.
using var loadClients = new Disposables();
// POST /classify with the image, as load: with the lean client unless --httpclient (to compare what the client costs).
// Without an image, GET /health/live instead: a request that does nothing, the floor under every /classify latency.
Func<Task> OverHttp(string url, bool classify = true, bool tolerateOverload = false)
{
    var path = classify ? classifyPath : "/health/live";
    void Count(int status)
    {
        statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
        if (status is < 200 or > 299 && !(tolerateOverload && status == 503)) throw new InvalidOperationException($"{path} answered {status}");
    }
    if (options.HttpClient)
    {
        var client = Client(url);
        loadClients.Add(client);
        if (!classify)
        {
            return async () =>
            {
                using var response = await client.GetAsync(path);
                await response.Content.ReadAsByteArrayAsync();
                Count((int)response.StatusCode);
            };
        }
        return async () =>
        {
            using var content = new ByteArrayContent(imageBytes);
            content.Headers.ContentType = new MediaTypeHeaderValue(imageType);
            using var response = await client.PostAsync(path, content);
            await response.Content.ReadAsByteArrayAsync();
            Count((int)response.StatusCode);
        };
    }
    var lean = new LeanHttpClient(new Uri(url));
    loadClients.Add(lean);
    var request = classify ? lean.Post(path, imageType, imageBytes) : lean.Get(path);
    return async () => Count(await lean.SendAsync(request));
}
var classifyLoad = OverHttp(options.Url ?? service!.Url);
var floorLoad = OverHttp(options.Url ?? service!.Url, classify: false);

const double WarmUpSeconds = 5;
if (options.SoakSeconds > 0) return await SoakAsync();

// The second service: the first's settings (--set) plus --versus (and from --versus-build's build, if given), or else
// plus the fixed batch.
var versus = options.VersusSettings.Length > 0 || options.VersusBuild is not null;
var versusDescription = string.Join(' ', options.VersusSettings.Append(options.VersusBuild is null ? "" : $"build {options.VersusBuild}")).Trim();
var secondName = versus ? $"/classify versus {versusDescription}" : $"/classify fixed b={options.MaxBatchSize}";
string[] fixedBatch = ["Batching:Strategy=Fixed", $"Batching:MaxBatchSize={options.MaxBatchSize}", "Batching:MaxConcurrentRuns=1"];
await using var secondService = options.Url is null && (options.Fixed || versus)
    ? await ServiceProcess.StartAsync(bundleDirectory, bundle.Name, options.IntraOpThreads,
        AsEnvironment(options.ServiceSettings.Concat(versus ? options.VersusSettings : fixedBatch)), options.VersusBuild)
    : null;
if (versus)
{
    using var secondHttp = Client(secondService!.Url);
    Console.WriteLine($"versus service execution strategy: {await ExecutionStrategyOf(secondHttp)}");
}
var secondLoad = secondService is null ? null : OverHttp(secondService.Url);

// The same image repeated for the largest batch measured.
var elements = bundle.Session.ImageElementCount;
var input = new float[elements * options.MaxBatchSize];
using (var decoded = decoder.DecodeFor(imageBytes, bundle.Manifest.Input)) InputTensorWriter.Write(decoded.Pixels, bundle.Manifest.Input, input, 0);
for (var i = 1; i < options.MaxBatchSize; i++) Array.Copy(input, 0, input, i * elements, elements);

// The services' hot paths are compiled again, optimised, once they have run a while (tiered JIT): that one-time CPU
// belongs to start-up, not to the images measured, so each service serves a few seconds of load first.
foreach (var load in new[] { classifyLoad, secondLoad }.OfType<Func<Task>>())
{
    await LoadRunner.RunAsync(Math.Min(8, options.Concurrency.Max()), WarmUpSeconds, load);
}

var loadBefore = LoadAverage();
var rows = new List<string[]>();
foreach (var concurrency in options.Concurrency)
{
    if (options.ClassifyOnly)
    {
        // /classify alone (and the second service's), for a look at the service under load while something watches it.
        var classifyOnly = await LoadRunner.RunAsync(concurrency, options.Seconds, classifyLoad, service is null ? () => TimeSpan.Zero : () => service.CpuTime);
        var secondOnly = secondLoad is null ? null : await LoadRunner.RunAsync(concurrency, options.Seconds, secondLoad, () => secondService!.CpuTime);
        Console.WriteLine($"concurrency {concurrency}: /classify {classifyOnly.PerOperation(1)}" + (secondOnly is null ? "" : $"; {secondName} {secondOnly.PerOperation(1)}"));
        continue;
    }
    var batch = Math.Min(concurrency, options.MaxBatchSize);
    var measurements = new List<Measurement>
    {
        new("ORT b=1", concurrency, 1, () =>
        {
            using var outputs = bundle.Session.Run(input, 1);
            return Task.CompletedTask;
        }, null),
        // In-process ONNX Runtime at the batch size a batcher forms for this many callers: one caller, b images a run.
        new($"ORT b={batch}", 1, batch, () =>
        {
            using var outputs = bundle.Session.Run(input, batch);
            return Task.CompletedTask;
        }, null),
        new("pipeline", concurrency, 1, () =>
        {
            classifier.Classify(bundle, imageBytes, new ExplainOptions());
            return Task.CompletedTask;
        }, null),
        // The services' own CPU time (not this client's), when they are ours to measure.
        new("/classify", concurrency, 1, classifyLoad, service is null ? () => TimeSpan.Zero : () => service.CpuTime),
        // The round trip of a request that does nothing: what loopback, HTTP and thread wake-ups cost on this machine.
        new("GET /health/live", concurrency, 1, floorLoad, null),
    };
    if (secondLoad is not null)
    {
        measurements.Add(new(secondName, concurrency, 1, secondLoad, () => secondService!.CpuTime));
    }
    var results = await MeasureInRoundsAsync(measurements);
    var (ort, ortBatched, pipeline, classify, floor) = (results[0], results[1], results[2], results[3], results[4]);
    var secondRun = results.Count > 5 ? results[5] : null;
    var best = Math.Max(ort.ImagesPerSecond, ortBatched.ImagesPerSecond);
    var leanest = Math.Min(ort.CpuMsPerImage, ortBatched.CpuMsPerImage);
    rows.Add(
    [
        concurrency.ToString(CultureInfo.InvariantCulture),
        F(ort.ImagesPerSecond), F(ort.P50), F(ort.P99),
        $"{F(ortBatched.ImagesPerSecond)} (b={batch})",
        F(pipeline.ImagesPerSecond), F(pipeline.P50),
        F(classify.ImagesPerSecond), F(classify.P50), F(classify.P99), F(floor.P50),
        secondRun is null ? "-" : F(secondRun.ImagesPerSecond), secondRun is null ? "-" : F(secondRun.P50), secondRun is null ? "-" : F(secondRun.P99),
        (classify.ImagesPerSecond / best).ToString("P0", CultureInfo.InvariantCulture),
        $"{F(ort.CpuMsPerImage)} / {F(ortBatched.CpuMsPerImage)}",
        service is null ? "-" : F(classify.CpuMsPerImage), secondRun is null ? "-" : F(secondRun.CpuMsPerImage),
        service is null ? "-" : (classify.CpuMsPerImage / leanest).ToString("0.00x", CultureInfo.InvariantCulture),
        secondRun is null ? "-" : (secondRun.CpuMsPerImage / leanest).ToString("0.00x", CultureInfo.InvariantCulture),
        F(classify.ClientCpuMsPerOperation),
    ]);
    Console.WriteLine($"concurrency {concurrency}: " + string.Join("; ", measurements.Select((m, i) => $"{m.Name} {results[i]}")));
}

if (options.ClassifyOnly) return 0;
Console.WriteLine();
// Other work on the machine changes every number here; the load average says how busy it was.
Console.WriteLine($"load average before {loadBefore}, after {LoadAverage()}");
Console.WriteLine($"{bundle.Name}@{bundle.Version} ({bundle.Manifest.Input.Channels}x{bundle.Manifest.Input.Height}x{bundle.Manifest.Input.Width}, " +
                  $"{bundle.PrototypeCount} prototypes, {bundle.Provider.Provider}); /classify: {strategy}; " +
                  (versus ? $"versus: {versusDescription}" : $"fixed: Batching:Strategy Fixed, MaxBatchSize {options.MaxBatchSize}, MaxConcurrentRuns 1"));
var second = versus ? "/classify versus" : "/classify fixed";
string[] header =
[
    "concurrency", "ORT b=1 img/s", "ORT b=1 p50 ms", "ORT b=1 p99 ms", "ORT batched img/s", "pipeline img/s", "pipeline p50 ms",
    "/classify img/s", "p50 ms", "p99 ms", "GET /health/live p50 ms", $"{second} img/s", "p50 ms", "p99 ms", "/classify / best ORT",
    "ORT CPU ms/img (b=1 / batched)", "/classify CPU ms/img", $"{second} CPU ms/img", "/classify CPU / leanest ORT",
    $"{second} CPU / leanest ORT",
    "client CPU ms/request",
];
// CPU ratio = the service's CPU time per image / the leanest in-process ORT's: how much more CPU an image costs served
// than run alone. Unlike img/s it hardly depends on other work on the machine. Client CPU = this process's CPU per
// /classify request: the load generator shares the cores with the service, which in-process ORT does not have to.
// GET /health/live p50 = the same client's round trip for a request the service answers from memory: at concurrency 1,
// /classify's p50 is about the pipeline's p50 plus this floor.
Console.WriteLine("| " + string.Join(" | ", header) + " |");
Console.WriteLine("|" + string.Concat(Enumerable.Repeat(" --- |", header.Length)));
foreach (var row in rows) Console.WriteLine("| " + string.Join(" | ", row) + " |");
return 0;

// Each measurement runs options.Seconds in all, in options.Rounds slices taking turns with the others.
async Task<List<LoadResult>> MeasureInRoundsAsync(List<Measurement> measurements)
{
    var results = new LoadResult?[measurements.Count];
    for (var round = 0; round < options.Rounds; round++)
    {
        for (var m = 0; m < measurements.Count; m++)
        {
            var (_, concurrency, images, operation, cpuTime) = measurements[m];
            var slice = (await LoadRunner.RunAsync(concurrency, options.Seconds / options.Rounds, operation, cpuTime)).PerOperation(images);
            results[m] = results[m] is { } earlier ? earlier.Add(slice) : slice;
        }
    }
    return results.Select(r => r!).ToList();
}

// A long run at the highest concurrency against the default service: throughput, latency, 503s and resident memory.
async Task<int> SoakAsync()
{
    if (service is null) throw new ArgumentException("--soak measures the service it starts; leave out --url");
    var concurrency = options.Concurrency.Max();
    var interval = Math.Min(30, options.SoakSeconds);
    var startRss = service.ResidentBytes;
    var peakRss = startRss;
    Console.WriteLine($"soak: {options.SoakSeconds} s of /classify at concurrency {concurrency}; service RSS at start {Mb(startRss)} (after load and warm-up)");
    Console.WriteLine("| seconds | img/s | p50 ms | p99 ms | 503s | RSS MiB |");
    Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
    var firstInterval = 0L;
    var load = OverHttp(service.Url, tolerateOverload: true);
    for (var elapsed = 0.0; elapsed < options.SoakSeconds; elapsed += interval)
    {
        statuses.Clear();
        var result = await LoadRunner.RunAsync(concurrency, interval, load, () => service.CpuTime);
        var rss = service.ResidentBytes;
        peakRss = Math.Max(peakRss, rss);
        if (elapsed == 0) firstInterval = rss;
        Console.WriteLine($"| {elapsed + interval:0} | {F(result.ImagesPerSecond)} | {F(result.P50)} | {F(result.P99)} | " +
                          $"{statuses.GetValueOrDefault(503)} | {Mb(rss)} |");
    }
    var endRss = service.ResidentBytes;
    Console.WriteLine($"service RSS: start {Mb(startRss)}, after the first {interval:0} s {Mb(firstInterval)}, end {Mb(endRss)}, peak {Mb(peakRss)} MiB; " +
                      $"load average {LoadAverage()}");
    return 0;
}

async Task<string> ExecutionStrategyOf(HttpClient client)
{
    try
    {
        using var version = System.Text.Json.JsonDocument.Parse(await client.GetStringAsync(versionPath));
        return version.RootElement.TryGetProperty("executionStrategy", out var chosen) ? chosen.ToString() : "(not reported)";
    }
    catch (HttpRequestException exception)
    {
        return $"(unknown: {exception.Message})";
    }
}

static string Mb(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("0", CultureInfo.InvariantCulture);

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

static string F(double value) => value.ToString(value >= 100 ? "0" : value >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture);

/// <summary>One thing measured: <paramref name="Concurrency"/> callers each running <paramref name="Operation"/> of <paramref name="Images"/> images.</summary>
internal sealed record Measurement(string Name, int Concurrency, int Images, Func<Task> Operation, Func<TimeSpan>? CpuTime);

/// <summary>Things disposed together, in the order added.</summary>
internal sealed class Disposables : List<IDisposable>, IDisposable
{
    public void Dispose()
    {
        foreach (var disposable in this) disposable.Dispose();
    }
}
