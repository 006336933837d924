using System.Collections.Immutable;
using Microsoft.ML.OnnxRuntime;

namespace ProtoPNet.Inference.Runtime;

/// <summary>One line ONNX Runtime logged.</summary>
public sealed record OnnxRuntimeMessage(OrtLoggingLevel Severity, string Category, string CodeLocation, string Text);

/// <summary>
/// ONNX Runtime's own log lines (on CUDA its warning that shape operators stay on the CPU, its errors while a session
/// loads), which it would otherwise print to stderr in its own colours, past the service's structured log. The runtime's
/// environment is one per process, so its log is too: every listener gets every line, and with none listening the lines
/// go to stderr as the runtime would have written them.
/// </summary>
public static class OnnxRuntimeLog
{
    // Held here for the life of the process: the runtime keeps a pointer to it.
    private static readonly DOrtLoggingFunction Callback = Write;
    private static ImmutableArray<Action<OnnxRuntimeMessage>> _listeners = [];

    /// <summary>Sends the runtime's lines to <paramref name="listener"/> until the result is disposed.</summary>
    public static IDisposable Listen(Action<OnnxRuntimeMessage> listener)
    {
        ImmutableInterlocked.Update(ref _listeners, list => list.Add(listener));
        return new Subscription(listener);
    }

    /// <summary>Sets the least severe line the runtime writes (warnings unless set; the setting is the process's).</summary>
    public static void SetLevel(OrtLoggingLevel level) => OnnxRuntimeEnvironment.Instance().EnvLogLevel = level;

    internal static EnvironmentCreationOptions CreationOptions() => new()
    {
        logId = "protopnet",
        logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING,
        loggingFunction = Callback,
    };

    private static void Write(IntPtr param, OrtLoggingLevel severity, string category, string logId, string codeLocation, string message)
    {
        var listeners = _listeners;
        if (listeners.IsEmpty)
        {
            Console.Error.WriteLine($"onnxruntime {severity} [{category}] {codeLocation}: {message}");
            return;
        }
        var line = new OnnxRuntimeMessage(severity, category, codeLocation, message);
        foreach (var listener in listeners)
        {
            try
            {
                listener(line);
            }
            catch (Exception exception)
            {
                // Called from the runtime's native code, where an exception would end the process: a line is lost instead.
                Console.Error.WriteLine($"onnxruntime {severity} [{category}] {message} (not logged: {exception.GetType().Name}: {exception.Message})");
            }
        }
    }

    private sealed class Subscription(Action<OnnxRuntimeMessage> listener) : IDisposable
    {
        public void Dispose() => ImmutableInterlocked.Update(ref _listeners, list => list.Remove(listener));
    }
}
