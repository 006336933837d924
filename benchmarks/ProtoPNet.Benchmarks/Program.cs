using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using ProtoPNet.Benchmarks;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

// Throughput of one bundle: in-process ONNX Runtime (session.Run, batch 1), the in-process pipeline (decode, run,
// explain) and POST /classify on 127.0.0.1, each at the same concurrency levels, with p50/p99 latency.
// Usage: dotnet run -c Release --project benchmarks/ProtoPNet.Benchmarks -- --bundle models/<name>/<version>
//          [--concurrency 1,8,32] [--seconds 10] [--image path.png] [--url http://127.0.0.1:5099] [--intra-op-threads 0]
var options = BenchmarkOptions.Parse(args);
var bundleDirectory = Path.GetFullPath(options.Bundle);
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

var input = new float[bundle.Session.ImageElementCount];
using (var decoded = decoder.Decode(imageBytes)) InputTensorWriter.Write(decoded.Pixels, bundle.Manifest.Input, input, 0);

await using var service = options.Url is null
    ? await ServiceProcess.StartAsync(bundleDirectory, bundle.Name, options.IntraOpThreads)
    : null;
var url = options.Url ?? service!.Url;
using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
{
    BaseAddress = new Uri(url),
    Timeout = TimeSpan.FromSeconds(120),
};
var classifyPath = $"/classify?model={Uri.EscapeDataString(bundle.Name)}@{Uri.EscapeDataString(bundle.Version)}";

async Task ClassifyOverHttp()
{
    using var content = new ByteArrayContent(imageBytes);
    content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
    using var response = await http.PostAsync(classifyPath, content);
    await response.Content.ReadAsByteArrayAsync();
    if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"/classify answered {(int)response.StatusCode}");
}

var loadBefore = LoadAverage();
var rows = new List<string[]>();
foreach (var concurrency in options.Concurrency)
{
    var ort = await LoadRunner.RunAsync(concurrency, options.Seconds, () =>
    {
        using var outputs = bundle.Session.Run(input, 1);
        return Task.CompletedTask;
    });
    var pipeline = await LoadRunner.RunAsync(concurrency, options.Seconds, () =>
    {
        classifier.Classify(bundle, imageBytes, new ExplainOptions());
        return Task.CompletedTask;
    });
    var overHttp = await LoadRunner.RunAsync(concurrency, options.Seconds, ClassifyOverHttp);
    rows.Add(
    [
        concurrency.ToString(CultureInfo.InvariantCulture),
        F(ort.ImagesPerSecond), F(ort.P50), F(ort.P99),
        F(pipeline.ImagesPerSecond),
        F(overHttp.ImagesPerSecond), F(overHttp.P50), F(overHttp.P99),
        (overHttp.ImagesPerSecond / ort.ImagesPerSecond).ToString("P0", CultureInfo.InvariantCulture),
    ]);
    Console.WriteLine($"concurrency {concurrency}: ORT {ort}; pipeline {pipeline}; /classify {overHttp}");
}

Console.WriteLine();
// Other work on the machine changes every number here; the load average says how busy it was.
Console.WriteLine($"load average before {loadBefore}, after {LoadAverage()}");
Console.WriteLine($"{bundle.Name}@{bundle.Version} ({bundle.Manifest.Input.Channels}x{bundle.Manifest.Input.Height}x{bundle.Manifest.Input.Width}, {bundle.PrototypeCount} prototypes, {bundle.Provider.Provider})");
string[] header = ["concurrency", "ORT img/s", "ORT p50 ms", "ORT p99 ms", "pipeline img/s", "/classify img/s", "/classify p50 ms", "/classify p99 ms", "/classify / ORT"];
Console.WriteLine("| " + string.Join(" | ", header) + " |");
Console.WriteLine("|" + string.Concat(Enumerable.Repeat(" --- |", header.Length)));
foreach (var row in rows) Console.WriteLine("| " + string.Join(" | ", row) + " |");
return 0;

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

static string F(double value) => value.ToString(value >= 100 ? "0" : value >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture);
