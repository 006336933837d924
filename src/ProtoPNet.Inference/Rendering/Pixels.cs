using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Inference.Rendering;

/// <summary>Rectangles and pasted pictures with plain pixel writes, clipped to the image.</summary>
public static class Pixels
{
    public static void FillRect(PixelAccessor<Rgb24> accessor, int x, int y, int width, int height, Rgb24 colour)
    {
        var left = Math.Max(0, x);
        var right = Math.Min(accessor.Width, x + width);
        var top = Math.Max(0, y);
        var bottom = Math.Min(accessor.Height, y + height);
        if (left >= right) return;
        for (var row = top; row < bottom; row++)
        {
            accessor.GetRowSpan(row)[left..right].Fill(colour);
        }
    }

    public static void FillRect(Image<Rgb24> image, int x, int y, int width, int height, Rgb24 colour) =>
        image.ProcessPixelRows(accessor => FillRect(accessor, x, y, width, height, colour));

    /// <summary>The outline of a rectangle, <paramref name="thickness"/> pixels wide, drawn inside its bounds.</summary>
    public static void StrokeRect(Image<Rgb24> image, int x, int y, int width, int height, int thickness, Rgb24 colour) =>
        image.ProcessPixelRows(accessor =>
        {
            var t = Math.Max(1, Math.Min(thickness, Math.Min(width, height) / 2 + 1));
            FillRect(accessor, x, y, width, t, colour);
            FillRect(accessor, x, y + height - t, width, t, colour);
            FillRect(accessor, x, y, t, height, colour);
            FillRect(accessor, x + width - t, y, t, height, colour);
        });

    /// <summary>
    /// Pastes <paramref name="picture"/> scaled to fit a <paramref name="size"/> x <paramref name="size"/> square whose top-left
    /// corner is (x, y), centred on a neutral background. Small pictures are enlarged with nearest-neighbour so their pixels
    /// stay visible (a 28 x 28 image blurred to 96 x 96 hides what the model saw). Returns where the picture landed.
    /// </summary>
    public static Rectangle PasteFitted(Image<Rgb24> target, Image<Rgb24> picture, int x, int y, int size, Rgb24 background)
    {
        FillRect(target, x, y, size, size, background);
        var scale = Math.Min((double)size / picture.Width, (double)size / picture.Height);
        var width = Math.Max(1, (int)Math.Round(picture.Width * scale));
        var height = Math.Max(1, (int)Math.Round(picture.Height * scale));
        using var resized = picture.Clone(context => context.Resize(width, height,
            scale >= 1 ? KnownResamplers.NearestNeighbor : KnownResamplers.Bicubic));
        var placed = new Rectangle(x + (size - width) / 2, y + (size - height) / 2, width, height);
        target.Mutate(context => context.DrawImage(resized, new Point(placed.X, placed.Y), 1f));
        return placed;
    }

    /// <summary>
    /// Maps a box given in pixels of an image of <paramref name="sourceWidth"/> x <paramref name="sourceHeight"/> onto the
    /// rectangle where that image was pasted.
    /// </summary>
    public static Rectangle MapBox(int boxX, int boxY, int boxWidth, int boxHeight, int sourceWidth, int sourceHeight, Rectangle placed)
    {
        var sx = (double)placed.Width / sourceWidth;
        var sy = (double)placed.Height / sourceHeight;
        var left = placed.X + (int)Math.Floor(boxX * sx);
        var top = placed.Y + (int)Math.Floor(boxY * sy);
        var right = placed.X + (int)Math.Ceiling((boxX + boxWidth) * sx);
        var bottom = placed.Y + (int)Math.Ceiling((boxY + boxHeight) * sy);
        return new Rectangle(left, top, Math.Max(1, right - left), Math.Max(1, bottom - top));
    }
}
