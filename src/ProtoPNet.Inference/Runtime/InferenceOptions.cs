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

/// <summary>How cuDNN chooses each convolution's algorithm on CUDA, the first time it meets an input shape.</summary>
public enum CudnnConvAlgoSearch
{
    /// <summary>Times the candidate algorithms and takes the fastest (ONNX Runtime's default): the best runs, about
    /// 200 ms per new shape on an H200 (the service meets every batch size at load, before it serves).</summary>
    Exhaustive,
    /// <summary>cuDNN's own guess from the shapes, without timing: no delay, possibly slower runs.</summary>
    Heuristic,
    /// <summary>A fixed algorithm (implicit precomputed GEMM): no delay, no choice.</summary>
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

    /// <summary>Threads ONNX Runtime uses inside one operator; 0 lets ONNX Runtime choose (one per core).</summary>
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
