using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Inference.Runtime;

/// <summary>Which ONNX Runtime execution provider runs the bundles.</summary>
public enum ExecutionProviderKind
{
    /// <summary>Try CUDA; when it cannot be used fall back to the CPU with a warning that names the reason.</summary>
    Auto,
    /// <summary>CUDA or nothing: the service refuses to start without it.</summary>
    Cuda,
    /// <summary>The CPU provider only.</summary>
    Cpu,
}

/// <summary>
/// How cuDNN chooses each convolution's algorithm on CUDA (ONNX Runtime's <c>cudnn_conv_algo_search</c>). With cuDNN 9
/// ONNX Runtime builds a cuDNN frontend plan per convolution whenever its input shape differs from its previous run's
/// (no cache per shape: hence <c>Batching:PadBatches</c>), choosing with the heuristic mode below.
/// </summary>
public enum CudnnConvAlgoSearch
{
    /// <summary>ONNX Runtime's default: cuDNN's heuristic mode B, the more thorough; building a plan for a new shape took
    /// 90-130 ms for the default model and 180-330 ms for ResNet-18 on an H200.</summary>
    Exhaustive,
    /// <summary>cuDNN's heuristic mode A: quicker to build (the default model's first runs 26-27 ms against 48-85 on an
    /// H100); its runs as fast within the noise there (README, GPU configuration).</summary>
    Heuristic,
    /// <summary>cuDNN's fallback list (ONNX Runtime warns that it may be extremely slow).</summary>
    Default,
}

/// <summary>Configuration section <c>Inference</c>.</summary>
public sealed class InferenceOptions
{
    public const string SectionName = "Inference";

    /// <summary><c>auto</c> (default), <c>cuda</c> or <c>cpu</c>.</summary>
    [EnumDataType(typeof(ExecutionProviderKind))]   // the binder takes any number for an enum
    public ExecutionProviderKind ExecutionProvider { get; set; } = ExecutionProviderKind.Auto;

    /// <summary>CUDA device id used by the CUDA provider.</summary>
    [Range(0, 64)]
    public int CudaDeviceId { get; set; }

    /// <summary><c>exhaustive</c> (default), <c>heuristic</c> or <c>default</c>: see <see cref="Runtime.CudnnConvAlgoSearch"/>.</summary>
    [EnumDataType(typeof(CudnnConvAlgoSearch))]
    public CudnnConvAlgoSearch CudnnConvAlgoSearch { get; set; } = CudnnConvAlgoSearch.Exhaustive;

    /// <summary>
    /// Threads ONNX Runtime uses inside one operator; 0: one per core as .NET counts them (a container's CPU limit
    /// included), given to ONNX Runtime as that number. Its own default for 0 also pins each thread to a core, and a
    /// session of two threads so made answered a lone image slowly in 11 of 25 of the development machine's starts.
    /// </summary>
    [Range(0, 1024)]
    public int IntraOpThreads { get; set; }

    /// <summary>Threads ONNX Runtime uses across independent operators; 0 lets ONNX Runtime choose.</summary>
    [Range(0, 1024)]
    public int InterOpThreads { get; set; }

    /// <summary>
    /// Whether ONNX Runtime's threads spin while waiting for work (ONNX Runtime's own default). Default false here: spinning
    /// threads burn the cores the service needs for decoding and explaining (measured: /classify at concurrency 32 on the
    /// ResNet-18 bundle went from 59-66 % to 73-95 % of in-process ONNX Runtime on the shared 2-core machine).
    /// </summary>
    public bool AllowSpinning { get; set; }
}
