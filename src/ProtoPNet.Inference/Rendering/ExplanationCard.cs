using System.Globalization;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Inference.Rendering;

/// <summary>
/// The explanation as one picture: the uploaded image with the boxes of its top prototypes, the predicted label and
/// probability, the top classes, and one row per prototype ("this" heatmap with its box, the prototype's patch, the
/// training image it came from with its box, similarity x weight = points and, when the boxes were checked, the
/// probability without the box), closed by the rest of the logit.
/// Layout is fixed: <see cref="Width"/> wide and <see cref="HeightFor"/> tall, so callers can rely on the size.
/// </summary>
public static class ExplanationCard
{
    public const int Width = 760;

    /// <summary>The most prototype rows a card has room for; each adds a fixed strip, so the card's size stays bounded.</summary>
    public const int MaxRows = 10;
    private const int Margin = 16;
    private const int HeaderHeight = 84;
    private const int InputSize = 240;
    private const int RowsTop = HeaderHeight + InputSize + 20;
    private const int RowHeight = 140;
    private const int PictureSize = 96;
    private const int PictureGap = 12;
    private const int FooterHeight = 60;
    private const int TextScale = 2;
    private const int TitleScale = 3;

    private static readonly Rgb24 Background = new(255, 255, 255);
    private static readonly Rgb24 Panel = new(238, 241, 244);
    private static readonly Rgb24 Ink = new(33, 37, 41);
    private static readonly Rgb24 Muted = new(96, 104, 112);
    private static readonly Rgb24 PredictedBar = new(0, 102, 204);
    private static readonly Rgb24 OtherBar = new(150, 160, 170);

    /// <summary>One colour per prototype row (<see cref="MaxRows"/>); the same colour marks its box on the uploaded image.</summary>
    public static readonly Rgb24[] RowColours =
    [
        new(230, 25, 75), new(0, 116, 212), new(40, 160, 60), new(245, 130, 0), new(145, 30, 180),
        new(0, 170, 170), new(194, 27, 176), new(120, 120, 0), new(140, 70, 20), new(20, 30, 110),
    ];

    /// <summary>
    /// The number of a row's tag is written white or in ink, whichever stands out more from the row's colour: at least
    /// 4.5:1 (WCAG's contrast for small text) for every row colour. The web page chooses its tags' ink the same way.
    /// </summary>
    public static Rgb24 TagInk(Rgb24 colour) =>
        Contrast(Background, colour) >= Contrast(colour, Ink) ? Background : Ink;

    /// <summary>WCAG's contrast ratio of two colours (1 to 21).</summary>
    public static double Contrast(Rgb24 a, Rgb24 b)
    {
        var (lighter, darker) = (Luminance(a), Luminance(b)) is var (la, lb) && la >= lb ? (la, lb) : (lb, la);
        return (lighter + 0.05) / (darker + 0.05);
    }

    private static double Luminance(Rgb24 colour)
    {
        static double Channel(byte value)
        {
            var c = value / 255.0;
            return c <= 0.03928 ? c / 12.92 : Math.Pow((c + 0.055) / 1.055, 2.4);
        }
        return 0.2126 * Channel(colour.R) + 0.7152 * Channel(colour.G) + 0.0722 * Channel(colour.B);
    }

    private static readonly PngEncoder Encoder = new() { ColorType = PngColorType.Rgb, CompressionLevel = PngCompressionLevel.DefaultCompression };

    /// <summary>Height of the notice band an unfamiliar image's card gets under its header.</summary>
    public const int NoticeHeight = 64;

    /// <summary>The notice on the card of an image whose unfamiliarity is above the bundle's threshold.</summary>
    public const string UnfamiliarNotice = "This image does not look like anything this model has learned.";

    private static readonly Rgb24 NoticeBackground = new(255, 236, 204);
    private static readonly Rgb24 NoticeInk = new(138, 58, 0);

    /// <summary>The card's height for <paramref name="prototypeRows"/> explained prototypes (and the notice band, when shown).</summary>
    public static int HeightFor(int prototypeRows, bool notice = false) =>
        RowsTop + Math.Max(0, prototypeRows) * RowHeight + FooterHeight + (notice ? NoticeHeight : 0);

    public static byte[] RenderPng(ModelBundle bundle, Image<Rgb24> uploaded, Classification classification)
    {
        using var card = Render(bundle, uploaded, classification);
        using var stream = new MemoryStream();
        card.SaveAsPng(stream, Encoder);
        return stream.ToArray();
    }

    /// <summary>
    /// The most bytes rendering a card of at most <paramref name="prototypeRows"/> rows holds beyond the upload's pixels
    /// and one heatmap at a time (<see cref="HeatmapRenderer.OverlayBytes"/>): four cards' pixels (the card, its copy
    /// with the notice band and the crops made for that; then the card and its PNG, which compresses well but at worst
    /// is as large, in a stream that holds up to three times that while it doubles and copies out) and the preview.
    /// </summary>
    public static long RenderingBytes(int prototypeRows)
    {
        var card = 3L * Width * HeightFor(prototypeRows, notice: true);
        return 4 * (card + 64 * 1024) + 3L * InputSize * InputSize;
    }

    /// <summary>
    /// Draws the card. <paramref name="uploaded"/> is the decoded upload, upright, at any size: a JPEG decoded at a reduced
    /// scale, or a large image kept to draw on (<see cref="Explanation.Classifier.MaxDrawingPixels"/>), is smaller than the
    /// upload, whose size, the classification's, boxes are given in;
    /// heatmaps are drawn when the classification carries them, else the plain image stands in.
    /// </summary>
    public static Image<Rgb24> Render(ModelBundle bundle, Image<Rgb24> uploaded, Classification classification)
    {
        var explanation = classification.Explanation;
        var rows = explanation.Prototypes;
        var card = new Image<Rgb24>(Width, HeightFor(rows.Count), Background);
        // Every picture of the upload on the card is at most InputSize wide: shrink a large photo once, not once per row.
        using var preview = Preview(uploaded, InputSize);
        var upload = new Upload(uploaded, preview, classification.ImageWidth, classification.ImageHeight);

        DrawHeader(card, bundle, classification);
        DrawUploaded(card, upload, rows);
        DrawTopClasses(card, classification);
        for (var i = 0; i < rows.Count; i++)
        {
            DrawRow(card, bundle, upload, rows[i], i, RowsTop + i * RowHeight);
        }
        DrawFooter(card, explanation, rows.Count, RowsTop + rows.Count * RowHeight);
        return classification.Unfamiliarity.Unfamiliar == true ? WithNotice(card) : card;
    }

    /// <summary>The card with the unfamiliar-image notice in a band between its header and the rest: a prediction is
    /// still shown (the model always picks a class), but nobody should take it for knowledge.</summary>
    private static Image<Rgb24> WithNotice(Image<Rgb24> card)
    {
        using (card)
        {
            var noticed = new Image<Rgb24>(Width, card.Height + NoticeHeight, Background);
            using (var header = card.Clone(c => c.Crop(new Rectangle(0, 0, Width, HeaderHeight))))
            using (var rest = card.Clone(c => c.Crop(new Rectangle(0, HeaderHeight, Width, card.Height - HeaderHeight))))
            {
                noticed.Mutate(c => c.DrawImage(header, new Point(0, 0), 1f).DrawImage(rest, new Point(0, HeaderHeight + NoticeHeight), 1f));
            }
            Pixels.FillRect(noticed, Margin, HeaderHeight, Width - 2 * Margin, NoticeHeight - 8, NoticeBackground);
            Pixels.FillRect(noticed, Margin, HeaderHeight, 6, NoticeHeight - 8, NoticeInk);
            var lines = Wrap("Unfamiliar image: " + UnfamiliarNotice, Width - 2 * Margin - 28, TextScale);
            for (var i = 0; i < Math.Min(2, lines.Count); i++)
            {
                BitmapFont.Draw(noticed, lines[i], Margin + 16, HeaderHeight + 8 + 24 * i, NoticeInk, TextScale);
            }
            return noticed;
        }
    }

    /// <summary>The words of <paramref name="text"/> in lines of at most <paramref name="maxWidth"/> pixels.</summary>
    private static List<string> Wrap(string text, int maxWidth, int scale)
    {
        var lines = new List<string>();
        var line = "";
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var longer = line.Length == 0 ? word : line + " " + word;
            if (line.Length > 0 && BitmapFont.MeasureWidth(longer, scale) > maxWidth)
            {
                lines.Add(line);
                longer = word;
            }
            line = longer;
        }
        if (line.Length > 0) lines.Add(line);
        return lines;
    }

    private static void DrawHeader(Image<Rgb24> card, ModelBundle bundle, Classification classification)
    {
        var prediction = classification.Prediction;
        // A long label is shortened, never the probability after it.
        var probability = "  " + Percent(prediction.Probability);
        var label = BitmapFont.Fit(prediction.Label, Width - 2 * Margin - BitmapFont.MeasureWidth(probability, TitleScale), TitleScale);
        BitmapFont.Draw(card, label + probability, Margin, Margin, Ink, TitleScale);
        var explanation = classification.Explanation;
        var subtitle = explanation.ClassIndex == prediction.ClassIndex
            ? $"{bundle.Name}@{bundle.Version}: this looks like that"
            : $"{bundle.Name}@{bundle.Version}: why {explanation.Label}?";
        BitmapFont.Draw(card, BitmapFont.Fit(subtitle, Width - 2 * Margin, TextScale), Margin, 52, Muted, TextScale);
    }

    /// <summary>
    /// The upload as decoded (heatmaps are drawn over it), its <paramref name="Preview"/>, possibly shrunk, and the
    /// upload's size, which boxes are given in (larger than the decoded pixels for a JPEG decoded at a reduced scale).
    /// </summary>
    private sealed record Upload(Image<Rgb24> Original, Image<Rgb24> Preview, int Width, int Height);

    private static Image<Rgb24> Preview(Image<Rgb24> uploaded, int size)
    {
        if (uploaded.Width <= size && uploaded.Height <= size) return uploaded.Clone();
        var scale = Math.Min((double)size / uploaded.Width, (double)size / uploaded.Height);
        return uploaded.Clone(context => context.Resize(
            Math.Max(1, (int)Math.Round(uploaded.Width * scale)), Math.Max(1, (int)Math.Round(uploaded.Height * scale)), KnownResamplers.Bicubic));
    }

    private static void DrawUploaded(Image<Rgb24> card, Upload uploaded, IReadOnlyList<PrototypeContribution> rows)
    {
        var placed = Pixels.PasteFitted(card, uploaded.Preview, Margin, HeaderHeight, InputSize, Panel);
        var mapped = rows.Select(row => Pixels.MapBox(row.Box.X, row.Box.Y, row.Box.Width, row.Box.Height, uploaded.Width, uploaded.Height, placed)).ToArray();
        // Draw the lowest-ranked box first so the top prototype's box stays on top.
        for (var i = rows.Count - 1; i >= 0; i--)
        {
            Pixels.StrokeRect(card, mapped[i].X, mapped[i].Y, mapped[i].Width, mapped[i].Height, 2, RowColours[i % RowColours.Length]);
        }
        // Then every number tag over all boxes.
        var tags = TagPlaces(mapped.Select(box => new Point(box.X, box.Y)).ToArray());
        for (var i = 0; i < rows.Count; i++)
        {
            Pixels.FillRect(card, tags[i].X, tags[i].Y, tags[i].Width, tags[i].Height, RowColours[i % RowColours.Length]);
            BitmapFont.Draw(card, Tag(i), tags[i].X + 2, tags[i].Y + 2, TagInk(RowColours[i % RowColours.Length]));
        }
    }

    private static string Tag(int row) => (row + 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Where each row's number tag goes: in its box's top-left corner, moved right past the tags of higher-ranked rows it
    /// would cover. Two prototypes may share a box (two pushed onto the same patch), and both must stay visible.
    /// </summary>
    internal static Rectangle[] TagPlaces(IReadOnlyList<Point> corners)
    {
        var tags = new Rectangle[corners.Count];
        for (var i = 0; i < corners.Count; i++)
        {
            var place = new Rectangle(corners[i].X, corners[i].Y, BitmapFont.MeasureWidth(Tag(i), 1) + 4, BitmapFont.GlyphHeight + 3);
            while (tags.Take(i).Where(t => t.IntersectsWith(place)).Select(t => t.Right).DefaultIfEmpty(-1).Max() is var right and >= 0)
            {
                place.X = right;
            }
            tags[i] = place;
        }
        return tags;
    }

    private static void DrawTopClasses(Image<Rgb24> card, Classification classification)
    {
        var left = Margin + InputSize + 24;
        var width = Width - Margin - left;
        if (classification.TopClasses.Count == 0) return;
        BitmapFont.Draw(card, "Top classes", left, HeaderHeight, Muted, TextScale);
        const int lineHeight = 34;
        var fitting = (InputSize - 26) / lineHeight;
        var top = HeaderHeight + 26;
        foreach (var score in classification.TopClasses.Take(fitting))
        {
            var percent = Percent(score.Probability);
            var percentWidth = BitmapFont.MeasureWidth(percent, TextScale);
            BitmapFont.Draw(card, BitmapFont.Fit(score.Label, width - percentWidth - 12, TextScale), left, top, Ink, TextScale);
            BitmapFont.Draw(card, percent, left + width - percentWidth, top, Ink, TextScale);
            Pixels.FillRect(card, left, top + 19, width, 8, Panel);
            var bar = (int)Math.Round(width * Math.Clamp(score.Probability, 0, 1));
            var colour = score.ClassIndex == classification.Prediction.ClassIndex ? PredictedBar : OtherBar;
            Pixels.FillRect(card, left, top + 19, bar, 8, colour);
            top += lineHeight;
        }
    }

    private static void DrawRow(Image<Rgb24> card, ModelBundle bundle, Upload uploaded, PrototypeContribution row, int rank, int top)
    {
        var colour = RowColours[rank % RowColours.Length];
        var header = $"#{rank + 1}  prototype {row.PrototypeIndex} of {row.Label}";
        Pixels.FillRect(card, Margin, top + 2, 6, 14, colour);
        BitmapFont.Draw(card, BitmapFont.Fit(header, Width - 2 * Margin - 12, TextScale), Margin + 12, top, Ink, TextScale);

        var picturesTop = top + 22;
        var x = Margin;

        // "This": the uploaded image (with the prototype's heatmap when there is one) and the box.
        using (var heatmap = row.Heatmap is null ? null : HeatmapRenderer.Render(uploaded.Original, row.Heatmap))
        {
            // The heatmap covers the whole upload, so the box maps onto it the same way.
            var placed = Pixels.PasteFitted(card, heatmap ?? uploaded.Preview, x, picturesTop, PictureSize, Panel);
            var box = Pixels.MapBox(row.Box.X, row.Box.Y, row.Box.Width, row.Box.Height, uploaded.Width, uploaded.Height, placed);
            Pixels.StrokeRect(card, box.X, box.Y, box.Width, box.Height, 2, colour);
        }
        BitmapFont.Draw(card, "this", x, picturesTop + PictureSize + 4, Muted);

        // "Looks like that": the prototype's patch.
        x += PictureSize + PictureGap;
        var prototype = bundle.Manifest.Prototypes[row.PrototypeIndex];
        DrawPicture(card, bundle, prototype.Images?.Patch ?? $"prototypes/{row.PrototypeIndex}/patch.png", x, picturesTop, box: null);
        BitmapFont.Draw(card, "looks like", x, picturesTop + PictureSize + 4, Muted);

        // The training image the prototype was projected onto, with its box.
        x += PictureSize + PictureGap;
        DrawPicture(card, bundle, prototype.Images?.Source ?? $"prototypes/{row.PrototypeIndex}/source.png", x, picturesTop,
            prototype.Source?.Box, colour);
        BitmapFont.Draw(card, "training image", x, picturesTop + PictureSize + 4, Muted);

        x += PictureSize + 20;
        BitmapFont.Draw(card, $"similarity {Number(row.Similarity)}", x, picturesTop + 8, Ink, TextScale);
        BitmapFont.Draw(card, $"\u00D7 weight {row.Weight.ToString("0.000", CultureInfo.InvariantCulture)}", x, picturesTop + 34, Ink, TextScale);
        BitmapFont.Draw(card, $"= {Number(row.Contribution)} points", x, picturesTop + 60, colour, TextScale);
        // With the evidence check: the explained class's probability with this box filled with the mean colour.
        if (row.WithoutBox is { } deletion)
        {
            var check = $"without box: p={Number(deletion.ProbabilityWithoutBox)}, drop {Number(deletion.Drop)}";
            BitmapFont.Draw(card, BitmapFont.Fit(check, Width - Margin - x, TextScale), x, picturesTop + 86, Ink, TextScale);
        }
    }

    private static void DrawFooter(Image<Rgb24> card, ClassExplanation explanation, int rows, int top)
    {
        var rest = rows == 0 ? "all prototypes" : "+ other prototypes";
        BitmapFont.Draw(card, $"{rest}: {Number(explanation.OtherPrototypesContribution)} points", Margin, top + 4, Muted, TextScale);
        var total = $"= {Number(explanation.Logit)}: the score (logit) of {explanation.Label}";
        BitmapFont.Draw(card, BitmapFont.Fit(total, Width - 2 * Margin, TextScale), Margin, top + 28, Ink, TextScale);
    }

    private static void DrawPicture(Image<Rgb24> card, ModelBundle bundle, string relativePath, int x, int y, PixelBox? box,
        Rgb24 boxColour = default)
    {
        var path = bundle.ResolveFile(relativePath);
        Image<Rgb24>? picture = null;
        try
        {
            if (path is not null) picture = Image.Load<Rgb24>(path);
        }
        catch (Exception exception) when (exception is ImageFormatException or UnknownImageFormatException or IOException or UnauthorizedAccessException)
        {
            picture = null;   // changed since it was resolved (removed, its permissions): drawn as missing
        }
        if (picture is null)
        {
            Pixels.FillRect(card, x, y, PictureSize, PictureSize, Panel);
            BitmapFont.Draw(card, "missing", x + 4, y + PictureSize / 2 - 4, Muted);
            return;
        }
        using (picture)
        {
            var placed = Pixels.PasteFitted(card, picture, x, y, PictureSize, Panel);
            if (box is null) return;
            // Prototype boxes are in pixels of the model's input; the source picture is that image, possibly at another size.
            var input = bundle.Manifest.Input;
            var mapped = Pixels.MapBox(box.X, box.Y, box.Width, box.Height, input.Width, input.Height, placed);
            Pixels.StrokeRect(card, mapped.X, mapped.Y, mapped.Width, mapped.Height, 2, boxColour);
        }
    }

    /// <summary>A probability in percent to one decimal; one short of certainty, or above none, is not rounded to it.</summary>
    public static string Percent(double probability) => (probability * 100) switch
    {
        >= 99.95 and < 100 => ">99.9%",
        > 0 and < 0.05 => "<0.1%",
        var percent => percent.ToString("0.0", CultureInfo.InvariantCulture) + "%",
    };

    /// <summary>Two decimals, and no "-0.00" for a small negative value.</summary>
    public static string Number(double value) => (Math.Round(value, 2) == 0 ? 0 : value).ToString("0.00", CultureInfo.InvariantCulture);
}
