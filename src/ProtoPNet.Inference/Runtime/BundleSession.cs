using System.Buffers;
using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;

namespace ProtoPNet.Inference.Runtime;

/// <summary>
/// One shared ONNX Runtime session for one bundle (InferenceSession.Run is thread-safe).
/// Inputs are pooled buffers and outputs are written straight into managed arrays through OrtValues,
/// so a run allocates no native tensors of its own.
/// </summary>
public sealed class BundleSession : IDisposable
{
    public const string InputName = "image";
    public const string LogitsName = "logits";
    public const string SimilaritiesName = "similarities";
    public const string SimilarityMapsName = "similarity_maps";

    private static readonly string[] InputNames = [InputName];
    private static readonly string[] OutputNames = [LogitsName, SimilaritiesName, SimilarityMapsName];
    private static readonly string[] OutputNamesWithoutMaps = [LogitsName, SimilaritiesName];

    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();

    public BundleSession(InferenceSession session, ProviderChoice provider, int channels, int height, int width,
        int classCount, int prototypeCount, int mapHeight, int mapWidth)
    {
        _session = session;
        Provider = provider;
        Channels = channels;
        Height = height;
        Width = width;
        ClassCount = classCount;
        PrototypeCount = prototypeCount;
        MapHeight = mapHeight;
        MapWidth = mapWidth;
    }

    public ProviderChoice Provider { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int ClassCount { get; }
    public int PrototypeCount { get; }
    public int MapHeight { get; }
    public int MapWidth { get; }
    public int ImageElementCount => Channels * Height * Width;

    /// <summary>The graph's declared inputs and outputs, for load-time checks and metadata endpoints.</summary>
    public IReadOnlyDictionary<string, NodeMetadata> InputMetadata => _session.InputMetadata;
    public IReadOnlyDictionary<string, NodeMetadata> OutputMetadata => _session.OutputMetadata;

    /// <summary>Rents a buffer for <paramref name="count"/> images in [N, C, H, W] layout; return it with <see cref="ReturnBuffer"/>.</summary>
    public float[] RentBuffer(int count) => ArrayPool<float>.Shared.Rent(count * ImageElementCount);

    public static void ReturnBuffer(float[] buffer) => ArrayPool<float>.Shared.Return(buffer);

    /// <summary>
    /// Runs the network on <paramref name="count"/> images stored in the first elements of <paramref name="images"/>;
    /// dispose the outputs. Without <paramref name="withMaps"/> the similarity maps are not fetched.
    /// </summary>
    public NetworkOutputs Run(float[] images, int count, bool withMaps = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var elements = count * ImageElementCount;
        ArgumentOutOfRangeException.ThrowIfLessThan(images.Length, elements);

        var outputs = new NetworkOutputs(count, ClassCount, PrototypeCount, MapHeight, MapWidth, withMaps);
        try
        {
            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
                images.AsMemory(0, elements), [count, Channels, Height, Width]);
            using var logits = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, outputs.LogitsMemory, [count, ClassCount]);
            using var similarities = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, outputs.SimilaritiesMemory, [count, PrototypeCount]);
            if (withMaps)
            {
                using var maps = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, outputs.MapsMemory,
                    [count, PrototypeCount, MapHeight, MapWidth]);
                _session.Run(_runOptions, InputNames, [input], OutputNames, [logits, similarities, maps]);
            }
            else
            {
                _session.Run(_runOptions, InputNames, [input], OutputNamesWithoutMaps, [logits, similarities]);
            }
        }
        catch
        {
            outputs.Dispose();
            throw;
        }
        return outputs;
    }

    /// <summary>
    /// Runs blank images once at every batch size from 1 to <paramref name="largest"/> (with maps, as a request asks);
    /// returns each run's milliseconds, by batch size. On CUDA the first run of an input shape is when cuDNN searches
    /// its convolution algorithms for it: on an H200 a request that met a new batch size waited about 200 ms for that,
    /// and so did every request queued behind it.
    /// </summary>
    public double[] WarmUpBatchSizes(int largest, CancellationToken stopping = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(largest, 1);
        var milliseconds = new double[largest];
        var images = RentBuffer(largest);
        try
        {
            Array.Clear(images);
            for (var count = 1; count <= largest; count++)
            {
                stopping.ThrowIfCancellationRequested();
                var started = Stopwatch.GetTimestamp();
                Run(images, count).Dispose();
                milliseconds[count - 1] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
        }
        finally
        {
            ReturnBuffer(images);
        }
        return milliseconds;
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        _session.Dispose();
    }
}
