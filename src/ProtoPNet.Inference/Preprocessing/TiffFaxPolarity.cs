using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A fax-compressed TIFF (CCITT RLE, Group 3, Group 4) that says BlackIsZero, as Pillow writes a bilevel image so
/// compressed: ImageSharp decodes its runs as WhiteIsZero whatever the file says, so every pixel came out inverted
/// (the trainer's Pillow, through libtiff, honours it). Such an image is inverted back after decoding.
/// </summary>
public static class TiffFaxPolarity
{
    private const ushort Compression = 259, Photometric = 262;
    private const ulong CcittRle = 2, CcittGroup3 = 3, CcittGroup4 = 4, BlackIsZero = 1;

    /// <summary>Whether a Compression is one of the fax codings (CCITT RLE, Group 3, Group 4), which code 1 bit per sample.</summary>
    internal static bool IsFax(ulong compression) => compression is CcittRle or CcittGroup3 or CcittGroup4;

    /// <summary>Makes <paramref name="image"/>, decoded by ImageSharp from the TIFF <paramref name="file"/>, the pixels libtiff reads from it.</summary>
    public static void Apply(Image<Rgba32> image, ReadOnlySpan<byte> file)
    {
        if (TiffDirectory.First(file) is not { } directory) return;
        if (directory.FirstValueOf(file, Compression) is not { } compression || !IsFax(compression) || directory.FirstValueOf(file, Photometric) != BlackIsZero) return;
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                foreach (ref var pixel in rows.GetRowSpan(y)) pixel = new Rgba32((byte)~pixel.R, (byte)~pixel.G, (byte)~pixel.B, pixel.A);
            }
        });
    }
}
