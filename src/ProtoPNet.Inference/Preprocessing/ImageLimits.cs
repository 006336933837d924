using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>Configuration section <c>Images</c>: what an uploaded image may be, checked before it is decoded.</summary>
public sealed class ImageLimits
{
    public const string SectionName = "Images";

    /// <summary>Largest accepted image file in bytes (default 20 MiB).</summary>
    [Range(1, long.MaxValue)]
    public long MaxBytes { get; set; } = 20L * 1024 * 1024;

    /// <summary>Largest accepted width x height, read from the header (default 40 megapixels).</summary>
    [Range(1, long.MaxValue)]
    public long MaxPixels { get; set; } = 40_000_000;
}
