using System.Buffers;
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// JPEG decoding with libjpeg-turbo's TurboJPEG library (Debian's <c>libturbojpeg0</c>), when the system has it. It is
/// the library Pillow decodes with, at the same settings (accurate integer IDCT, smooth chroma upsampling), so an
/// uploaded JPEG becomes the pixels the trainer saw, to the last bit; ImageSharp's decoder differs by a step in a few
/// pixels. (It is a little faster too: 2.1 against 2.3 ms for a 150 KB 640x480 photo, where Huffman decoding dominates.)
/// Without the library (another system, or a JPEG it cannot turn into RGB, such as CMYK), <see cref="ImageDecoder"/>
/// decodes with ImageSharp; a JPEG the library finds corrupt is refused, as Pillow refuses it.
/// </summary>
public static class TurboJpeg
{
    private const string Library = "libturbojpeg.so.0";
    private const int PixelFormatRgb = 0;        // TJPF_RGB
    private const int PixelFormatCmyk = 11;      // TJPF_CMYK
    private const int ColorspaceCmyk = 3;        // TJCS_CMYK
    private const int ColorspaceYcck = 4;        // TJCS_YCCK

    /// <summary>
    /// The starts of libjpeg's warnings (jerror.h, JWRN_*): the image was decoded, and Pillow takes it as it is. Told by
    /// the message, not by tjGetErrorCode, which still says "warning" for a fatal error met after a warning (a file cut
    /// off mid-decode was taken whole). Any other failure is a fatal error, which Pillow refuses ("broken data stream").
    /// </summary>
    private static readonly string[] Warnings =
    [
        "Corrupt JPEG data", "Premature end of JPEG file", "Unknown Adobe color transform code", "Inconsistent progression sequence",
        "Warning: unknown JFIF revision number", "Invalid SOS parameters for sequential JPEG", "Application transferred too many scanlines",
    ];

    private static readonly Lazy<string?> Unavailable = new(Probe);

    /// <summary>Whether the library could be loaded.</summary>
    public static bool IsAvailable => Unavailable.Value is null;

    /// <summary>Which decoder JPEG uploads get, for the log line at start.</summary>
    public static string Description => Unavailable.Value is { } reason
        ? $"ImageSharp ({Library} cannot be loaded: {reason}; decoded JPEG pixels may differ from Pillow's by a step, " +
          "and JPEGs decode in full even for bundles whose trainer decoded them at a reduced DCT scale, input.jpegDraft)"
        : $"libjpeg-turbo ({Library}, as Pillow)";

    /// <summary>
    /// Decodes a JPEG to RGB, or returns null when the library is missing or cannot turn the file into RGB (the caller
    /// falls back to ImageSharp). A file it finds corrupt is refused (<see cref="ImageRejectedException"/>), as Pillow
    /// refuses it: ImageSharp would decode what it can of it.
    /// </summary>
    /// <param name="jpeg">The file.</param>
    /// <param name="width">The width the header was identified with: a file whose TurboJPEG header disagrees is left to ImageSharp.</param>
    /// <param name="height">The height the header was identified with.</param>
    /// <param name="scale">
    /// s of the DCT scale 1/s to decode at (1, 2, 4 or 8): libjpeg's scaled IDCT, as Pillow's <c>draft</c>; the image is
    /// ceil(width / s) x ceil(height / s).
    /// </param>
    /// <param name="configuration">ImageSharp's configuration (its memory pool) for the decoded image.</param>
    public static Image<Rgb24>? TryDecode(ReadOnlySpan<byte> jpeg, int width, int height, int scale, Configuration configuration)
    {
        if (scale is not (1 or 2 or 4 or 8)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "the DCT scale is 1/1, 1/2, 1/4 or 1/8");
        if (!IsAvailable) return null;
        var handle = Native.tjInitDecompress();
        if (handle == IntPtr.Zero) return null;
        try
        {
            // A header libjpeg cannot read is a file Pillow refuses; one it reads with a warning is read.
            if (Native.tjDecompressHeader3(handle, in MemoryMarshal.GetReference(jpeg), (nuint)jpeg.Length,
                    out var headerWidth, out var headerHeight, out _, out var colorspace) != 0)
            {
                // Sampling factors TurboJPEG has no name for (a chroma plane sampled 1x4) are no fault of the file: the
                // header's size and colour space are read before that refusal, and libjpeg (so Pillow) decodes it.
                if (!LastMessage(handle).Contains(UnnamedSubsampling, StringComparison.Ordinal)) ThrowUnlessWarning(handle);
            }
            // The size was checked against the limits on ImageSharp's reading of the header: both must agree.
            if (headerWidth != width || headerHeight != height) return null;
            if (colorspace is ColorspaceCmyk or ColorspaceYcck)
            {
                // TurboJPEG turns no CMYK into RGB (ImageSharp decodes it), but a corrupt one is refused as Pillow refuses it.
                Verify(handle, jpeg, width, height);
                return null;
            }
            // TurboJPEG picks the largest scaling factor whose image fits the size asked for: exactly 1/s here.
            (width, height) = ((width + scale - 1) / scale, (height + scale - 1) / scale);
            return NativeDecoding.Decoded<Rgb24, (IntPtr Handle, int Width, int Height)>(configuration, width, height, jpeg, (handle, width, height),
                static (decoder, jpeg, pixels) => Decompress(decoder.Handle, jpeg, pixels, decoder.Width, decoder.Height));
        }
        finally
        {
            Native.tjDestroy(handle);
        }
    }

    /// <summary>Decodes the pixels as RGB (perhaps with a warning); a fatal error is thrown as the file's rejection.</summary>
    private static void Decompress(IntPtr handle, ReadOnlySpan<byte> jpeg, Span<byte> pixels, int width, int height)
    {
        if (Native.tjDecompress2(handle, in MemoryMarshal.GetReference(jpeg), (nuint)jpeg.Length, ref MemoryMarshal.GetReference(pixels),
                width, width * 3, height, PixelFormatRgb, 0) != 0)
        {
            ThrowUnlessWarning(handle);
        }
    }

    /// <summary>Decodes a CMYK or YCCK JPEG's inks, only to see that libjpeg can: a fatal error is thrown as the file's rejection.</summary>
    private static void Verify(IntPtr handle, ReadOnlySpan<byte> jpeg, int width, int height)
    {
        var inks = ArrayPool<byte>.Shared.Rent(width * height * 4);
        try
        {
            if (Native.tjDecompress2(handle, in MemoryMarshal.GetReference(jpeg), (nuint)jpeg.Length, ref inks[0],
                    width, width * 4, height, PixelFormatCmyk, 0) != 0)
            {
                ThrowUnlessWarning(handle);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(inks);
        }
    }

    /// <summary>TurboJPEG's own error (not libjpeg's) for sampling factors outside its named subsampling types ("... type" in 2.x, "... level" in 3.x).</summary>
    private const string UnnamedSubsampling = "Could not determine subsampling";

    private static string LastMessage(IntPtr handle) => Marshal.PtrToStringAnsi(Native.tjGetErrorStr2(handle)) ?? "";

    /// <summary>Returns if the library's last message is one of libjpeg's warnings; else refuses the file with it.</summary>
    private static void ThrowUnlessWarning(IntPtr handle)
    {
        var message = LastMessage(handle);
        if (Warnings.Any(warning => message.StartsWith(warning, StringComparison.Ordinal))) return;
        throw new ImageRejectedException(ImageRejection.NotDecodable, $"The JPEG image is truncated or corrupt: {message}.");
    }

    private static string? Probe() => NativeDecoding.WhyUnavailable(() =>
    {
        var handle = Native.tjInitDecompress();
        if (handle == IntPtr.Zero) return "tjInitDecompress failed";
        Native.tjDestroy(handle);
        return null;
    });

    /// <summary>The TurboJPEG 2.x C API (turbojpeg.h); <c>unsigned long</c> sizes are 64-bit on 64-bit Linux.</summary>
    private static class Native
    {
        [DllImport(Library)]
        public static extern IntPtr tjInitDecompress();

        [DllImport(Library)]
        public static extern int tjDecompressHeader3(IntPtr handle, in byte jpegBuf, nuint jpegSize, out int width, out int height,
            out int jpegSubsamp, out int jpegColorspace);

        [DllImport(Library)]
        public static extern int tjDecompress2(IntPtr handle, in byte jpegBuf, nuint jpegSize, ref byte dstBuf, int width, int pitch,
            int height, int pixelFormat, int flags);

        [DllImport(Library)]
        public static extern IntPtr tjGetErrorStr2(IntPtr handle);

        [DllImport(Library)]
        public static extern int tjDestroy(IntPtr handle);
    }
}
