using System.Globalization;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// A prototype row of the card says what the JSON answer says: "looks like" is the prototype's patch, "training image"
/// the picture it was projected onto, and the sum reads similarity x weight = points with the answer's numbers.
/// </summary>
[Collection(BundlesCollection.Name)]
public class CardRowTests(TrainerBundles bundles)
{
    // The card's layout (ExplanationCard): the first row starts 344 pixels down, its pictures 22 below that, 96 pixels
    // square and 12 apart from x = 16; the sum's three lines stand 20 pixels right of the third picture, 26 apart.
    private const int PicturesTop = 344 + 22, PictureSize = 96, PatchLeft = 16 + 96 + 12, SourceLeft = PatchLeft + 96 + 12;
    private const int TextLeft = SourceLeft + PictureSize + 20, TextTop = PicturesTop + 8;

    [Fact]
    public async Task TheFirstRowShowsThePrototypesPicturesAndTheAnswersSum()
    {
        var client = bundles.Service.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        var answer = await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=1", Http.Image(image)));
        var row = answer.GetProperty("explanation").GetProperty("prototypes")[0];
        var response = await client.PostAsync("/classify/card?topPrototypes=1", Http.Image(image));
        using var card = Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
        var folder = Path.Combine(bundles.SmokeBundle, "prototypes", row.GetProperty("prototypeIndex").GetInt32().ToString(CultureInfo.InvariantCulture));

        using var patch = Image.Load<Rgb24>(Path.Combine(folder, "patch.png"));
        using var source = Image.Load<Rgb24>(Path.Combine(folder, "source.png"));
        Assert.True(ShownShare(card, PatchLeft, patch) > 0.9, $"the 'looks like' picture is not {folder}/patch.png");
        // The source's box is stroked over it, so a few of its pixels are covered.
        Assert.True(ShownShare(card, SourceLeft, source) > 0.75, $"the 'training image' picture is not {folder}/source.png");
        Assert.True(ShownShare(card, SourceLeft, patch) < 0.5, "the 'training image' picture is the patch");

        static string Number(double value) => (Math.Round(value, 2) == 0 ? 0 : value).ToString("0.00", CultureInfo.InvariantCulture);
        using var expected = new Image<Rgb24>(ExplanationCard.Width, card.Height, new Rgb24(255, 255, 255));
        var ink = new Rgb24(0, 0, 0);
        BitmapFont.Draw(expected, $"similarity {Number(row.GetProperty("similarity").GetDouble())}", TextLeft, TextTop, ink, 2);
        BitmapFont.Draw(expected, $"\u00D7 weight {row.GetProperty("weight").GetDouble().ToString("0.000", CultureInfo.InvariantCulture)}",
            TextLeft, TextTop + 26, ink, 2);
        BitmapFont.Draw(expected, $"= {Number(row.GetProperty("contribution").GetDouble())} points", TextLeft, TextTop + 52, ink, 2);
        for (var y = TextTop - 4; y < TextTop + 78; y++)
        {
            for (var x = TextLeft; x < ExplanationCard.Width - 16; x++)
            {
                Assert.True(IsInk(expected[x, y]) == IsInk(card[x, y]), $"the row's sum differs at ({x}, {y})");
            }
        }
    }

    /// <summary>
    /// The top classes' bars: the predicted class's is blue and the others' grey, also when another class is explained.
    /// (The list starts 110 pixels down at x = 280, a row every 34 pixels, each bar 19 below its row's top.)
    /// </summary>
    [Fact]
    public async Task ThePredictedClassHasTheBlueBarWhicheverClassIsExplained()
    {
        var client = bundles.Service.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        var answer = await Http.JsonAsync(await client.PostAsync("/classify?topClasses=4", Http.Image(image)));
        var classes = answer.GetProperty("topClasses").EnumerateArray().Select(c => c.GetProperty("classIndex").GetInt32()).ToArray();
        var explained = classes[1];
        var response = await client.PostAsync($"/classify/card?topClasses=4&explainClass={explained}", Http.Image(image));
        using var card = Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
        Rgb24 BarStart(int row) => card[280, 110 + 34 * row + 19 + 4];
        Assert.Equal(new Rgb24(0, 102, 204), BarStart(0));
        for (var row = 1; row < classes.Length; row++)
        {
            Assert.NotEqual(new Rgb24(0, 102, 204), BarStart(row));
        }
    }

    /// <summary>The share of <paramref name="picture"/>'s pixels that the card shows as they are, scaled into the square at <paramref name="left"/>.</summary>
    private static double ShownShare(Image<Rgb24> card, int left, Image<Rgb24> picture)
    {
        // Fitted into the square, centred, each pixel a block (nearest neighbour when enlarged): its block's centre shows it.
        var scale = Math.Min((double)PictureSize / picture.Width, (double)PictureSize / picture.Height);
        var (width, height) = ((int)Math.Round(picture.Width * scale), (int)Math.Round(picture.Height * scale));
        var (placedX, placedY) = (left + (PictureSize - width) / 2, PicturesTop + (PictureSize - height) / 2);
        var same = 0;
        for (var j = 0; j < picture.Height; j++)
        {
            for (var i = 0; i < picture.Width; i++)
            {
                var shown = card[placedX + (int)((i + 0.5) * width / picture.Width), placedY + (int)((j + 0.5) * height / picture.Height)];
                if (shown == picture[i, j]) same++;
            }
        }
        return (double)same / (picture.Width * picture.Height);
    }

    private static bool IsInk(Rgb24 pixel) => pixel.R < 200 || pixel.G < 200 || pixel.B < 200;
}
