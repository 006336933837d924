using System.Buffers.Binary;
using Microsoft.ML.OnnxRuntime;

namespace ProtoPNet.Inference.Runtime;

/// <summary>
/// Runs one 1x1 convolution on the execution provider a <see cref="SessionOptions"/> names, to learn whether that
/// provider can run at all before any bundle depends on it. Loading ONNX Runtime's CUDA provider proves only that its
/// libraries are there: cuDNN is opened by name when the first convolution runs, and a driver without a usable GPU
/// (CUDA_VISIBLE_DEVICES empty, a device id the host does not have) fails when the session starts. Either used to refuse
/// every bundle under <c>auto</c> instead of falling back to the CPU. The model is written here, a few hundred bytes of ONNX.
/// </summary>
internal static class CudaProbe
{
    private const float Weight = 2f;
    private static readonly long[] Shape = [1, 1, 2, 2];

    /// <summary>Null when the convolution ran and gave the right answer, else why not (ONNX Runtime's message).</summary>
    public static string? Run(SessionOptions options)
    {
        try
        {
            using var session = new InferenceSession(Model(), options);
            float[] input = [1f, -2f, 3f, 0.5f];
            using var inputValue = OrtValue.CreateTensorValueFromMemory(input, Shape);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, ["x"], [inputValue], ["y"]);
            var output = outputs[0].GetTensorDataAsSpan<float>();
            for (var i = 0; i < input.Length; i++)
            {
                if (output[i] != input[i] * Weight)
                    return $"a 1x1 convolution gave {output[i]} instead of {input[i] * Weight}";
            }
            return null;
        }
        catch (OnnxRuntimeException exception)
        {
            return exception.Message;
        }
    }

    /// <summary>The ONNX model y = Conv(x, W) with W one 1x1 kernel of <see cref="Weight"/>, x and y [1,1,2,2] floats.</summary>
    internal static byte[] Model()
    {
        var dimensions = Shape.Select(size => Message(1, Varint(1, (ulong)size))).ToArray();
        byte[] TensorType() => Message(2, Message(1, Varint(1, 1), Message(2, dimensions)));   // TypeProto.tensor_type: float, shape
        var weight = Concat(Varint(1, 1), Varint(1, 1), Varint(1, 1), Varint(1, 1), Varint(2, 1),  // dims 1,1,1,1; FLOAT
            Bytes(9, LittleEndian(Weight)), Text(8, "W"));                                          // raw_data, name
        var node = Concat(Text(1, "x"), Text(1, "W"), Text(2, "y"), Text(3, "probe"), Text(4, "Conv"));
        var graph = Concat(Message(1, node), Text(2, "cuda-probe"), Message(5, weight),
            Message(11, Text(1, "x"), TensorType()), Message(12, Text(1, "y"), TensorType()));
        return Concat(Varint(1, 8), Message(8, Text(1, ""), Varint(2, 13)), Message(7, graph));   // IR 8, opset 13
    }

    // Protocol buffers' wire format: a key (field << 3 | type), then a varint (type 0) or a length and bytes (type 2).
    private static byte[] Varint(int field, ulong value) => Concat(Key(field, 0), Encode(value));

    private static byte[] Text(int field, string value) => Bytes(field, System.Text.Encoding.UTF8.GetBytes(value));

    private static byte[] Message(int field, params byte[][] parts) => Bytes(field, Concat(parts));

    private static byte[] Bytes(int field, byte[] value) => Concat(Key(field, 2), Encode((ulong)value.Length), value);

    private static byte[] Key(int field, int wireType) => Encode((ulong)(field << 3 | wireType));

    private static byte[] Encode(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            var low = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value == 0 ? low : (byte)(low | 0x80));
        } while (value != 0);
        return [.. bytes];
    }

    private static byte[] LittleEndian(float value)
    {
        var bytes = new byte[sizeof(float)];
        BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
        return bytes;
    }

    private static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(part => part)];
}
