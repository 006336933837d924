using System.Runtime.InteropServices;
using ProtoPNet.Inference.Bundles;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Turns an upright, opaque image into the network's input: the bundle's colour space, resized as the manifest says
/// (with PIL's arithmetic, see <see cref="Resamplers"/>), values in [0, 1], channel-major [C, H, W], then the bundle's
/// contrast step (<see cref="ContrastNormalizer"/>). Mean and std normalisation is inside the graph.
/// </summary>
public static class InputTensorWriter
{
    /// <summary>Writes one image at <paramref name="offset"/>; returns whether the contrast step inverted it.</summary>
    public static bool Write(Image<Rgb24> image, InputSection input, float[] destination, int offset)
    {
        ColorSpaces.TryParse(input.ColorSpace, out var colorSpace);
        Resamplers.TryGet(input.Interpolation, out var filter);
        var channels = ColorSpaces.ChannelCount(colorSpace);
        var plane = input.Height * input.Width;
        if (destination.Length - offset < plane * channels)
        {
            throw new ArgumentException("destination is smaller than one input image", nameof(destination));
        }

        // Gray: convert first, then resize, the order of PIL's convert("L").resize(...) in the trainer.
        byte[] pixels;
        if (colorSpace == ColorSpace.Gray)
        {
            using var gray = ToGray(image);
            pixels = Bytes(gray);
        }
        else
        {
            pixels = Bytes(image);
        }
        var resized = Resamplers.Resize(pixels, image.Width, image.Height, channels, input.Width, input.Height, filter);

        // A division, not a multiplication by 1/255: the same float32 values as torchvision's ToTensor, to the last bit.
        for (var i = 0; i < plane; i++)
        {
            for (var c = 0; c < channels; c++) destination[offset + c * plane + i] = resized[i * channels + c] / 255f;
        }
        return input.Contrast == ContrastNormalizer.Auto
            && ContrastNormalizer.Normalize(destination.AsSpan(offset, plane * channels), channels, input.Height, input.Width);
    }

    /// <summary>The pixels as interleaved bytes, row after row.</summary>
    private static byte[] Bytes<TPixel>(Image<TPixel> image) where TPixel : unmanaged, IPixel<TPixel>
    {
        var rowBytes = image.Width * Marshal.SizeOf<TPixel>();
        var bytes = new byte[rowBytes * image.Height];
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
