using System.Net;
using System.Text;
using System.Text.Json;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// A bundle whose input is wider than tall (MODEL_BUNDLE.md allows input.height != input.width), made by the real
/// trainer: every place that takes the input's height and width must take each for itself. With square bundles only,
/// a height read for a width anywhere passed every test.
/// </summary>
[Collection(BundlesCollection.Name)]
public class NonSquareInputTests(TrainerBundles bundles)
{
    private static readonly (int Width, int Height) Input = TrainerBundles.WideInput;

    private HttpClient Client => bundles.WideService.CreateClient();

    [Fact]
    public async Task TheModelsInputIsListedAsHeightThenWidth()
    {
        var model = await Http.JsonAsync(await Client.GetAsync("/models/wide"));
        var input = model.GetProperty("input");
        Assert.Equal((Input.Height, Input.Width), (input.GetProperty("height").GetInt32(), input.GetProperty("width").GetInt32()));
        // The Open Inference Protocol's tensor is [N, C, H, W], as the graph's.
        var metadata = await Http.JsonAsync(await Client.GetAsync("/v2/models/wide"));
        Assert.Equal([-1L, 3, Input.Height, Input.Width],
            Assert.Single(metadata.GetProperty("inputs").EnumerateArray()).GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
    }

    [Fact]
    public async Task OpenInferenceTakesTheInputAsHeightThenWidthAndRefusesItTurned()
    {
        var values = Enumerable.Range(0, 3 * Input.Height * Input.Width).Select(i => i % 17 / 16f).ToArray();
        string Request(int first, int second) =>
            $$"""{"inputs":[{"name":"image","shape":[1,3,{{first}},{{second}}],"datatype":"FP32","data":{{JsonSerializer.Serialize(values)}}}],"outputs":[{"name":"logits"}]}""";

        var answer = await Http.JsonAsync(await Client.PostAsync("/v2/models/wide/infer",
            new StringContent(Request(Input.Height, Input.Width), Encoding.UTF8, "application/json")));
        var logits = Assert.Single(answer.GetProperty("outputs").EnumerateArray());
        Assert.Equal([1, 4], logits.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        // The values are the graph's on that tensor, read as [1, 3, 24, 40].
        using var bundle = ServiceFactory.LoadAsServed(bundles.WideBundle);
        using var outputs = bundle.Session.Run(values, 1);
        Assert.Equal(outputs.LogitsOf(0).ToArray(), logits.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()));

        var turned = await Client.PostAsync("/v2/models/wide/infer", new StringContent(Request(Input.Width, Input.Height), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, turned.StatusCode);
        Assert.Contains($"[N, 3, {Input.Height}, {Input.Width}]", await turned.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(96, 64)]   // wider than tall, as the input
    [InlineData(50, 90)]   // taller than wide: the stretch goes the other way on each axis
    public async Task BoxesFollowThePercentileRuleOnEachAxis(int width, int height)
    {
        var image = Http.BundleImage(bundles.WideBundle, 1, width, height);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?topPrototypes=8", Http.Image(image)));
        Assert.Equal((width, height), (body.GetProperty("image").GetProperty("width").GetInt32(), body.GetProperty("image").GetProperty("height").GetInt32()));

        using var bundle = ServiceFactory.LoadAsServed(bundles.WideBundle);
        using var outputs = bundle.Session.Run(ServiceFactory.InputOf(bundle, image), 1);
        Assert.Equal((Input.Height / 4, Input.Width / 4), (outputs.MapHeight, outputs.MapWidth));   // the small CNN pools twice
        ClassifyTests.AssertBoxesFollowThePercentileRule(body, bundle, outputs, width, height);
    }

    /// <summary>
    /// A heatmap of a model whose feature map is wider than tall is the prototype's map drawn over the upload with the
    /// map's own height and width (taken for each other, the map is drawn scrambled, and no other answer shows it).
    /// </summary>
    [Fact]
    public async Task AHeatmapIsTheMapDrawnWithItsOwnHeightAndWidth()
    {
        var image = Http.BundleImage(bundles.WideBundle, 1, 80, 48);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?heatmaps=png&topPrototypes=2", Http.Image(image)));

        using var bundle = ServiceFactory.LoadAsServed(bundles.WideBundle);
        using var outputs = bundle.Session.Run(ServiceFactory.InputOf(bundle, image), 1);
        Assert.True(outputs.MapWidth > outputs.MapHeight, $"a {outputs.MapHeight} x {outputs.MapWidth} map");
        using var upload = Image.Load<Rgb24>(image);
        var prototypes = body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(2, prototypes.Length);
        foreach (var prototype in prototypes)
        {
            var index = prototype.GetProperty("prototypeIndex").GetInt32();
            using var expected = HeatmapRenderer.Render(upload, outputs.MapOf(0, index), outputs.MapHeight, outputs.MapWidth);
            var uri = prototype.GetProperty("heatmap").GetString()!;
            using var heatmap = Image.Load<Rgb24>(Convert.FromBase64String(uri[HeatmapRenderer.PngDataUriPrefix.Length..]));
            Assert.Equal((expected.Width, expected.Height), (heatmap.Width, heatmap.Height));
            for (var y = 0; y < heatmap.Height; y++)
            {
                for (var x = 0; x < heatmap.Width; x++)
                {
                    var (shown, drawn) = (heatmap[x, y], expected[x, y]);
                    var difference = Math.Max(Math.Abs(shown.R - drawn.R), Math.Max(Math.Abs(shown.G - drawn.G), Math.Abs(shown.B - drawn.B)));
                    Assert.True(difference <= 1, $"prototype {index} at ({x}, {y}): the answer shows {shown}, its map draws {drawn}");
                }
            }
        }
    }

    /// <summary>The card lays out the upload and the prototypes' pictures, none of them square: it is drawn, not a 500.</summary>
    [Fact]
    public async Task TheCardOfAWideModelIsDrawn()
    {
        var answer = await Client.PostAsync("/classify/card?topPrototypes=2", Http.Image(Http.BundleImage(bundles.WideBundle, 0, 120, 72)));
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        using var card = Image.Load<Rgb24>(await answer.Content.ReadAsByteArrayAsync());
        Assert.True(card.Width > 120 && card.Height > 72, $"a card of {card.Width}x{card.Height}");
    }
}
