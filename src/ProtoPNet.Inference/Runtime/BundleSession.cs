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
    private int _latestRunRows;

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

    /// <summary>
    /// The one batch size every run of this session is made at; null: any. On CUDA a run whose batch size differs from
    /// the previous run's costs about as much as the first run of that size (with cuDNN 9 ONNX Runtime's convolutions
    /// build new cuDNN plans whenever their input shape changes; on an H200: 90-130 ms for the default model, 180-330 ms
    /// for ResNet-18, the GPU idle and one core busy), so there each session runs one size: fewer images are padded up
    /// to it (the extra rows' outputs are dropped), more run in slices of it.
    /// </summary>
    public int? FixedBatchSize { get; private set; }

    /// <summary>Makes every later run of this session one of <paramref name="batchSize"/> images (<see cref="FixedBatchSize"/>); before it serves.</summary>
    public void FixBatchSize(int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        FixedBatchSize = batchSize;
    }

    /// <summary>The batch size of this session's latest network run (with a <see cref="FixedBatchSize"/>, always that); 0 before the first.</summary>
    public int LatestRunRows => Volatile.Read(ref _latestRunRows);

    /// <summary>The rows a run of <paramref name="count"/> images is made with: <paramref name="count"/>, or the next multiple of <see cref="FixedBatchSize"/>.</summary>
    public int RowsToRun(int count) => FixedBatchSize is { } size ? (count + size - 1) / size * size : count;

    /// <summary>Rents a buffer for <paramref name="count"/> images in [N, C, H, W] layout; return it with <see cref="ReturnBuffer"/>.</summary>
    public float[] RentBuffer(int count) => ArrayPool<float>.Shared.Rent(count * ImageElementCount);

    public static void ReturnBuffer(float[] buffer) => ArrayPool<float>.Shared.Return(buffer);

    /// <summary>
    /// Runs the network on <paramref name="count"/> images stored in the first elements of <paramref name="images"/>;
    /// dispose the outputs. Without <paramref name="withMaps"/> the similarity maps are not fetched. With a
    /// <see cref="FixedBatchSize"/> the images are run in batches of that size, the last one padded: from
    /// <paramref name="images"/> itself when it holds <see cref="RowsToRun"/> rows (what the padding rows hold does not
    /// matter: each image's outputs depend on that image alone), else from a copy.
    /// </summary>
    public NetworkOutputs Run(float[] images, int count, bool withMaps = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(images.Length, count * ImageElementCount);

        var rows = RowsToRun(count);
        var padded = images.Length >= rows * ImageElementCount ? null : RentBuffer(rows);
        var outputs = new NetworkOutputs(count, rows, ClassCount, PrototypeCount, MapHeight, MapWidth, withMaps);
        try
        {
            if (padded is not null) Array.Copy(images, padded, count * ImageElementCount);
            var slice = FixedBatchSize ?? count;
            for (var first = 0; first < rows; first += slice) RunRows(padded ?? images, first, slice, outputs);
        }
        catch
        {
            outputs.Dispose();
            throw;
        }
        finally
        {
            if (padded is not null) ReturnBuffer(padded);
        }
        return outputs;
    }

    /// <summary>One network run of <paramref name="rows"/> images from row <paramref name="first"/>, its outputs written to the same rows.</summary>
    private void RunRows(float[] images, int first, int rows, NetworkOutputs outputs)
    {
        var elements = ImageElementCount;
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
            images.AsMemory(first * elements, rows * elements), [rows, Channels, Height, Width]);
        using var logits = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, outputs.LogitsRows(first, rows), [rows, ClassCount]);
        using var similarities = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, outputs.SimilarityRows(first, rows), [rows, PrototypeCount]);
        if (outputs.HasMaps)
        {
            using var maps = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, outputs.MapRows(first, rows),
                [rows, PrototypeCount, MapHeight, MapWidth]);
            _session.Run(_runOptions, InputNames, [input], OutputNames, [logits, similarities, maps]);
        }
        else
        {
            _session.Run(_runOptions, InputNames, [input], OutputNamesWithoutMaps, [logits, similarities]);
        }
        Volatile.Write(ref _latestRunRows, rows);
    }

    /// <summary>
    /// Runs blank images once at <see cref="FixedBatchSize"/> (with maps, as a request asks) and returns the milliseconds
    /// it took: the first run of a shape on CUDA is when cuDNN chooses its convolution algorithms for it (on an H200
    /// 90-330 ms), which no request should wait for.
    /// </summary>
    public double WarmUp()
    {
        var count = FixedBatchSize ?? 1;
        var images = RentBuffer(count);
        try
        {
            Array.Clear(images);
            var started = Stopwatch.GetTimestamp();
            Run(images, count).Dispose();
            return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        }
        finally
        {
            ReturnBuffer(images);
        }
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        _session.Dispose();
    }
}
