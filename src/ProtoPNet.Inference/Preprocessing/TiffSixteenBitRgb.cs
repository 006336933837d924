using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// An RGB TIFF (alpha too) of 16 bits a sample: Pillow (the trainer's decoder) reads each sample as its high byte
/// (v &gt;&gt; 8), where ImageSharp rounds it to 8 bits (about v * 255 / 65535), so a quarter of the levels came out one
/// higher than the trainer's. Such a file is decoded at 16 bits and each sample taken by its high byte.
/// </summary>
internal static class TiffSixteenBitRgb
{
    private const ushort BitsPerSample = 258, Photometric = 262, SamplesPerPixel = 277, PlanarConfiguration = 284, ExtraSamples = 338;
    private const ulong Rgb = 2, AssociatedAlpha = 1;

    /// <summary>Whether the first directory says RGB of 16 bits in each of its three or four samples, stored together (chunky).</summary>
    public static bool Applies(ReadOnlySpan<byte> file)
    {
        if (TiffDirectory.First(file) is not { } directory) return false;
        var reader = new TiffReader(file, directory.LittleEndian);
        var fields = directory.FirstIntegerFields(reader, file.Length);
        if (fields.FirstValue(reader, Photometric) != Rgb) return false;
        var samples = fields.FirstValue(reader, SamplesPerPixel) ?? 1;
        if (samples is not (3 or 4) || !fields.TryGetValue(BitsPerSample, out var bits)) return false;
        if (fields.FirstValue(reader, PlanarConfiguration) == 2) return false;
        // Associated (premultiplied) alpha Pillow divides out after taking the high bytes: not matched here.
        if (fields.FirstValue(reader, ExtraSamples) == AssociatedAlpha) return false;
        // FindCorruption has refused a BitsPerSample of another count than 1 or the samples, so each index is in it.
        for (ulong i = 0; i < samples; i++)
        {
            if (reader.Value(bits.At, bits.Count == 1 ? 0 : i, bits.Type) != 16) return false;
        }
        return true;
    }

    /// <summary>The picture with each 16-bit sample as its high byte; <paramref name="wide"/> is disposed.</summary>
    public static Image<Rgba32> HighBytes(Image<Rgba64> wide, Configuration configuration)
    {
        using (wide)
        {
            var narrow = new Image<Rgba32>(configuration, wide.Width, wide.Height);
            wide.ProcessPixelRows(narrow, (from, to) =>
            {
                for (var y = 0; y < from.Height; y++)
                {
                    var source = from.GetRowSpan(y);
                    var target = to.GetRowSpan(y);
                    for (var x = 0; x < source.Length; x++)
                    {
                        var pixel = source[x];
                        target[x] = new Rgba32((byte)(pixel.R >> 8), (byte)(pixel.G >> 8), (byte)(pixel.B >> 8), (byte)(pixel.A >> 8));
                    }
                }
            });
            return narrow;
        }
    }
}
