using System.Buffers;

namespace ProtoPNet.Inference.Runtime;

/// <summary>
/// The ONNX outputs for a batch of N images, row-major: logits [N, K], similarities [N, M], similarity maps
/// [N, M, h, w] (unless the run was made without them: the largest output, which a run that reads only logits does
/// not need). The buffers are pooled (a ResNet bundle's maps would otherwise be a large-object allocation per
/// request): dispose the outputs when done with them.
/// </summary>
public sealed class NetworkOutputs : IDisposable
{
    private float[]? _logits;
    private float[]? _similarities;
    private float[]? _maps;
    private readonly int _rows;

    /// <summary>
    /// Outputs for <paramref name="count"/> images from a run of <paramref name="rows"/>, <paramref name="count"/> or
    /// more (a session of one batch size pads its last batch, see <see cref="BundleSession.FixedBatchSize"/>).
    /// </summary>
    internal NetworkOutputs(int count, int rows, int classCount, int prototypeCount, int mapHeight, int mapWidth, bool withMaps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, count);
        Count = count;
        _rows = rows;
        ClassCount = classCount;
        PrototypeCount = prototypeCount;
        MapHeight = mapHeight;
        MapWidth = mapWidth;
        _logits = ArrayPool<float>.Shared.Rent(rows * classCount);
        _similarities = ArrayPool<float>.Shared.Rent(rows * prototypeCount);
        _maps = withMaps ? ArrayPool<float>.Shared.Rent(rows * prototypeCount * mapHeight * mapWidth) : null;
        HasMaps = withMaps;
    }

    /// <summary>Whether the run fetched the similarity maps (<see cref="MapOf"/>).</summary>
    public bool HasMaps { get; }

    public int Count { get; }
    public int ClassCount { get; }
    public int PrototypeCount { get; }
    public int MapHeight { get; }
    public int MapWidth { get; }

    /// <summary>The output buffers' rows [<paramref name="first"/>, <paramref name="first"/> + <paramref name="rows"/>), for ONNX Runtime to write into.</summary>
    internal Memory<float> LogitsRows(int first, int rows) => Rows(_logits, first, rows, ClassCount);
    internal Memory<float> SimilarityRows(int first, int rows) => Rows(_similarities, first, rows, PrototypeCount);
    internal Memory<float> MapRows(int first, int rows) => Rows(_maps, first, rows, PrototypeCount * MapHeight * MapWidth);

    private Memory<float> Rows(float[]? buffer, int first, int rows, int rowLength)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(first + rows, _rows);
        return Buffer(buffer).AsMemory(first * rowLength, rows * rowLength);
    }

    public ReadOnlySpan<float> LogitsOf(int item) => Buffer(_logits).AsSpan(item * ClassCount, ClassCount);
    public ReadOnlySpan<float> SimilaritiesOf(int item) => Buffer(_similarities).AsSpan(item * PrototypeCount, PrototypeCount);

    /// <summary>The h x w activation map of one prototype for one image.</summary>
    public ReadOnlySpan<float> MapOf(int item, int prototype)
    {
        if (!HasMaps) throw new InvalidOperationException("This run was made without the similarity maps.");
        var size = MapHeight * MapWidth;
        return Buffer(_maps).AsSpan((item * PrototypeCount + prototype) * size, size);
    }

    private static float[] Buffer(float[]? buffer) => buffer ?? throw new ObjectDisposedException(nameof(NetworkOutputs));

    public void Dispose()
    {
        Return(ref _logits);
        Return(ref _similarities);
        Return(ref _maps);
    }

    private static void Return(ref float[]? buffer)
    {
        var taken = Interlocked.Exchange(ref buffer, null);
        if (taken is not null) ArrayPool<float>.Shared.Return(taken);
    }
}
