using Microsoft.ML.OnnxRuntime;

namespace ProtoPNet.Inference.Runtime;

/// <summary>Which provider sessions actually run on, and why it is not the one asked for.</summary>
public sealed record ProviderChoice(string Provider, string? FallbackReason);

/// <summary>Thrown when <c>cuda</c> was required and the CUDA provider cannot be used.</summary>
public sealed class ExecutionProviderUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Builds ONNX Runtime sessions for the configured execution provider. The provider is decided once:
/// <c>auto</c> appends CUDA and, when that throws (no CUDA libraries), falls back to the CPU and records why;
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
        _options = options;
        _provider = new Lazy<ProviderChoice>(Decide);
    }

    /// <summary>The provider every session of this factory runs on.</summary>
    public ProviderChoice Provider => _provider.Value;

    /// <summary>Creates one session for a model file; the caller owns and disposes it.</summary>
    public (InferenceSession Session, ProviderChoice Provider) Create(string modelPath)
    {
        using var sessionOptions = CreateOptions();
        return (new InferenceSession(modelPath, sessionOptions), Provider);
    }

    public SessionOptions CreateOptions()
    {
        var provider = Provider;
        var sessionOptions = BaseOptions();
        if (provider.Provider == CudaProvider) sessionOptions.AppendExecutionProvider_CUDA(_options.CudaDeviceId);
        return sessionOptions;
    }

    private ProviderChoice Decide()
    {
        if (_options.ExecutionProvider == ExecutionProviderKind.Cpu) return new ProviderChoice(CpuProvider, null);
        try
        {
            using var probe = BaseOptions();
            probe.AppendExecutionProvider_CUDA(_options.CudaDeviceId);
            return new ProviderChoice(CudaProvider, null);
        }
        catch (Exception exception) when (exception is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            var reason = OneLine(exception.Message);
            if (_options.ExecutionProvider == ExecutionProviderKind.Cuda)
            {
                throw new ExecutionProviderUnavailableException(
                    $"Inference:ExecutionProvider is 'cuda' but the CUDA execution provider cannot be used: {reason}", exception);
            }
            return new ProviderChoice(CpuProvider, reason);
        }
    }

    private SessionOptions BaseOptions() => new()
    {
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        IntraOpNumThreads = _options.IntraOpThreads,
        InterOpNumThreads = _options.InterOpThreads,
    };

    private static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ").Trim();
        return line.Length > 400 ? line[..400] + "..." : line;
    }
}
