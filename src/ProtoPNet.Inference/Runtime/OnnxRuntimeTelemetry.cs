using System.Runtime.InteropServices;

namespace ProtoPNet.Inference.Runtime;

/// <summary>
/// Keeps ONNX Runtime's own usage telemetry off. Its Linux builds (1.31 here) carry an event collector that, unless
/// <c>ORT_DISABLE_TELEMETRY</c> is set when the runtime starts, writes a device identifier under the user's cache
/// folder and may send usage events out of the process; on a read-only root it prints a warning of its own into the
/// service's log. A model server sends nothing anywhere unasked, so the variable is set for this process before the
/// runtime's environment is made (a value the operator gave is kept), and its events are disabled as well.
/// </summary>
internal static class OnnxRuntimeTelemetry
{
    public const string Variable = "ORT_DISABLE_TELEMETRY";

    /// <summary>
    /// The variable's value as the native runtime reads it (null when unset): "1" means off. Read from the process's own
    /// environment, not .NET's copy, so it shows what the runtime saw, whoever set it.
    /// </summary>
    public static string? SettingSeenByRuntime() =>
        OperatingSystem.IsWindows() ? Environment.GetEnvironmentVariable(Variable) : Marshal.PtrToStringAnsi(GetEnvironmentVariable(Variable));

    /// <summary>Sets the variable to "1" unless the operator set it. <see cref="OnnxRuntimeEnvironment"/> calls it before it
    /// makes the runtime's environment, whose telemetry events it then disables too.</summary>
    public static void SetVariableUnlessSet()
    {
        // .NET keeps its own copy of the environment on Unix: the native runtime reads the process's, set through libc.
        if (OperatingSystem.IsWindows()) Environment.SetEnvironmentVariable(Variable, Environment.GetEnvironmentVariable(Variable) ?? "1");
        else _ = SetEnvironmentVariable(Variable, "1", overwrite: 0);
    }

    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern int SetEnvironmentVariable(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "getenv", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern IntPtr GetEnvironmentVariable(string name);
}
