using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>The real service (Program) in the test server, with settings and a log collector.</summary>
public sealed class ServiceFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<Program>
{
    /// <summary>ONNX Runtime threads of one run in every test service.</summary>
    public const int IntraOpThreads = 1;

    /// <summary>
    /// A bundle loaded in process as the test services run it (CPU, <see cref="IntraOpThreads"/>): ONNX Runtime's sums
    /// depend on the thread count, so a reference computed on other threads differs in the last digits.
    /// </summary>
    public static ModelBundle LoadAsServed(string bundleDirectory) =>
        new BundleLoader(new SessionFactory(new InferenceOptions { ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = IntraOpThreads }))
            .Load(bundleDirectory);

    /// <summary>
    /// An upload's input tensor as the service writes it for <paramref name="bundle"/>: decoded for it, resized and
    /// normalised (with <paramref name="input"/> in place of the bundle's own preprocessing, to compare).
    /// </summary>
    public static float[] InputOf(ModelBundle bundle, byte[] image, InputSection? input = null)
    {
        input ??= bundle.Manifest.Input;
        using var decoded = new ImageDecoder(new ImageLimits()).DecodeFor(image, input);
        var tensor = new float[bundle.Session.ImageElementCount];
        InputTensorWriter.Write(decoded.Pixels, input, tensor, 0);
        return tensor;
    }

    public LogCollector Logs { get; } = new();

    /// <summary>Services put in place of the service's own (set before the first client or Services).</summary>
    public Action<IServiceCollection>? Replacing { get; set; }

    public static ServiceFactory ForRoot(string root, params (string Key, string? Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Models:Root"] = root,
            // The CPU, so that answers and metrics are the same on a machine with a GPU; ExecutionProviderTests cover auto and cuda.
            ["Inference:ExecutionProvider"] = "cpu",
            ["Inference:IntraOpThreads"] = $"{IntraOpThreads}",
            // Hot reload watches the root only in the tests about it: each watcher holds an inotify instance.
            ["Models:Watch"] = "false",
            ["Models:RescanIntervalSeconds"] = "0",
            // A broken bundle a test has just written is refused at once; BundleSettleTests cover the wait for a copy.
            ["Models:SettleSeconds"] = "0",
            // One run at a time in batches of 16, as configured: measuring the strategy at every load would add about a
            // second per test host; ExecutionStrategyTests load with the default (auto) and check what it chooses.
            ["Batching:Strategy"] = "fixed",
            ["Batching:MaxConcurrentRuns"] = "1",
        };
        foreach (var (key, value) in extra) settings[key] = value;
        return new ServiceFactory(settings);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        builder.ConfigureAppConfiguration((_, configuration) => configuration.AddInMemoryCollection(settings));
        builder.ConfigureServices(services => services.AddSingleton<ILoggerProvider>(Logs));
        builder.ConfigureTestServices(services => Replacing?.Invoke(services));
    }
}

/// <summary>Keeps every log line the service writes, with its level and when it was written (a Stopwatch timestamp).</summary>
public sealed class LogCollector : ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, string Category, string Message, long Written)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Collector(this, categoryName);

    /// <summary>
    /// The first message that matches, waiting for it a little: the request log line is written when the middleware
    /// unwinds, which can be just after the test client has the response.
    /// </summary>
    public async Task<string> WaitForAsync(Func<string, bool> match, int timeoutMs = 5000, Func<string>? onTimeout = null) =>
        (await WaitForEntryAsync(match, timeoutMs, onTimeout)).Message;

    /// <summary>
    /// As <see cref="WaitForAsync"/>, with when the line was written: the time this test noticed it can be much later
    /// on a busy machine.
    /// </summary>
    public async Task<(string Message, long Written)> WaitForEntryAsync(Func<string, bool> match, int timeoutMs = 5000, Func<string>? onTimeout = null)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            foreach (var entry in Entries)
            {
                if (match(entry.Message)) return (entry.Message, entry.Written);
            }
            if (Environment.TickCount64 > deadline) throw new TimeoutException("no log line matched" + (onTimeout is null ? "" : ": " + onTimeout()));
            await Task.Delay(20);
        }
    }

    public void Dispose()
    {
    }

    private sealed class Collector(LogCollector owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue((logLevel, category, formatter(state, exception), Stopwatch.GetTimestamp()));
    }
}
