namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whether a JPEG's start-of-image bytes (FF D8) are followed by a marker (FF), as in every JPEG any encoder writes.
/// libjpeg, and ImageSharp, pass over stray bytes there (libjpeg warns "extraneous bytes before marker") and decode the
/// rest; Pillow (the trainer's decoder) takes a file for a JPEG only when it starts FF D8 FF, and refuses any other
/// ("cannot identify image file"), so a damaged upload was classified while the trainer could not read it.
/// </summary>
public static class JpegSignature
{
    /// <summary>What is wrong with the JPEG's first bytes (one sentence), or null.</summary>
    public static string? FindCorruption(ReadOnlySpan<byte> file)
    {
        if (file.Length < 3 || file[0] != 0xFF || file[1] != 0xD8) return null;   // not a JPEG this check reads
        return file[2] == 0xFF
            ? null
            : $"its start-of-image marker (FF D8) is followed by byte {file[2]:X2} where the next marker (FF) must begin";
    }
}
