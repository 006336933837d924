using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// auto runs on CUDA where it is usable and otherwise falls back to the CPU with one warning (and no error line from
/// ONNX Runtime); cuda refuses to start without it; cpu just runs. Each test asserts what this machine actually has.
/// </summary>
[Collection(BundlesCollection.Name)]
public class ExecutionProviderTests(TrainerBundles bundles)
{
    /// <summary>
    /// Whether ONNX Runtime's CUDA provider can run here: a GPU device, the NVIDIA driver (libcuda), cuDNN 9 (which the
    /// provider opens by name when it first convolves) and every library the provider library links against, as ldd
    /// resolves them. Decided independently of the service's own check (and without loading the provider library,
    /// which only ONNX Runtime can: see SessionFactory).
    /// </summary>
    private static readonly Lazy<bool> CudaUsable = new(() =>
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/dev/nvidia0")) return false;
        if (!NativeLibrary.TryLoad("libcuda.so.1", out _) || !NativeLibrary.TryLoad("libcudnn.so.9", out _)) return false;
        var provider = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so");
        using var ldd = Process.Start(new ProcessStartInfo("ldd", provider) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var resolved = ldd.StandardOutput.ReadToEnd();
        ldd.WaitForExit();
        return ldd.ExitCode == 0 && !resolved.Contains("not found");
    });

    [Fact]
    public async Task AutoRunsOnCudaWhenUsableElseFallsBackToCpuWithOneWarningNamingTheReason()
    {
        await using var factory = bundles.SmokeService(("Inference:ExecutionProvider", "auto"));
        var client = factory.CreateClient();
        var models = await Http.JsonAsync(await client.GetAsync("/models"));
        var expected = CudaUsable.Value ? SessionFactory.CudaProvider : SessionFactory.CpuProvider;
        Assert.Equal(expected, models.GetProperty("executionProvider").GetString());
        Assert.Equal(expected, models.GetProperty("models")[0].GetProperty("executionProvider").GetString());
        var ready = await Http.JsonAsync(await client.GetAsync("/health/ready"));
        Assert.Equal(expected, ready.GetProperty("executionProvider").GetString());

        var warnings = factory.Logs.Entries.Where(e => e.Level == LogLevel.Warning && e.Message.Contains("falling back to")).ToArray();
        if (CudaUsable.Value)
        {
            Assert.Equal(System.Text.Json.JsonValueKind.Null, models.GetProperty("executionProviderFallbackReason").ValueKind);
            Assert.Empty(warnings);
            return;
        }
        var reason = models.GetProperty("executionProviderFallbackReason").GetString();
        Assert.False(string.IsNullOrWhiteSpace(reason));
        var warning = Assert.Single(warnings);
        Assert.Contains(reason!, warning.Message);
        Assert.Contains("CUDA", warning.Message);
        Assert.Contains("CPUExecutionProvider", warning.Message);
        // The system's reason, not only ONNX Runtime's "failed to load": the CUDA library this machine lacks (not the
        // "undefined symbol: Provider_GetHost" of loading the provider library outside ONNX Runtime).
        Assert.Contains("libonnxruntime_providers_cuda.so", reason);
        Assert.Matches(@"libcu\w*\.so\.\d+: cannot open shared object file", reason);
    }

    /// <summary>
    /// cuda runs on CUDA where it is usable; elsewhere the session factory refuses, naming the setting. (That the start
    /// then stops with one line saying so is StartupFailureTests', on a process of its own: a WebApplicationFactory
    /// whose host fails to start now and then threw ObjectDisposedException instead, the app's RunAsync disposing the
    /// host while the factory still reached for its services.)
    /// </summary>
    [Fact]
    public async Task CudaRequiredRunsOnCudaOrIsRefused()
    {
        if (CudaUsable.Value)
        {
            await using var factory = bundles.SmokeService(("Inference:ExecutionProvider", "cuda"));
            var models = await Http.JsonAsync(await factory.CreateClient().GetAsync("/models"));
            Assert.Equal(SessionFactory.CudaProvider, models.GetProperty("executionProvider").GetString());
            return;
        }
        var sessions = new SessionFactory(new InferenceOptions { ExecutionProvider = ExecutionProviderKind.Cuda });
        var unavailable = Assert.Throws<ExecutionProviderUnavailableException>(() => sessions.Provider);
        Assert.Contains("Inference:ExecutionProvider is 'cuda' but the CUDA execution provider cannot be used", unavailable.Message);
    }

    [Fact]
    public async Task CpuRunsWithoutAWarning()
    {
        await using var factory = bundles.SmokeService(("Inference:ExecutionProvider", "cpu"));
        var models = await Http.JsonAsync(await factory.CreateClient().GetAsync("/models"));
        Assert.Equal(SessionFactory.CpuProvider, models.GetProperty("executionProvider").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, models.GetProperty("executionProviderFallbackReason").ValueKind);
        Assert.DoesNotContain(factory.Logs.Entries, e => e.Message.Contains("falling back"));
    }

    /// <summary>
    /// The service as a user starts it (its own build output, a process of its own) with auto: what it prints holds no
    /// native ONNX Runtime error line (red, "[E:onnxruntime") and, without CUDA, exactly one fallback warning.
    /// </summary>
    [Fact]
    public async Task FirstStartWithAutoPrintsNoOnnxRuntimeErrorLine()
    {
        var (service, ready) = await bundles.StartSmokeProcessAsync(("Inference__ExecutionProvider", "auto"));
        await using (service)
        {
            Assert.True(ready, "the service did not become ready:\n" + string.Join('\n', service.Output));
        }

        var output = service.Output;
        Assert.DoesNotContain(output, line => line.Contains("[E:onnxruntime") || line.Contains("\u001b[1;31m"));
        var fallbacks = output.Where(line => line.Contains("falling back to CPUExecutionProvider")).ToArray();
        if (CudaUsable.Value)
        {
            Assert.Empty(fallbacks);
        }
        else
        {
            var warning = Assert.Single(fallbacks);
            Assert.Contains("WRN", warning);
            Assert.Contains("cannot be loaded", warning);
        }
    }
}
