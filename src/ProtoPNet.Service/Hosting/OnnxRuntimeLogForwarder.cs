using Microsoft.ML.OnnxRuntime;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Service.Hosting;

/// <summary>
/// Writes ONNX Runtime's own log lines into the service's structured log under the category <c>OnnxRuntime</c>, so they
/// are filtered, formatted and shipped like every other line (stderr, where the runtime writes by itself, bypassed the
/// JSON log). <c>Serilog:MinimumLevel:Override:OnnxRuntime</c> sets how much the runtime says: Debug brings its informational lines,
/// Trace its verbose ones; by default it says warnings and errors. Registered before the model loading, whose first
/// session makes the runtime talk.
/// </summary>
public sealed class OnnxRuntimeLogForwarder(ILoggerFactory loggerFactory) : IHostedService
{
    public const string Category = "OnnxRuntime";

    // ONNX Runtime's note on every CUDA session that shape operators stay on the CPU: by design, explained in the README
    // (GPU configuration), and so not a warning an operator should act on.
    private static readonly string[] ExpectedOnCuda =
    [
        "Some nodes were not assigned to the preferred execution providers",
        "Rerunning with verbose output on a non-minimal build will show node assignments",
    ];

    private readonly ILogger _logger = loggerFactory.CreateLogger(Category);
    private IDisposable? _subscription;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        OnnxRuntimeLog.SetLevel(LeastSevereEnabled());
        _subscription = OnnxRuntimeLog.Listen(Write);
        if (!OnnxRuntimeEnvironment.LogIsRouted)
            _logger.LogWarning("ONNX Runtime's environment was made before the service's: its own lines go to stderr, not to this log");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _subscription?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>How the runtime's severities read in the service's log.</summary>
    public static LogLevel LevelOf(OnnxRuntimeMessage message) => message.Severity switch
    {
        OrtLoggingLevel.ORT_LOGGING_LEVEL_VERBOSE => LogLevel.Trace,
        OrtLoggingLevel.ORT_LOGGING_LEVEL_INFO => LogLevel.Debug,
        OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING when ExpectedOnCuda.Any(text => message.Text.StartsWith(text, StringComparison.Ordinal)) => LogLevel.Information,
        OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING => LogLevel.Warning,
        OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR => LogLevel.Error,
        _ => LogLevel.Critical,
    };

    private void Write(OnnxRuntimeMessage message) =>
        _logger.Log(LevelOf(message), "{RuntimeMessage} ({RuntimeCategory}, {RuntimeLocation})", message.Text, message.Category, message.CodeLocation);

    private OrtLoggingLevel LeastSevereEnabled() =>
        _logger.IsEnabled(LogLevel.Trace) ? OrtLoggingLevel.ORT_LOGGING_LEVEL_VERBOSE
        : _logger.IsEnabled(LogLevel.Debug) ? OrtLoggingLevel.ORT_LOGGING_LEVEL_INFO
        : _logger.IsEnabled(LogLevel.Warning) ? OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING
        : _logger.IsEnabled(LogLevel.Error) ? OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR
        : OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
}
