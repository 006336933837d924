namespace ProtoPNet.Inference.Runtime;

/// <summary>
/// The ONNX outputs for a batch of N images, row-major: logits [N, K], similarities [N, M],
/// similarity maps [N, M, h, w].
/// </summary>
public sealed class NetworkOutputs(int count, int classCount, int prototypeCount, int mapHeight, int mapWidth)
{
    public int Count { get; } = count;
    public int ClassCount { get; } = classCount;
    public int PrototypeCount { get; } = prototypeCount;
    public int MapHeight { get; } = mapHeight;
    public int MapWidth { get; } = mapWidth;
    public float[] Logits { get; } = new float[count * classCount];
    public float[] Similarities { get; } = new float[count * prototypeCount];
    public float[] SimilarityMaps { get; } = new float[count * prototypeCount * mapHeight * mapWidth];

    public ReadOnlySpan<float> LogitsOf(int item) => Logits.AsSpan(item * ClassCount, ClassCount);
    public ReadOnlySpan<float> SimilaritiesOf(int item) => Similarities.AsSpan(item * PrototypeCount, PrototypeCount);

    /// <summary>The h x w activation map of one prototype for one image.</summary>
    public ReadOnlySpan<float> MapOf(int item, int prototype)
    {
        var size = MapHeight * MapWidth;
        return SimilarityMaps.AsSpan((item * PrototypeCount + prototype) * size, size);
    }
}
