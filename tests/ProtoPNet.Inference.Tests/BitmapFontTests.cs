using ProtoPNet.Inference.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Inference.Tests;

public sealed class BitmapFontTests
{
    private static readonly Rgb24 White = new(255, 255, 255);
    private static readonly Rgb24 Ink = new(10, 20, 30);

    [Fact]
    public void Every_printable_ascii_character_has_its_own_glyph_within_five_columns()
    {
        var seen = new Dictionary<string, char>();
        for (var c = '!'; c <= '~'; c++)
        {
            var glyph = BitmapFont.GlyphOf(c);
            Assert.Equal(BitmapFont.GlyphHeight, glyph.Length);
            foreach (var row in glyph) Assert.True(row < 32, $"'{c}' uses more than 5 columns");
            var key = Convert.ToHexString(glyph);
            Assert.False(seen.TryGetValue(key, out var twin), $"'{c}' looks exactly like '{twin}'");
            seen[key] = c;
            Assert.Contains(glyph.ToArray(), row => row != 0);
        }
        Assert.All(BitmapFont.GlyphOf(' ').ToArray(), row => Assert.Equal(0, row));
        Assert.Equal(BitmapFont.GlyphOf('?').ToArray(), BitmapFont.GlyphOf('\u00e9').ToArray());
    }

    [Fact]
    public void Text_is_drawn_scaled_inside_its_measured_width_and_clipped_at_the_edges()
    {
        using var image = new Image<Rgb24>(100, 40, White);
        BitmapFont.Draw(image, "Hi", 3, 5, Ink, scale: 2);
        var inked = new List<(int X, int Y)>();
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                if (image[x, y].Equals(Ink)) inked.Add((x, y));
            }
        }
        // 'H' at scale 2: its left column is two pixels wide and 14 tall (rows 0 to 6 of the glyph).
        Assert.Equal(3, inked.Min(p => p.X));
        Assert.Equal(5, inked.Min(p => p.Y));
        Assert.Equal(5 + 7 * 2 - 1, inked.Max(p => p.Y));
        Assert.True(inked.Max(p => p.X) < 3 + BitmapFont.MeasureWidth("Hi", 2));
        // 'H' has 17 lit cells and 'i' 9; at scale 2 each is a 2 x 2 square.
        Assert.Equal((17 + 9) * 4, inked.Count);

        // Drawing past the image's edges is clipped, not an error.
        BitmapFont.Draw(image, "overflowing text", 90, 35, Ink, scale: 3);
        BitmapFont.Draw(image, "x", -10, -10, Ink, scale: 3);
    }

    [Fact]
    public void Fit_shortens_long_text_to_the_width()
    {
        Assert.Equal("short", BitmapFont.Fit("short", 100, 1));
        var fitted = BitmapFont.Fit("a rather long class label", 60, 1);
        Assert.EndsWith("..", fitted);
        Assert.True(BitmapFont.MeasureWidth(fitted, 1) <= 60);
    }

    [Fact]
    public void Accented_letters_are_drawn_without_their_accents_and_other_characters_as_one_question_mark()
    {
        Assert.Equal("Sandale (Riemchen) fur Damen", BitmapFont.Printable("Sandale (Riemchen) f\u00fcr Damen"));
        Assert.Equal("Chemise a manches", BitmapFont.Printable("Chemise \u00e0 manches"));
        Assert.Equal("Strasse", BitmapFont.Printable("Stra\u00dfe"));
        Assert.Equal("? cat", BitmapFont.Printable("\U0001F600 cat"));          // one emoji, two UTF-16 units: one '?'
        Assert.Equal("2 \u00D7 3", BitmapFont.Printable("2 \u00D7 3"));
        const string ascii = "T-shirt/top";
        Assert.Same(ascii, BitmapFont.Printable(ascii));

        // Drawn, measured and fitted as printed.
        using var accented = new Image<Rgb24>(60, 10, White);
        using var plain = new Image<Rgb24>(60, 10, White);
        BitmapFont.Draw(accented, "f\u00fcr", 1, 1, Ink);
        BitmapFont.Draw(plain, "fur", 1, 1, Ink);
        Assert.True(accented.DangerousTryGetSinglePixelMemory(out var a));
        Assert.True(plain.DangerousTryGetSinglePixelMemory(out var b));
        Assert.Equal(b.ToArray(), a.ToArray());
        Assert.Equal(BitmapFont.MeasureWidth("fur", 2), BitmapFont.MeasureWidth("f\u00fcr", 2));
        Assert.Equal("Stras..", BitmapFont.Fit("Stra\u00dfenschuh", BitmapFont.MeasureWidth("Stras..", 1), 1));
    }
}
