using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Classifying;

/// <summary>
/// Which <c>/classify</c> requests are small enough to stay on the socket thread that read them (Hosting/InlineScheduling.cs):
/// a socket thread serves many connections, and work left on it delays all of them.
/// </summary>
public static class InlineWork
{
    /// <summary>Most bytes of the one image a request may upload and stay (decoding it takes well under a millisecond).</summary>
    public const int MaxBytes = 64 * 1024;

    /// <summary>Most pixels of that image (256x256): its explanation's upsampled maps are that size.</summary>
    public const long MaxPixels = 256 * 256;

    /// <summary>Most milliseconds the model's recent runs may have taken per image (<see cref="InferenceBatcher.RunMsPerImage"/>).</summary>
    public const double MaxRunMs = 1.0;

    /// <summary>Marks an endpoint whose handler decides itself whether its request stays on the socket thread (<see cref="IsSmall"/>).</summary>
    public static TBuilder MayRunInline<TBuilder>(this TBuilder endpoint) where TBuilder : IEndpointConventionBuilder =>
        endpoint.WithMetadata(InlineEndpoint.Instance);

    /// <summary>Whether <paramref name="endpoint"/> is marked <see cref="MayRunInline{TBuilder}"/>.</summary>
    public static bool MayRunInline(Endpoint? endpoint) => endpoint?.Metadata.GetMetadata<InlineEndpoint>() is not null;

    /// <summary>
    /// Marks an endpoint that always runs on the socket thread: it has no body and answers from memory at once (the
    /// health probes). It then needs no pool thread, so a probe is answered even while a heavy request keeps every pool
    /// thread busy (ImageSharp spreads a large image's rows over all of them).
    /// </summary>
    public static TBuilder RunsInline<TBuilder>(this TBuilder endpoint) where TBuilder : IEndpointConventionBuilder =>
        endpoint.WithMetadata(TrivialEndpoint.Instance);

    /// <summary>Whether <paramref name="endpoint"/> is marked <see cref="RunsInline{TBuilder}"/>.</summary>
    public static bool RunsInline(Endpoint? endpoint) => endpoint?.Metadata.GetMetadata<TrivialEndpoint>() is not null;

    /// <summary>
    /// Small: no other inference request in progress (<paramref name="inferenceRequests"/>, this one included; under load
    /// the pool's threads are awake anyway, and spread the work better), one image of at most <see cref="MaxBytes"/> and
    /// <see cref="MaxPixels"/>, nothing to draw or check, on a model whose recent runs took at most <see cref="MaxRunMs"/>
    /// per image (none yet: not small).
    /// </summary>
    public static bool IsSmall(IReadOnlyList<ReadOnlyMemory<byte>> images, ClassifyRequest request, InferenceBatcher batcher, int inferenceRequests) =>
        inferenceRequests <= 1 && images.Count == 1 && images[0].Length <= MaxBytes
        && request.Heatmaps == HeatmapUse.None && !request.Verify && batcher.RunMsPerImage <= MaxRunMs
        && ImageDecoder.PixelCount(images[0]) <= MaxPixels;

    private sealed class InlineEndpoint
    {
        public static readonly InlineEndpoint Instance = new();
    }

    private sealed class TrivialEndpoint
    {
        public static readonly TrivialEndpoint Instance = new();
    }
}
