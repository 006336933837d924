using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace ProtoPNet.Inference.Runtime;

/// <summary>Which provider sessions actually run on, and why it is not the one asked for.</summary>
public sealed record ProviderChoice(string Provider, string? FallbackReason);

/// <summary>Thrown when <c>cuda</c> was required and the CUDA provider cannot be used.</summary>
public sealed class ExecutionProviderUnavailableException(string message) : Exception(message);

/// <summary>
/// Builds ONNX Runtime sessions for the configured execution provider. The provider is decided once:
/// <c>auto</c> appends CUDA when its provider library loads and a 1x1 convolution runs on it (<see cref="CudaProbe"/>) and,
/// when not (no CUDA libraries, no cuDNN, no GPU), falls back to the CPU and records why, without ONNX Runtime printing an
/// error of its own;
/// <c>cuda</c> throws <see cref="ExecutionProviderUnavailableException"/> instead.
/// </summary>
public sealed class SessionFactory
{
    public const string CpuProvider = "CPUExecutionProvider";
    public const string CudaProvider = "CUDAExecutionProvider";

    private readonly InferenceOptions _options;
    private readonly Lazy<ProviderChoice> _provider;

    public SessionFactory(InferenceOptions options)
    {
        OnnxRuntimeEnvironment.Instance();
        _options = options;
        _provider = new Lazy<ProviderChoice>(Decide);
    }

    /// <summary>The provider every session of this factory runs on.</summary>
    public ProviderChoice Provider => _provider.Value;

    /// <summary>ORT_DISABLE_TELEMETRY as the native runtime sees it: "1" (set by this factory unless the operator set
    /// another value) keeps the runtime's usage telemetry off.</summary>
    public string? TelemetrySetting => OnnxRuntimeTelemetry.SettingSeenByRuntime();

    /// <summary>Threads one run's operators use: <see cref="InferenceOptions.IntraOpThreads"/>, or one per core (<see cref="Environment.ProcessorCount"/>).</summary>
    public int IntraOpThreads => _options.IntraOpThreads > 0 ? _options.IntraOpThreads : Environment.ProcessorCount;

    /// <summary>Whether <see cref="InferenceOptions.IntraOpThreads"/> is set; when it is 0 the service may measure the thread count instead.</summary>
    public bool IntraOpThreadsConfigured => _options.IntraOpThreads > 0;

    /// <summary>Creates one session for a model file (with <paramref name="intraOpThreads"/> instead of the configured
    /// threads when given); the caller owns and disposes it.</summary>
    public (InferenceSession Session, ProviderChoice Provider) Create(string modelPath, int? intraOpThreads = null)
    {
        using var sessionOptions = CreateOptions(intraOpThreads);
        return (new InferenceSession(modelPath, sessionOptions), Provider);
    }

    public SessionOptions CreateOptions(int? intraOpThreads = null)
    {
        var provider = Provider;
        var sessionOptions = BaseOptions(intraOpThreads);
        if (provider.Provider == CudaProvider) AppendCuda(sessionOptions);
        return sessionOptions;
    }

    private void AppendCuda(SessionOptions sessionOptions)
    {
        using var cuda = new OrtCUDAProviderOptions();
        cuda.UpdateOptions(new Dictionary<string, string>
        {
            ["device_id"] = _options.CudaDeviceId.ToString(CultureInfo.InvariantCulture),
            // TF32 (ONNX Runtime's default on GPUs since Ampere) rounds convolution inputs to 10 mantissa bits: on an
            // H200 every bundle then missed its probe by about 2e-3 relative and was refused, and prototype similarity,
            // a log of distances near zero, magnifies such errors. FP32 gives what the trainer measured.
            ["use_tf32"] = "0",
            ["cudnn_conv_algo_search"] = _options.CudnnConvAlgoSearch.ToString().ToUpperInvariant(),
        });
        sessionOptions.AppendExecutionProvider_CUDA(cuda);
    }

    private ProviderChoice Decide()
    {
        if (_options.ExecutionProvider == ExecutionProviderKind.Cpu) return new ProviderChoice(CpuProvider, null);
        // Loading the provider's dependencies ourselves first: when one cannot load (no CUDA), ONNX Runtime would
        // print its own red error line before the service's warning, and its message hides the system's reason.
        var reason = CudaLibraryError();
        if (reason is null)
        {
            try
            {
                using var probe = BaseOptions(intraOpThreads: 1);
                // A failure is the reason the service reports (and falls back on): not also an error line of the runtime's.
                probe.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
                AppendCuda(probe);
                // The libraries load; whether a GPU is there and cuDNN with it shows only when a convolution runs.
                var failure = CudaProbe.Run(probe);
                if (failure is null) return new ProviderChoice(CudaProvider, null);
                reason = OneLine($"a 1x1 convolution cannot run on CUDA: {failure}");
            }
            catch (Exception exception) when (exception is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
            {
                reason = OneLine(exception.Message);
            }
        }
        if (_options.ExecutionProvider == ExecutionProviderKind.Cuda)
        {
            throw new ExecutionProviderUnavailableException(
                $"Inference:ExecutionProvider is 'cuda' but the CUDA execution provider cannot be used: {reason}");
        }
        return new ProviderChoice(CpuProvider, reason);
    }

    /// <summary>
    /// Why ONNX Runtime's CUDA provider library cannot load, or null when it can: loading the libraries it depends on
    /// gives the system's reason (typically the missing CUDA library), which is what an operator needs to see.
    /// The provider library itself is left for ONNX Runtime to load: it binds a symbol of ONNX Runtime's bridge library
    /// at load and its initialisers use the host ONNX Runtime gives the bridge, so loaded alone it either fails
    /// ("undefined symbol: Provider_GetHost", which sent every GPU host to the CPU) or crashes the process.
    /// </summary>
    private static string? CudaLibraryError()
    {
        const string library = "libonnxruntime_providers_cuda.so";
        if (!OperatingSystem.IsLinux()) return null; // other systems name the library differently: ONNX Runtime decides
        string[] candidates =
        [
            Path.Combine(AppContext.BaseDirectory, library),
            Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", library),
        ];
        var path = candidates.FirstOrDefault(File.Exists);
        if (path is null) return $"{library} is not installed next to the application";
        IReadOnlyList<string> dependencies;
        try
        {
            dependencies = ElfDependencies.Read(path);
        }
        catch (Exception exception) when (exception is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return OneLine($"{library} cannot be read: {exception.Message}");
        }
        foreach (var dependency in dependencies)
        {
            try
            {
                // Kept loaded: the dynamic linker finds it already mapped when ONNX Runtime loads the provider.
                NativeLibrary.Load(dependency);
            }
            catch (DllNotFoundException exception)
            {
                // .NET wraps dlerror() in advice text; the part after the advice names the missing library.
                const string advice = "environment variable:";
                var message = exception.Message.ReplaceLineEndings(" ");
                var at = message.LastIndexOf(advice, StringComparison.Ordinal);
                var detail = at >= 0 ? message[(at + advice.Length)..].Trim() : message;
                return OneLine($"{library} cannot be loaded: {detail}");
            }
        }
        return null;
    }

    private SessionOptions BaseOptions(int? intraOpThreads = null)
    {
        var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            // A number, never ONNX Runtime's 0: that default pins the threads to cores (see InferenceOptions.IntraOpThreads).
            IntraOpNumThreads = intraOpThreads ?? IntraOpThreads,
            InterOpNumThreads = _options.InterOpThreads,
        };
        // Spinning threads wait for the next operator by burning a core: fastest for one caller on an idle machine, but
        // it takes the cores the service needs for decoding and explaining between runs.
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", _options.AllowSpinning ? "1" : "0");
        return options;
    }

    private static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ").Trim();
        return line.Length > 400 ? line[..400] + "..." : line;
    }
}
