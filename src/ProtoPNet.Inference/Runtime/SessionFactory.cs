using Microsoft.ML.OnnxRuntime;

namespace ProtoPNet.Inference.Runtime;

/// <summary>Which provider a session actually runs on, and why it is not the one asked for.</summary>
public sealed record ProviderChoice(string Provider, string? FallbackReason);

/// <summary>Thrown when <c>cuda</c> was required and the CUDA provider cannot be used.</summary>
public sealed class ExecutionProviderUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>Builds ONNX Runtime session options for the configured execution provider.</summary>
public sealed class SessionFactory(InferenceOptions options)
{
    public const string CpuProvider = "CPUExecutionProvider";
    public const string CudaProvider = "CUDAExecutionProvider";

    /// <summary>Creates one session for a model file; the caller owns and disposes it.</summary>
    public (InferenceSession Session, ProviderChoice Provider) Create(string modelPath)
    {
        var (sessionOptions, provider) = CreateOptions();
        using (sessionOptions)
        {
            return (new InferenceSession(modelPath, sessionOptions), provider);
        }
    }

    /// <summary>Session options with the provider appended; <c>auto</c> falls back to the CPU when CUDA throws.</summary>
    public (SessionOptions Options, ProviderChoice Provider) CreateOptions()
    {
        var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = options.InterOpThreads,
        };
        if (options.ExecutionProvider == ExecutionProviderKind.Cpu)
        {
            return (sessionOptions, new ProviderChoice(CpuProvider, null));
        }
        try
        {
            sessionOptions.AppendExecutionProvider_CUDA(options.CudaDeviceId);
            return (sessionOptions, new ProviderChoice(CudaProvider, null));
        }
        catch (Exception exception) when (exception is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            sessionOptions.Dispose();
            var reason = OneLine(exception.Message);
            if (options.ExecutionProvider == ExecutionProviderKind.Cuda)
            {
                throw new ExecutionProviderUnavailableException(
                    $"Inference:ExecutionProvider is 'cuda' but the CUDA execution provider cannot be used: {reason}", exception);
            }
            var cpuOptions = new SessionOptions
            {
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                IntraOpNumThreads = options.IntraOpThreads,
                InterOpNumThreads = options.InterOpThreads,
            };
            return (cpuOptions, new ProviderChoice(CpuProvider, reason));
        }
    }

    private static string OneLine(string text)
    {
        var line = text.ReplaceLineEndings(" ").Trim();
        return line.Length > 400 ? line[..400] + "..." : line;
    }
}
