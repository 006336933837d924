using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using ProtoPNet.Benchmarks;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

// Throughput of one bundle at each concurrency level, with p50/p99 latency:
//  - in-process ONNX Runtime, batch 1 (session.Run from N callers) and at the batch size the service's batcher forms
//    (one caller running min(N, max batch size) images per run);
//  - the in-process pipeline (decode, run, explain; batch 1);
//  - POST /classify on 127.0.0.1 to the Release service with dynamic batching (Batching:MaxBatchSize) and without (1).
// Usage: dotnet run -c Release --project benchmarks/ProtoPNet.Benchmarks -- --bundle models/<name>/<version>
//          [--concurrency 1,4,16,32,64] [--seconds 10] [--image path.png] [--url http://127.0.0.1:5099]
//          [--intra-op-threads 0] [--max-batch-size 16] [--no-unbatched]
var options = BenchmarkOptions.Parse(args);
var bundleDirectory = Path.GetFullPath(options.Bundle);
// The in-process baseline runs the session as the service does (no spinning threads, whose waiting would count as CPU time).
var inferenceOptions = new InferenceOptions { ExecutionProvider = ExecutionProviderKind.Auto, IntraOpThreads = options.IntraOpThreads };
using var bundle = new BundleLoader(new SessionFactory(inferenceOptions)).Load(bundleDirectory);
var imagePath = options.Image ?? Path.Combine(bundleDirectory, "prototypes", "0", "source.png");
var imageBytes = await File.ReadAllBytesAsync(imagePath);
var decoder = new ImageDecoder(new ImageLimits());
var classifier = new Classifier(decoder);
using (var probe = decoder.Decode(imageBytes))
{
    Console.WriteLine($"bundle {bundle.Name}@{bundle.Version}: input {bundle.Manifest.Input.Channels}x{bundle.Manifest.Input.Height}x{bundle.Manifest.Input.Width}, " +
                      $"{bundle.ClassCount} classes, {bundle.PrototypeCount} prototypes, provider {bundle.Provider.Provider}");
    Console.WriteLine($"image {imagePath} ({probe.Width}x{probe.Height} {probe.Format}, {imageBytes.Length} bytes); {Environment.ProcessorCount} cores; {options.Seconds} s per measurement");
}

// The same image repeated for the largest batch the batcher forms.
var elements = bundle.Session.ImageElementCount;
var input = new float[elements * options.MaxBatchSize];
using (var decoded = decoder.Decode(imageBytes)) InputTensorWriter.Write(decoded.Pixels, bundle.Manifest.Input, input, 0);
for (var i = 1; i < options.MaxBatchSize; i++) Array.Copy(input, 0, input, i * elements, elements);

var batchSize = options.MaxBatchSize.ToString(CultureInfo.InvariantCulture);
await using var batched = options.Url is null
    ? await ServiceProcess.StartAsync(bundleDirectory, bundle.Name, options.IntraOpThreads, new Dictionary<string, string> { ["Batching__MaxBatchSize"] = batchSize })
    : null;
await using var unbatched = options.Url is null && options.Unbatched
    ? await ServiceProcess.StartAsync(bundleDirectory, bundle.Name, options.IntraOpThreads, new Dictionary<string, string> { ["Batching__MaxBatchSize"] = "1" })
    : null;
HttpClient Client(string url) => new(new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
{
    BaseAddress = new Uri(url),
    Timeout = TimeSpan.FromSeconds(120),
};
using var batchedHttp = Client(options.Url ?? batched!.Url);
using var unbatchedHttp = unbatched is null ? null : Client(unbatched.Url);
var classifyPath = $"/classify?model={Uri.EscapeDataString(bundle.Name)}@{Uri.EscapeDataString(bundle.Version)}";

Func<Task> ClassifyOverHttp(HttpClient http) => async () =>
{
    using var content = new ByteArrayContent(imageBytes);
    content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
    using var response = await http.PostAsync(classifyPath, content);
    await response.Content.ReadAsByteArrayAsync();
    if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"/classify answered {(int)response.StatusCode}");
};

var loadBefore = LoadAverage();
var rows = new List<string[]>();
foreach (var concurrency in options.Concurrency)
{
    var ort = await LoadRunner.RunAsync(concurrency, options.Seconds, () =>
    {
        using var outputs = bundle.Session.Run(input, 1);
        return Task.CompletedTask;
    });
    // In-process ONNX Runtime at the batch size the batcher forms for this many callers: one caller, b images a run.
    var batch = Math.Min(concurrency, options.MaxBatchSize);
    var ortBatched = (await LoadRunner.RunAsync(1, options.Seconds, () =>
    {
        using var outputs = bundle.Session.Run(input, batch);
        return Task.CompletedTask;
    })).PerOperation(batch);
    var pipeline = await LoadRunner.RunAsync(concurrency, options.Seconds, () =>
    {
        classifier.Classify(bundle, imageBytes, new ExplainOptions());
        return Task.CompletedTask;
    });
    // The services' own CPU time (not this client's), when they are ours to measure.
    var withBatching = await LoadRunner.RunAsync(concurrency, options.Seconds, ClassifyOverHttp(batchedHttp),
        batched is null ? () => TimeSpan.Zero : () => batched.CpuTime);
    var withoutBatching = unbatchedHttp is null ? null
        : await LoadRunner.RunAsync(concurrency, options.Seconds, ClassifyOverHttp(unbatchedHttp), () => unbatched!.CpuTime);
    var best = Math.Max(ort.ImagesPerSecond, ortBatched.ImagesPerSecond);
    var leanest = Math.Min(ort.CpuMsPerImage, ortBatched.CpuMsPerImage);
    rows.Add(
    [
        concurrency.ToString(CultureInfo.InvariantCulture),
        F(ort.ImagesPerSecond), F(ort.P50), F(ort.P99),
        $"{F(ortBatched.ImagesPerSecond)} (b={batch})",
        F(pipeline.ImagesPerSecond),
        F(withBatching.ImagesPerSecond), F(withBatching.P50), F(withBatching.P99),
        withoutBatching is null ? "-" : F(withoutBatching.ImagesPerSecond), withoutBatching is null ? "-" : F(withoutBatching.P50),
        withoutBatching is null ? "-" : F(withoutBatching.P99),
        (withBatching.ImagesPerSecond / best).ToString("P0", CultureInfo.InvariantCulture),
        $"{F(ort.CpuMsPerImage)} / {F(ortBatched.CpuMsPerImage)}",
        batched is null ? "-" : F(withBatching.CpuMsPerImage), withoutBatching is null ? "-" : F(withoutBatching.CpuMsPerImage),
        batched is null ? "-" : (leanest / withBatching.CpuMsPerImage).ToString("P0", CultureInfo.InvariantCulture),
        withoutBatching is null ? "-" : (leanest / withoutBatching.CpuMsPerImage).ToString("P0", CultureInfo.InvariantCulture),
    ]);
    Console.WriteLine($"concurrency {concurrency}: ORT b=1 {ort}; ORT b={batch} {ortBatched}; pipeline {pipeline}; /classify batched {withBatching}" +
                      (withoutBatching is null ? "" : $"; /classify unbatched {withoutBatching}"));
}

Console.WriteLine();
// Other work on the machine changes every number here; the load average says how busy it was.
Console.WriteLine($"load average before {loadBefore}, after {LoadAverage()}");
Console.WriteLine($"{bundle.Name}@{bundle.Version} ({bundle.Manifest.Input.Channels}x{bundle.Manifest.Input.Height}x{bundle.Manifest.Input.Width}, {bundle.PrototypeCount} prototypes, {bundle.Provider.Provider}); " +
                  $"batched service: Batching:MaxBatchSize {options.MaxBatchSize}");
string[] header =
[
    "concurrency", "ORT b=1 img/s", "ORT b=1 p50 ms", "ORT b=1 p99 ms", "ORT batched img/s", "pipeline img/s",
    "/classify batched img/s", "p50 ms", "p99 ms", "/classify unbatched img/s", "p50 ms", "p99 ms", "batched / best ORT",
    "ORT CPU ms/img (b=1 / batched)", "/classify batched CPU ms/img", "/classify unbatched CPU ms/img",
    "CPU efficiency batched", "CPU efficiency unbatched",
];
// CPU efficiency = the leanest in-process ORT CPU time per image / the service's: the share of in-process throughput the
// service reaches on an otherwise idle machine when CPU-bound. Unlike img/s it does not depend on other work on the machine.
Console.WriteLine("| " + string.Join(" | ", header) + " |");
Console.WriteLine("|" + string.Concat(Enumerable.Repeat(" --- |", header.Length)));
foreach (var row in rows) Console.WriteLine("| " + string.Join(" | ", row) + " |");
return 0;

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

static string F(double value) => value.ToString(value >= 100 ? "0" : value >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture);
