using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// ONNX Runtime's own lines reach every listener of <see cref="OnnxRuntimeLog"/> (the service's forwarder is one), with
/// their severity, and a listener that throws loses only its own line: the call comes from native code, where an
/// exception would end the process.
/// </summary>
public class OnnxRuntimeLogTests
{
    [Fact]
    public void TheRuntimesLinesReachEveryListenerAndAThrowingOneEndsNothing()
    {
        Assert.True(OnnxRuntimeEnvironment.LogIsRouted);
        var lines = new ConcurrentQueue<OnnxRuntimeMessage>();
        using (OnnxRuntimeLog.Listen(_ => throw new InvalidOperationException("a listener that fails")))
        using (OnnxRuntimeLog.Listen(lines.Enqueue))
        {
            // A session's own level: the informational lines of its start, whatever the process's level.
            using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_INFO };
            using var session = new InferenceSession(CudaProbe.Model(), options);
        }
        var initializing = lines.Where(line => line.Text.StartsWith("Initializing session.", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(initializing);
        Assert.All(initializing, line => Assert.Equal(OrtLoggingLevel.ORT_LOGGING_LEVEL_INFO, line.Severity));
        Assert.All(initializing, line => Assert.Contains("inference_session.cc", line.CodeLocation, StringComparison.Ordinal));

        var countAfterListening = lines.Count;
        using (var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_INFO })
        using (new InferenceSession(CudaProbe.Model(), options)) { }
        Assert.Equal(countAfterListening, lines.Count);   // a disposed listener hears nothing more
    }
}

/// <summary>Makes ONNX Runtime's environment as the service does before any test of this assembly touches the runtime
/// (a <c>new SessionOptions()</c> first would make one of the runtime's defaults, which writes to stderr).</summary>
internal static class RuntimeEnvironmentFirst
{
#pragma warning disable CA2255 // a test assembly's one-time set-up: xunit 2 has no assembly fixture
    [ModuleInitializer]
    internal static void MakeIt() => OnnxRuntimeEnvironment.Instance();
#pragma warning restore CA2255
}
