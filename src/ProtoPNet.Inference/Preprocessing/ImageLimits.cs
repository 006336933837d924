using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>Configuration section <c>Images</c>: what an uploaded image may be, checked before it is decoded.</summary>
public sealed class ImageLimits : IValidatableObject
{
    public const string SectionName = "Images";

    /// <summary>Largest accepted image file in bytes (default 20 MiB; at most the largest array, about 2 GiB).</summary>
    [Range(typeof(long), "1", "2147483591")]
    public long MaxBytes { get; set; } = 20L * 1024 * 1024;

    /// <summary>Largest accepted width x height, read from the header (default 40 megapixels).</summary>
    [Range(typeof(long), "1", "9223372036854775807")]
    public long MaxPixels { get; set; } = 40_000_000;

    /// <summary>
    /// Longest accepted width or height, read from the header (default 65,535, JPEG's own limit). Resizing to the
    /// model's input costs time and memory with the longest side times the input's side, whatever the pixel count: a
    /// 1 x 40,000,000 image within the pixel limit took 14 s and 1.5 GB before this limit.
    /// </summary>
    [Range(1, 1_000_000)]
    public int MaxSide { get; set; } = 65_535;

    /// <summary>
    /// The most request bytes the service holds in memory at once, for all requests together (default 1 GiB): uploads
    /// until decoded, pixels kept to draw on until the answer is written, Open Inference Protocol bodies until their
    /// tensor is written. At least <see cref="MaxBytes"/>.
    /// </summary>
    public long MaxBufferedBytes { get; set; } = 1L << 30;

    /// <summary>
    /// The most bytes of multipart image parts spooled at once, for all requests together (default 0: as many as the
    /// spool folder's disk holds). Set it below a size limit the file system does not enforce itself, such as a
    /// Kubernetes emptyDir's <c>sizeLimit</c>, which evicts the pod rather than fail the write. At least
    /// <see cref="MaxBytes"/> when set.
    /// </summary>
    [Range(typeof(long), "0", "9223372036854775807")]
    public long MaxSpooledBytes { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxBufferedBytes < MaxBytes)
        {
            yield return new ValidationResult(
                $"Images:MaxBufferedBytes ({MaxBufferedBytes}) must be at least Images:MaxBytes ({MaxBytes}): one image must fit.",
                [nameof(MaxBufferedBytes)]);
        }
        if (MaxSpooledBytes > 0 && MaxSpooledBytes < MaxBytes)
        {
            yield return new ValidationResult(
                $"Images:MaxSpooledBytes ({MaxSpooledBytes}) must be 0 (no limit) or at least Images:MaxBytes ({MaxBytes}): one image must fit.",
                [nameof(MaxSpooledBytes)]);
        }
    }
}
