using System.Buffers;
using System.Runtime.InteropServices;
using ProtoPNet.Inference.Bundles;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Turns an upright, opaque image into the network's input: the bundle's colour space, resized as the manifest says
/// (with PIL's arithmetic, see <see cref="Resamplers"/>), values in [0, 1], channel-major [C, H, W], then the bundle's
/// contrast step (<see cref="ContrastNormalizer"/>). Mean and std normalisation is inside the graph. The pixels are
/// read where the decoder left them and the resized ones go to a pooled buffer: a 640x480 photo costs no large
/// allocation per request.
/// </summary>
public static class InputTensorWriter
{
    /// <summary>v / 255f for every byte: the same float32 values as torchvision's ToTensor (a division, not a
    /// multiplication by 1/255), to the last bit, looked up instead of divided per value.</summary>
    private static readonly float[] UnitValues = Enumerable.Range(0, 256).Select(v => v / 255f).ToArray();

    /// <summary>Writes one image at <paramref name="offset"/>; returns whether the contrast step inverted it.</summary>
    public static bool Write(Image<Rgb24> image, InputSection input, float[] destination, int offset)
    {
        ColorSpaces.TryParse(input.ColorSpace, out var colorSpace);
        var channels = ColorSpaces.ChannelCount(colorSpace);
        if (destination.Length - offset < input.Height * input.Width * channels)
        {
            throw new ArgumentException("destination is smaller than one input image", nameof(destination));
        }

        // Gray: convert first, then resize, the order of PIL's convert("L").resize(...) in the trainer.
        if (colorSpace == ColorSpace.Gray)
        {
            using var gray = ToGray(image);
            WriteResized(gray, channels, input, destination, offset);
        }
        else
        {
            WriteResized(image, channels, input, destination, offset);
        }
        return input.Contrast == ContrastNormalizer.Auto
            && ContrastNormalizer.Normalize(destination.AsSpan(offset, input.Height * input.Width * channels), channels, input.Height, input.Width);
    }

    private static void WriteResized<TPixel>(Image<TPixel> image, int channels, InputSection input, float[] destination, int offset)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        Resamplers.TryGet(input.Interpolation, out var filter);
        byte[]? copied = null;
        byte[]? resized = null;
        try
        {
            // The decoder's own buffer when the image is in one piece (it is, below ImageSharp's pool block size).
            ReadOnlySpan<byte> pixels = image.DangerousTryGetSinglePixelMemory(out var memory)
                ? MemoryMarshal.AsBytes(memory.Span)
                : copied = CopyRows(image);
            if (image.Width != input.Width || image.Height != input.Height)
            {
                var length = input.Width * input.Height * channels;
                resized = ArrayPool<byte>.Shared.Rent(length);
                Resamplers.Resize(pixels, image.Width, image.Height, channels, input.Width, input.Height, filter, resized.AsSpan(0, length));
                pixels = resized.AsSpan(0, length);
            }
            WritePlanes(pixels, channels, destination.AsSpan(offset, pixels.Length));
        }
        finally
        {
            if (copied is not null) ArrayPool<byte>.Shared.Return(copied);
            if (resized is not null) ArrayPool<byte>.Shared.Return(resized);
        }
    }

    /// <summary>Interleaved bytes [H, W, C] to values in [0, 1], channel-major [C, H, W].</summary>
    private static void WritePlanes(ReadOnlySpan<byte> pixels, int channels, Span<float> destination)
    {
        var units = UnitValues;
        var plane = pixels.Length / channels;
        if (channels == 1)
        {
            for (var i = 0; i < plane; i++) destination[i] = units[pixels[i]];
            return;
        }
        for (var c = 0; c < channels; c++)
        {
            var target = destination.Slice(c * plane, plane);
            for (int i = 0, at = c; i < plane; i++, at += channels) target[i] = units[pixels[at]];
        }
    }

    /// <summary>The pixels as interleaved bytes, row after row, in a pooled buffer (for an image stored in several blocks).</summary>
    private static byte[] CopyRows<TPixel>(Image<TPixel> image) where TPixel : unmanaged, IPixel<TPixel>
    {
        var rowBytes = image.Width * Marshal.SizeOf<TPixel>();
        var bytes = ArrayPool<byte>.Shared.Rent(rowBytes * image.Height);
        image.ProcessPixelRows(accessor =>
        {
            for (var y = 0; y < accessor.Height; y++) MemoryMarshal.AsBytes(accessor.GetRowSpan(y)).CopyTo(bytes.AsSpan(y * rowBytes, rowBytes));
        });
        return bytes;
    }

    /// <summary>ITU-R 601-2 luma with PIL's exact integer rounding: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.</summary>
    public static Image<L8> ToGray(Image<Rgb24> image)
    {
        var gray = new Image<L8>(image.Width, image.Height);
        image.ProcessPixelRows(gray, (source, target) =>
        {
            for (var y = 0; y < source.Height; y++)
            {
                var from = source.GetRowSpan(y);
                var to = target.GetRowSpan(y);
                for (var x = 0; x < from.Length; x++)
                {
                    to[x] = new L8((byte)((from[x].R * 19595 + from[x].G * 38470 + from[x].B * 7471 + 0x8000) >> 16));
                }
            }
        });
        return gray;
    }
}
