using System.Runtime.InteropServices;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A WebP's container judged by libwebp's demuxer (Debian's <c>libwebpdemux2</c>), when the system has it. Pillow opens
/// every WebP, still or animated, with libwebp's animation decoder, which begins by demuxing the container and refuses
/// the file when the demuxer does ("could not create decoder object"): a RIFF size that does not match its chunks (a
/// fuzzer's find), chunks out of order, a frame past the canvas, flags that contradict the chunks. ImageSharp, and the
/// first-frame path here, read past such a container, so a file the trainer cannot open was classified.
/// </summary>
public static class LibWebpDemux
{
    private const string Library = "libwebpdemux.so.2";

    /// <summary>demux.h's WEBP_DEMUX_ABI_VERSION of libwebp 1.x (the library checks the major version, the high byte).</summary>
    private const int AbiVersion = 0x0107;

    private static readonly Lazy<string?> Unavailable = new(Probe);

    /// <summary>Whether the library could be loaded.</summary>
    public static bool IsAvailable => Unavailable.Value is null;

    /// <summary>What judges WebP containers, for the log line at start.</summary>
    public static string Description => Unavailable.Value is { } reason
        ? $"nothing ({Library} cannot be loaded: {reason}; a WebP whose container Pillow refuses may be classified)"
        : $"libwebp's demuxer ({Library}, as Pillow)";

    /// <summary>Why the demuxer refuses the whole file's container (one sentence), or null when it reads it or the library is missing.</summary>
    public static string? FindCorruption(ReadOnlyMemory<byte> webp)
    {
        if (!IsAvailable || webp.IsEmpty) return null;
        return Demuxes(webp) ? null
            : "libwebp's demuxer, with which Pillow opens every WebP, refuses its container (a RIFF size that does not match its chunks, chunks out of order, a frame past the canvas, or flags that contradict its chunks)";
    }

    /// <summary>Whether the demuxer reads <paramref name="webp"/>: pinned where it lies (an upload is not copied).</summary>
    private static bool Demuxes(ReadOnlyMemory<byte> webp)
    {
        var segment = MemoryMarshal.TryGetArray(webp, out var lying) ? lying : new ArraySegment<byte>(webp.ToArray());
        var pin = GCHandle.Alloc(segment.Array, GCHandleType.Pinned);
        try
        {
            var data = new WebPData(pin.AddrOfPinnedObject() + segment.Offset, (nuint)segment.Count);
            var demuxer = Native.WebPDemuxInternal(in data, allowPartial: 0, state: IntPtr.Zero, AbiVersion);
            if (demuxer == IntPtr.Zero) return false;
            Native.WebPDemuxDelete(demuxer);
            return true;
        }
        finally
        {
            pin.Free();
        }
    }

    // A 1x1 lossless still (Pillow's) must demux: the library works and takes the ABI version given.
    private static string? Probe() => NativeDecoding.WhyUnavailable(() => Demuxes(new byte[]
    {
        0x52, 0x49, 0x46, 0x46, 0x1C, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x4C, 0x0F, 0x00,
        0x00, 0x00, 0x2F, 0x00, 0x00, 0x00, 0x00, 0x07, 0x10, 0xFD, 0x8F, 0xFE, 0x07, 0x22, 0xA2, 0xFF, 0x01, 0x00,
    }) ? null : "it refuses a sound 1x1 WebP");

    /// <summary>demux.h's WebPData: the bytes and their count.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly struct WebPData(IntPtr bytes, nuint size)
    {
        public readonly IntPtr Bytes = bytes;
        public readonly nuint Size = size;
    }

    /// <summary>libwebp's demuxing API (demux.h); WebPDemux() is an inline wrapper of WebPDemuxInternal.</summary>
    private static class Native
    {
        [DllImport(Library)]
        public static extern IntPtr WebPDemuxInternal(in WebPData data, int allowPartial, IntPtr state, int version);

        [DllImport(Library)]
        public static extern void WebPDemuxDelete(IntPtr demuxer);
    }
}
