using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// What the native decoders (libjpeg-turbo's <see cref="TurboJpeg"/>, libwebp's <see cref="LibWebp"/>) share: whether
/// their library loads, and their pixels in an ImageSharp image, written straight into the image's memory when it is
/// one block, else into one pooled buffer copied row by row (a large image is stored in blocks).
/// </summary>
internal static class NativeDecoding
{
    /// <summary>Why the library cannot be used, in one line; null when <paramref name="probe"/> (a call into it) finds it working.</summary>
    public static string? WhyUnavailable(Func<string?> probe)
    {
        if (!OperatingSystem.IsLinux()) return "only looked for on Linux";
        try
        {
            return probe();
        }
        catch (Exception exception) when (exception is DllNotFoundException or EntryPointNotFoundException)
        {
            return exception.Message.ReplaceLineEndings(" ").Split(" Consider ", 2)[0];
        }
    }

    /// <summary>Writes the pixels of <paramref name="file"/> into <paramref name="pixels"/>, rows of the image's width without padding.</summary>
    public delegate void Decode<TState>(TState state, ReadOnlySpan<byte> file, Span<byte> pixels);

    /// <summary>A new image of <paramref name="width"/> x <paramref name="height"/> filled by <paramref name="decode"/>; disposed if it throws.</summary>
    public static Image<TPixel> Decoded<TPixel, TState>(Configuration configuration, int width, int height, ReadOnlySpan<byte> file,
        TState state, Decode<TState> decode) where TPixel : unmanaged, IPixel<TPixel>
    {
        var image = new Image<TPixel>(configuration, width, height);
        try
        {
            if (image.DangerousTryGetSinglePixelMemory(out var memory))
            {
                decode(state, file, MemoryMarshal.AsBytes(memory.Span));
                return image;
            }
            var rowBytes = width * Unsafe.SizeOf<TPixel>();
            var buffer = ArrayPool<byte>.Shared.Rent(rowBytes * height);
            try
            {
                decode(state, file, buffer.AsSpan(0, rowBytes * height));
                image.ProcessPixelRows(rows =>
                {
                    for (var y = 0; y < rows.Height; y++) buffer.AsSpan(y * rowBytes, rowBytes).CopyTo(MemoryMarshal.AsBytes(rows.GetRowSpan(y)));
                });
                return image;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }
}
