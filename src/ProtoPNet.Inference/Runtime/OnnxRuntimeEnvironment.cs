using Microsoft.ML.OnnxRuntime;

namespace ProtoPNet.Inference.Runtime;

/// <summary>
/// Makes ONNX Runtime's process-wide environment once, before any session: with its usage telemetry off
/// (<see cref="OnnxRuntimeTelemetry"/>) and its log lines handed to <see cref="OnnxRuntimeLog"/>. Both must be settled
/// when the environment is made; one made earlier by other code keeps the runtime's defaults (stderr).
/// </summary>
public static class OnnxRuntimeEnvironment
{
    private static readonly Lazy<OrtEnv> Environment = new(Create, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The environment, made on the first call.</summary>
    public static OrtEnv Instance() => Environment.Value;

    /// <summary>Whether the runtime's lines reach <see cref="OnnxRuntimeLog"/>: false when other code made the
    /// environment first, in which case they go to stderr.</summary>
    public static bool LogIsRouted { get; private set; }

    private static OrtEnv Create()
    {
        OnnxRuntimeTelemetry.SetVariableUnlessSet();
        var environment = OrtEnv.IsCreated ? OrtEnv.Instance() : CreateWithLog();
        environment.DisableTelemetryEvents();
        return environment;
    }

    private static OrtEnv CreateWithLog()
    {
        var options = OnnxRuntimeLog.CreationOptions();
        try
        {
            var environment = OrtEnv.CreateInstanceWithOptions(ref options);
            LogIsRouted = true;
            return environment;
        }
        catch (OnnxRuntimeException) when (OrtEnv.IsCreated)
        {
            return OrtEnv.Instance(); // other code made it meanwhile, with the runtime's defaults
        }
    }
}
