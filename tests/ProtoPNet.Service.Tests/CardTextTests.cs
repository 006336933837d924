using System.Text.Json.Nodes;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>The card's text for class names a font of printable ASCII must shorten or spell differently.</summary>
[Collection(BundlesCollection.Name)]
public class CardTextTests(TrainerBundles bundles)
{
    /// <summary>
    /// A long class name is shortened in the title, never the probability after it; an accented one is drawn without its
    /// accents; a card of no prototype and no class has no empty "Top classes" heading.
    /// </summary>
    [Fact]
    public async Task ALongAccentedLabelKeepsItsProbabilityAndACardOfNothingHasNoEmptyHeading()
    {
        static string LongName(int index) => $"Sandale f\u00fcr Damen, eine Klasse mit einem au\u00dfergew\u00f6hnlich langen Namen {index}";
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", bundle => TrainerBundles.EditManifest(bundle, manifest =>
        {
            foreach (var entry in manifest["classes"]!.AsArray()) entry!["name"] = LongName(entry["index"]!.GetValue<int>());
        })));
        await using var factory = ServiceFactory.ForRoot(root);
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 1);

        var answer = await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=0&topClasses=0", Http.Image(image)));
        var prediction = answer.GetProperty("prediction");
        var label = prediction.GetProperty("label").GetString()!;
        Assert.Equal(LongName(prediction.GetProperty("classIndex").GetInt32()), label);   // the JSON keeps the name as it is
        var probability = "  " + ExplanationCard.Percent(prediction.GetProperty("probability").GetDouble());

        var response = await client.PostAsync("/classify/card?topPrototypes=0&topClasses=0", Http.Image(image));
        using var card = Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(ExplanationCard.HeightFor(0), card.Height);

        // The title as it should read, drawn alone: the label shortened to leave room for the probability, without accents.
        var shortened = BitmapFont.Fit(label, ExplanationCard.Width - 32 - BitmapFont.MeasureWidth(probability, 3), 3);
        Assert.StartsWith("Sandale fur Damen", shortened);
        Assert.EndsWith("..", shortened);
        using var expected = new Image<Rgb24>(ExplanationCard.Width, 48, new Rgb24(255, 255, 255));
        BitmapFont.Draw(expected, shortened + probability, 16, 16, new Rgb24(0, 0, 0), 3);
        for (var y = 16; y < 40; y++)
        {
            for (var x = 0; x < ExplanationCard.Width; x++)
            {
                Assert.True(IsInk(expected[x, y]) == IsInk(card[x, y]), $"the title differs at ({x}, {y})");
            }
        }

        // Right of the upload, where the top classes go: nothing at all.
        for (var y = 84; y < 84 + 240; y++)
        {
            for (var x = 16 + 240 + 24; x < ExplanationCard.Width - 16; x++) Assert.False(IsInk(card[x, y]), $"ink at ({x}, {y})");
        }
    }

    private static bool IsInk(Rgb24 pixel) => pixel.R < 200 || pixel.G < 200 || pixel.B < 200;
}
