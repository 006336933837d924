using System.Buffers.Binary;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Preprocessing;

/// <summary>
/// A GIF whose first image covers only part of its screen (or of the screen enlarged to hold it, <see cref="GifScreen"/>):
/// Pillow, the trainer's decoder, makes the rest of its picture of indexes the image's transparent index when it has one
/// (so white, once composited) and index 0 otherwise, colour 0 of the image's own colour table or else the screen's;
/// ImageSharp painted it black. The rest is painted as Pillow paints it.
/// </summary>
internal static class GifOutsideTheFirstImage
{
    public static void Apply(Image<Rgba32> image, ReadOnlySpan<byte> file)
    {
        if (GifBlocks.FirstImage(file) is not var (descriptor, transparentIndex) || descriptor + 10 > file.Length) return;
        int left = Field(file, descriptor + 1), top = Field(file, descriptor + 3);
        int right = Math.Min(image.Width, left + Field(file, descriptor + 5)), bottom = Math.Min(image.Height, top + Field(file, descriptor + 7));
        if (left == 0 && top == 0 && right == image.Width && bottom == image.Height) return;
        Rgba32 fill;
        if (transparentIndex is not null)
        {
            fill = new Rgba32(0, 0, 0, 0);
        }
        else
        {
            // Colour 0 of the table the image is drawn with; with none at all, ImageSharp's black is Pillow's too.
            var localFlags = file[descriptor + 9];
            var table = (localFlags & 0x80) != 0 ? descriptor + 10 : (file[10] & 0x80) != 0 ? 13 : -1;
            if (table < 0 || table + 3 > file.Length) return;
            fill = new Rgba32(file[table], file[table + 1], file[table + 2], 255);
        }
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                if (y < top || y >= bottom)
                {
                    row.Fill(fill);
                    continue;
                }
                row[..Math.Min(left, row.Length)].Fill(fill);
                if (right < row.Length) row[Math.Max(right, 0)..].Fill(fill);
            }
        });
    }

    private static int Field(ReadOnlySpan<byte> file, int at) => BinaryPrimitives.ReadUInt16LittleEndian(file[at..]);
}
