using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// WebP decoding with libwebp (Debian's <c>libwebp7</c>, which Pillow itself depends on), when the system has it. It is
/// the library Pillow decodes with, so an uploaded WebP becomes the trainer's pixels, and a WebP whose data libwebp
/// cannot decode is refused as Pillow refuses it: ImageSharp read zeros past the end of a damaged lossy partition and
/// decoded the rest into garbage, which was classified. Without the library <see cref="ImageDecoder"/> decodes with
/// ImageSharp. An animation's first frame comes here as a still (<see cref="WebpFirstFrame"/>).
/// </summary>
public static class LibWebp
{
    private const string Library = "libwebp.so.7";

    private static readonly Lazy<string?> Unavailable = new(Probe);

    /// <summary>Whether the library could be loaded.</summary>
    public static bool IsAvailable => Unavailable.Value is null;

    /// <summary>Which decoder WebP uploads get, for the log line at start.</summary>
    public static string Description => Unavailable.Value is { } reason
        ? $"ImageSharp ({Library} cannot be loaded: {reason}; decoded lossy WebP pixels may differ from Pillow's, and a WebP whose data is damaged may be decoded where Pillow refuses it)"
        : $"libwebp ({Library}, as Pillow)";

    /// <summary>
    /// Decodes a still WebP to RGBA, or returns null when the library is missing (the caller falls back to ImageSharp).
    /// A file libwebp cannot decode, or whose size it reads otherwise than <paramref name="width"/> x
    /// <paramref name="height"/> (ImageSharp's reading, judged against the limits), is refused.
    /// </summary>
    public static Image<Rgba32>? TryDecode(ReadOnlySpan<byte> webp, int width, int height, Configuration configuration)
    {
        if (!IsAvailable) return null;
        if (Native.WebPGetInfo(in MemoryMarshal.GetReference(webp), (nuint)webp.Length, out var infoWidth, out var infoHeight) == 0)
        {
            throw Corrupt("libwebp, the decoder Pillow uses, cannot read its header");
        }
        if (infoWidth != width || infoHeight != height)
        {
            throw Corrupt($"libwebp reads its size as {infoWidth}x{infoHeight}, not the {width}x{height} its header gave");
        }
        return NativeDecoding.Decoded<Rgba32, int>(configuration, width, height, webp, width, static (width, webp, pixels) => Decode(webp, pixels, width));
    }

    /// <summary>Decodes into <paramref name="pixels"/> (RGBA rows of <paramref name="width"/>); data libwebp cannot decode is the file's rejection.</summary>
    private static void Decode(ReadOnlySpan<byte> webp, Span<byte> pixels, int width)
    {
        if (Native.WebPDecodeRGBAInto(in MemoryMarshal.GetReference(webp), (nuint)webp.Length, ref MemoryMarshal.GetReference(pixels),
                (nuint)pixels.Length, width * 4) == IntPtr.Zero)
        {
            throw Corrupt("libwebp, the decoder Pillow uses, cannot decode its image data");
        }
    }

    private static ImageRejectedException Corrupt(string why) => new(ImageRejection.NotDecodable, $"The WebP image is corrupt: {why}.");

    private static string? Probe() => NativeDecoding.WhyUnavailable(() => Native.WebPGetDecoderVersion() > 0 ? null : "it gives no version");

    /// <summary>libwebp's simple decoding API (decode.h).</summary>
    private static class Native
    {
        [DllImport(Library)]
        public static extern int WebPGetDecoderVersion();

        [DllImport(Library)]
        public static extern int WebPGetInfo(in byte data, nuint dataSize, out int width, out int height);

        [DllImport(Library)]
        public static extern IntPtr WebPDecodeRGBAInto(in byte data, nuint dataSize, ref byte outputBuffer, nuint outputBufferSize, int outputStride);
    }
}
