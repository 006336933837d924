namespace ProtoPNet.Inference.Preprocessing;

/// <summary>Why an uploaded image was not accepted; the service maps each to the status of API.md's error table.</summary>
public enum ImageRejection
{
    /// <summary>Not an image, corrupt, or no image at all (400).</summary>
    NotDecodable,
    /// <summary>The data ends before the image does, e.g. an interrupted upload (400).</summary>
    Truncated,
    /// <summary>More bytes than the byte limit (413).</summary>
    TooManyBytes,
    /// <summary>A content type or format the service does not decode (415).</summary>
    UnsupportedType,
    /// <summary>More pixels than the pixel limit (422).</summary>
    TooManyPixels,
    /// <summary>Zero width or height (422).</summary>
    ZeroSized,
    /// <summary>A side longer than the side limit (422).</summary>
    SideTooLong,
}

public sealed class ImageRejectedException(ImageRejection rejection, string detail, Exception? inner = null)
    : Exception(detail, inner)
{
    public ImageRejection Rejection { get; } = rejection;
}
