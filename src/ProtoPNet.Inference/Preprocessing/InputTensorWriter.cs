using ProtoPNet.Inference.Bundles;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// Turns an upright, opaque image into the network's input: the bundle's colour space, resized as the manifest says,
/// values in [0, 1], channel-major [C, H, W]. Normalisation is inside the graph.
/// </summary>
public static class InputTensorWriter
{
    public static void Write(Image<Rgb24> image, InputSection input, float[] destination, int offset)
    {
        ColorSpaces.TryParse(input.ColorSpace, out var colorSpace);
        Resamplers.TryGet(input.Interpolation, out var resampler);
        var plane = input.Height * input.Width;
        if (destination.Length - offset < plane * ColorSpaces.ChannelCount(colorSpace))
        {
            throw new ArgumentException("destination is smaller than one input image", nameof(destination));
        }
        var resize = new ResizeOptions { Size = new Size(input.Width, input.Height), Mode = ResizeMode.Stretch, Sampler = resampler };
        const float scale = 1f / 255f;

        if (colorSpace == ColorSpace.Gray)
        {
            // Convert first, then resize: the order of PIL's convert("L").resize(...) in the trainer.
            using var gray = ToGray(image);
            if (gray.Width != input.Width || gray.Height != input.Height) gray.Mutate(context => context.Resize(resize));
                        gray.ProcessPixelRows(accessor =>
            {
                for (var y = 0; y < accessor.Height; y++)
                {
                    var row = accessor.GetRowSpan(y);
                    var start = offset + y * input.Width;
                    for (var x = 0; x < row.Length; x++) destination[start + x] = row[x].PackedValue * scale;
                }
            });
            return;
        }

        var resized = image.Width == input.Width && image.Height == input.Height ? image : image.Clone(context => context.Resize(resize));
        try
        {
            resized.ProcessPixelRows(accessor =>
            {
                for (var y = 0; y < accessor.Height; y++)
                {
                    var row = accessor.GetRowSpan(y);
                    var start = offset + y * input.Width;
                    for (var x = 0; x < row.Length; x++)
                    {
                        destination[start + x] = row[x].R * scale;
                        destination[start + plane + x] = row[x].G * scale;
                        destination[start + 2 * plane + x] = row[x].B * scale;
                    }
                }
            });
        }
        finally
        {
            if (!ReferenceEquals(resized, image)) resized.Dispose();
        }
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
