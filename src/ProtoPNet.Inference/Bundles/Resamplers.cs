using SixLabors.ImageSharp.Processing;
using SixLabors.ImageSharp.Processing.Processors.Transforms;

namespace ProtoPNet.Inference.Bundles;

/// <summary>
/// Maps the manifest's <c>input.interpolation</c> (PIL names, as the trainer resizes with PIL) to ImageSharp resamplers.
/// Like PIL, ImageSharp widens the kernel when it shrinks an image, so both sides antialias the same way.
/// </summary>
public static class Resamplers
{
    public const string Default = "bilinear";

    public static bool TryGet(string? interpolation, out IResampler resampler)
    {
        IResampler? found = (interpolation ?? Default).Trim().ToLowerInvariant() switch
        {
            "bilinear" or "linear" or "triangle" => KnownResamplers.Triangle,
            "bicubic" or "cubic" => KnownResamplers.Bicubic,
            "nearest" => KnownResamplers.NearestNeighbor,
            "lanczos" => KnownResamplers.Lanczos3,
            "box" => KnownResamplers.Box,
            _ => null,
        };
        resampler = found ?? KnownResamplers.Triangle;
        return found is not null;
    }
}
