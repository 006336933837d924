using System.Globalization;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Rendering;

/// <summary>
/// A small built-in 5 x 8 pixel font (printable ASCII plus the multiplication sign) drawn with plain pixel writes,
/// scaled by whole numbers. The card needs a few lines of text, and a font engine would be a large dependency for that.
/// Text is drawn as <see cref="Printable"/> makes it: accented letters without their accents, other characters outside
/// the set as '?'.
/// </summary>
public static class BitmapFont
{
    public const int GlyphWidth = 5;
    public const int GlyphHeight = 8;

    /// <summary>Pixels between two glyphs at scale 1.</summary>
    public const int Spacing = 1;

    // One line per glyph from ' ' (32) to '~' (126): eight rows top to bottom, bit 4 is the leftmost column.
    // Row 6 is the baseline row; row 7 holds descenders (g, j, p, q, y and the comma).
    private const string Table = """
        00 00 00 00 00 00 00 00
        04 04 04 04 04 00 04 00
        0A 0A 00 00 00 00 00 00
        0A 0A 1F 0A 1F 0A 0A 00
        04 0F 14 0E 05 1E 04 00
        18 19 02 04 08 13 03 00
        0C 12 14 08 15 12 0D 00
        04 04 00 00 00 00 00 00
        02 04 08 08 08 04 02 00
        08 04 02 02 02 04 08 00
        00 04 15 0E 15 04 00 00
        00 04 04 1F 04 04 00 00
        00 00 00 00 00 04 04 08
        00 00 00 1F 00 00 00 00
        00 00 00 00 00 0C 0C 00
        00 01 02 04 08 10 00 00
        0E 11 13 15 19 11 0E 00
        04 0C 04 04 04 04 0E 00
        0E 11 01 02 04 08 1F 00
        1F 02 04 02 01 11 0E 00
        02 06 0A 12 1F 02 02 00
        1F 10 1E 01 01 11 0E 00
        06 08 10 1E 11 11 0E 00
        1F 01 02 04 08 08 08 00
        0E 11 11 0E 11 11 0E 00
        0E 11 11 0F 01 02 0C 00
        00 0C 0C 00 0C 0C 00 00
        00 0C 0C 00 0C 04 08 00
        02 04 08 10 08 04 02 00
        00 00 1F 00 1F 00 00 00
        08 04 02 01 02 04 08 00
        0E 11 01 02 04 00 04 00
        0E 11 01 0D 15 15 0E 00
        0E 11 11 11 1F 11 11 00
        1E 11 11 1E 11 11 1E 00
        0E 11 10 10 10 11 0E 00
        1C 12 11 11 11 12 1C 00
        1F 10 10 1E 10 10 1F 00
        1F 10 10 1E 10 10 10 00
        0E 11 10 17 11 11 0F 00
        11 11 11 1F 11 11 11 00
        0E 04 04 04 04 04 0E 00
        07 02 02 02 02 12 0C 00
        11 12 14 18 14 12 11 00
        10 10 10 10 10 10 1F 00
        11 1B 15 15 11 11 11 00
        11 11 19 15 13 11 11 00
        0E 11 11 11 11 11 0E 00
        1E 11 11 1E 10 10 10 00
        0E 11 11 11 15 12 0D 00
        1E 11 11 1E 14 12 11 00
        0F 10 10 0E 01 01 1E 00
        1F 04 04 04 04 04 04 00
        11 11 11 11 11 11 0E 00
        11 11 11 11 11 0A 04 00
        11 11 11 15 15 15 0A 00
        11 11 0A 04 0A 11 11 00
        11 11 11 0A 04 04 04 00
        1F 01 02 04 08 10 1F 00
        0E 08 08 08 08 08 0E 00
        00 10 08 04 02 01 00 00
        0E 02 02 02 02 02 0E 00
        04 0A 11 00 00 00 00 00
        00 00 00 00 00 00 1F 00
        08 04 02 00 00 00 00 00
        00 00 0E 01 0F 11 0F 00
        10 10 16 19 11 11 1E 00
        00 00 0E 10 10 11 0E 00
        01 01 0D 13 11 11 0F 00
        00 00 0E 11 1F 10 0E 00
        06 09 08 1C 08 08 08 00
        00 00 0F 11 11 0F 01 0E
        10 10 16 19 11 11 11 00
        04 00 0C 04 04 04 0E 00
        02 00 06 02 02 02 12 0C
        10 10 12 14 18 14 12 00
        0C 04 04 04 04 04 0E 00
        00 00 1A 15 15 11 11 00
        00 00 16 19 11 11 11 00
        00 00 0E 11 11 11 0E 00
        00 00 1E 11 11 1E 10 10
        00 00 0F 11 11 0F 01 01
        00 00 16 19 10 10 10 00
        00 00 0E 10 0E 01 1E 00
        08 08 1C 08 08 09 06 00
        00 00 11 11 11 13 0D 00
        00 00 11 11 11 0A 04 00
        00 00 11 11 15 15 0A 00
        00 00 11 0A 04 0A 11 00
        00 00 11 11 11 0F 01 0E
        00 00 1F 02 04 08 1F 00
        02 04 04 08 04 04 02 00
        04 04 04 04 04 04 04 00
        08 04 04 02 04 04 08 00
        00 00 08 15 02 00 00 00
        """;

    private const char First = ' ';
    private const char Last = '~';
    private const char Times = '\u00D7';
    private static readonly byte[] TimesGlyph = [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00];

    private static readonly byte[][] Glyphs = Table
        .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(line => line.Split(' ').Select(hex => Convert.ToByte(hex, 16)).ToArray())
        .ToArray();

    /// <summary>Horizontal distance from one glyph to the next at <paramref name="scale"/>.</summary>
    public static int Advance(int scale) => (GlyphWidth + Spacing) * scale;

    /// <summary>
    /// The text as the font draws it, one glyph per character: an accented letter without its accents (a class named
    /// "Sandale für Damen" reads "Sandale fur Damen", not "Sandale f?r Damen"), 'ß' as "ss", anything else outside the
    /// set, an emoji included, as one '?'.
    /// </summary>
    public static string Printable(string text)
    {
        if (text.All(c => c is >= First and <= Last or Times)) return text;
        var printable = new StringBuilder(text.Length);
        foreach (var rune in text.Normalize(NormalizationForm.FormD).EnumerateRunes())
        {
            if (Rune.GetUnicodeCategory(rune) == UnicodeCategory.NonSpacingMark) continue;
            printable.Append(rune.Value switch
            {
                >= First and <= Last or Times => ((char)rune.Value).ToString(),
                'ß' => "ss",
                _ => "?",
            });
        }
        return printable.ToString();
    }

    /// <summary>Width in pixels of <paramref name="text"/> drawn at <paramref name="scale"/> (no trailing spacing).</summary>
    public static int MeasureWidth(string text, int scale)
    {
        var length = Printable(text).Length;
        return length == 0 ? 0 : length * Advance(scale) - Spacing * scale;
    }

    /// <summary>The text (<see cref="Printable"/>), shortened with ".." when it would be wider than <paramref name="maxWidth"/> pixels.</summary>
    public static string Fit(string text, int maxWidth, int scale)
    {
        text = Printable(text);
        if (MeasureWidth(text, scale) <= maxWidth) return text;
        var characters = Math.Max(0, (maxWidth + Spacing * scale) / Advance(scale) - 2);
        return text[..Math.Min(characters, text.Length)] + "..";
    }

    /// <summary>The rows of the glyph drawn for <paramref name="character"/>.</summary>
    public static ReadOnlySpan<byte> GlyphOf(char character) => character switch
    {
        >= First and <= Last => Glyphs[character - First],
        Times => TimesGlyph,
        _ => Glyphs['?' - First],
    };

    /// <summary>Draws one line of text with its top-left corner at (x, y); pixels outside the image are skipped.</summary>
    public static void Draw(Image<Rgb24> image, string text, int x, int y, Rgb24 colour, int scale = 1)
    {
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), "scale must be at least 1");
        text = Printable(text);
        image.ProcessPixelRows(accessor =>
        {
            for (var c = 0; c < text.Length; c++)
            {
                var glyph = GlyphOf(text[c]);
                var left = x + c * Advance(scale);
                for (var row = 0; row < GlyphHeight; row++)
                {
                    var bits = glyph[row];
                    if (bits == 0) continue;
                    for (var column = 0; column < GlyphWidth; column++)
                    {
                        if ((bits & (0x10 >> column)) == 0) continue;
                        Pixels.FillRect(accessor, left + column * scale, y + row * scale, scale, scale, colour);
                    }
                }
            }
        });
    }
}
