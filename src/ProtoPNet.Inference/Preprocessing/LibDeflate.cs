using System.Runtime.InteropServices;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Whole-buffer inflating with libdeflate (Debian's <c>libdeflate0</c>), when the system has it: libtiff inflates a TIFF
/// strip with it (and so Pillow, the trainer's decoder), into a buffer of the strip's rows, and accepts the strip when
/// libdeflate fills the buffer, whether the stream ends there or goes on, and whatever follows. zlib, which .NET
/// inflates with, reads on otherwise: it stops at damage libdeflate passes (libdeflate reads a cut stream's missing
/// bits as zeros, and stops when its buffer is full), so only libdeflate itself judges a strip as the trainer does.
/// Without the library <see cref="TiffStripData"/> judges as libtiff does without it, with zlib.
/// </summary>
public static class LibDeflate
{
    private const string Library = "libdeflate.so.0";

    private static readonly Lazy<string?> Unavailable = new(Probe);

    /// <summary>Whether the library could be loaded.</summary>
    public static bool IsAvailable => Unavailable.Value is null;

    /// <summary>How TIFF deflate strips are judged, for the log line at start.</summary>
    public static string Description => Unavailable.Value is { } reason
        ? $"zlib ({Library} cannot be loaded: {reason}; a damaged strip may be judged otherwise than Pillow judges it)"
        : $"libdeflate ({Library}, as libtiff in Pillow)";

    /// <summary>What libdeflate made of a zlib stream given a buffer of the rows' size (libdeflate_result).</summary>
    public enum Result
    {
        /// <summary>The stream ended with its checksum, having filled the buffer exactly.</summary>
        Success = 0,
        /// <summary>Damage, a wrong checksum, or a stream that ran out before its end.</summary>
        BadData = 1,
        /// <summary>The stream ended before the buffer was full: fewer bytes than the rows.</summary>
        ShortOutput = 2,
        /// <summary>The buffer filled before the stream ended (libtiff accepts this: the rows are all there).</summary>
        InsufficientSpace = 3,
    }

    /// <summary>A decompressor for one file's strips; disposing it frees it.</summary>
    public sealed class Decompressor : IDisposable
    {
        private IntPtr handle = Native.libdeflate_alloc_decompressor();

        /// <summary>Inflates <paramref name="zlib"/> into <paramref name="rows"/> (whose length is what the strip must give).</summary>
        public Result Inflate(ReadOnlySpan<byte> zlib, Span<byte> rows)
        {
            if (handle == IntPtr.Zero) throw new OutOfMemoryException("libdeflate could not allocate a decompressor");
            return (Result)Native.libdeflate_zlib_decompress(handle, in MemoryMarshal.GetReference(zlib), (nuint)zlib.Length,
                ref MemoryMarshal.GetReference(rows), (nuint)rows.Length, IntPtr.Zero);
        }

        public void Dispose()
        {
            if (handle == IntPtr.Zero) return;
            Native.libdeflate_free_decompressor(handle);
            handle = IntPtr.Zero;
        }
    }

    private static string? Probe() => NativeDecoding.WhyUnavailable(() =>
    {
        using var decompressor = new Decompressor();
        // The zlib stream of one zero byte: it must come back as that byte.
        ReadOnlySpan<byte> stream = [0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01];
        Span<byte> one = [0xFF];
        return decompressor.Inflate(stream, one) == Result.Success && one[0] == 0 ? null : "it does not inflate a known stream";
    });

    /// <summary>libdeflate's decompression API (libdeflate.h).</summary>
    private static class Native
    {
        [DllImport(Library)]
        public static extern IntPtr libdeflate_alloc_decompressor();

        [DllImport(Library)]
        public static extern void libdeflate_free_decompressor(IntPtr decompressor);

        [DllImport(Library)]
        public static extern int libdeflate_zlib_decompress(IntPtr decompressor, in byte input, nuint inputBytes, ref byte output,
            nuint outputBytes, IntPtr actualOutputBytes);
    }
}
