using Microsoft.ML.OnnxRuntime;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Tests;

/// <summary>
/// The convolution the service runs on CUDA before it trusts the provider (SessionFactory under auto and cuda): the
/// model it writes itself is valid ONNX that ONNX Runtime loads and runs, and a session that cannot start is a reason,
/// not an exception. On the CPU here; on a GPU host the same probe decides between CUDA and the fallback.
/// </summary>
public class CudaProbeTests
{
    [Fact]
    public void TheProbeModelLoadsAndItsConvolutionDoublesTheInput()
    {
        using var options = new SessionOptions();
        Assert.Null(CudaProbe.Run(options));

        using var session = new InferenceSession(CudaProbe.Model(), options);
        var input = Assert.Single(session.InputMetadata);
        Assert.Equal("x", input.Key);
        Assert.Equal([1, 1, 2, 2], input.Value.Dimensions);
        Assert.Equal("y", Assert.Single(session.OutputMetadata).Key);
        using var x = OrtValue.CreateTensorValueFromMemory(new float[] { 1f, -2f, 3f, 0.5f }, [1, 1, 2, 2]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["x"], [x], ["y"]);
        Assert.Equal([2f, -4f, 6f, 1f], outputs[0].GetTensorDataAsSpan<float>().ToArray());
    }

    [Fact]
    public void ASessionThatCannotStartIsAReasonNotAnException()
    {
        // ONNX Runtime writes the optimised model where asked when the session starts: a folder that does not exist
        // makes the start fail, as a missing GPU or cuDNN does on a CUDA host.
        using var options = new SessionOptions { OptimizedModelFilePath = Path.Combine(Path.GetTempPath(), "no-such-folder-" + Guid.NewGuid(), "probe.onnx") };
        var reason = CudaProbe.Run(options);
        Assert.False(string.IsNullOrWhiteSpace(reason));
    }
}
