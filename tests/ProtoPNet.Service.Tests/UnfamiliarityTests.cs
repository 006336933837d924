using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// Unfamiliar images (issue 16) through the real HTTP pipeline, on the real trainer's smoke bundle, whose model.json
/// carries the threshold the trainer calibrated on held-out training images: every answer has the measure, noise is
/// flagged, a prototype's own training image is not, and a bundle without a calibration still serves with the measure
/// and <c>unfamiliar: null</c>.
/// </summary>
[Collection(BundlesCollection.Name)]
public class UnfamiliarityTests(TrainerBundles bundles)
{
    private const string Measure = "negative-max-similarity";

    private HttpClient Client => bundles.Service.CreateClient();

    /// <summary>Uniform RGB noise, 32 x 32 like the smoke model's input: looks like none of its prototypes.</summary>
    private static byte[] Noise(int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(32, 32);
        var bytes = new byte[3];
        for (var y = 0; y < 32; y++)
        for (var x = 0; x < 32; x++)
        {
            random.NextBytes(bytes);
            image[x, y] = new Rgb24(bytes[0], bytes[1], bytes[2]);
        }
        return Http.Encode(image, new PngEncoder());
    }

    /// <summary>The training image prototype 0 was pushed onto: one of its cells is the prototype, the most familiar part there is.</summary>
    private byte[] Familiar => Http.BundleImage(bundles.SmokeBundle, 0);

    private double ManifestThreshold(string bundle) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(bundle, "model.json")))!["unfamiliarity"]!["threshold"]!.GetValue<double>();

    [Fact]
    public async Task ClassifyAnswersHowUnfamiliarTheImageIsAgainstTheBundlesThreshold()
    {
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?topPrototypes=8", Http.Image(Familiar)));

        Assert.False(body.GetProperty("unfamiliar").GetBoolean());
        var unfamiliarity = body.GetProperty("unfamiliarity");
        Assert.Equal(Measure, unfamiliarity.GetProperty("measure").GetString());
        Assert.Equal(ManifestThreshold(bundles.SmokeBundle), unfamiliarity.GetProperty("threshold").GetDouble());
        var calibration = unfamiliarity.GetProperty("calibration");
        Assert.Equal(0.01, calibration.GetProperty("targetShare").GetDouble());
        Assert.Equal("train-holdout", calibration.GetProperty("split").GetString());
        Assert.Equal(400, calibration.GetProperty("size").GetInt32());
        // The measure is minus the best similarity of any prototype: all 8 prototypes are explained here.
        var similarities = body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray()
            .Select(p => p.GetProperty("similarity").GetDouble()).ToArray();
        Assert.Equal(8, similarities.Length);
        Assert.Equal(-similarities.Max(), unfamiliarity.GetProperty("score").GetDouble(), 1e-6);
        // Prototype 0 equals a cell of this very image: distance ~0, log similarity ~ln(1/epsilon) = 9.2.
        Assert.True(unfamiliarity.GetProperty("score").GetDouble() < -8, unfamiliarity.ToString());

        var preprocessing = body.GetProperty("preprocessing");
        Assert.Equal("rgb", preprocessing.GetProperty("colorSpace").GetString());
        Assert.Equal(32, preprocessing.GetProperty("width").GetInt32());
        Assert.Equal("stretch", preprocessing.GetProperty("resize").GetString());
    }

    /// <summary>
    /// The flag is "score above the threshold", as the trainer calibrates it: its threshold is a held-out image's own
    /// score (the one just below the first image it flags), so an image scoring exactly the threshold is familiar, and
    /// the same image against a threshold one step lower is not.
    /// </summary>
    [Fact]
    public async Task AnImageScoringExactlyTheThresholdIsNotFlagged()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 5, 40, 40);
        var score = (await Http.JsonAsync(await Client.PostAsync("/classify", Http.Image(image)))).GetProperty("unfamiliarity").GetProperty("score").GetDouble();
        var root = bundles.NewRoot(
            (bundles.SmokeBundle, "at", dir => TrainerBundles.EditManifest(dir, m => m["unfamiliarity"]!["threshold"] = score)),
            (bundles.SmokeBundle, "below", dir => TrainerBundles.EditManifest(dir, m => m["unfamiliarity"]!["threshold"] = Math.BitDecrement(score))));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:DefaultModel", "at"));
        var client = factory.CreateClient();

        var at = await Http.JsonAsync(await client.PostAsync("/classify?model=at", Http.Image(image)));
        Assert.Equal(score, at.GetProperty("unfamiliarity").GetProperty("score").GetDouble());
        Assert.Equal(score, at.GetProperty("unfamiliarity").GetProperty("threshold").GetDouble());
        Assert.False(at.GetProperty("unfamiliar").GetBoolean());
        var below = await Http.JsonAsync(await client.PostAsync("/classify?model=below", Http.Image(image)));
        Assert.Equal(score, below.GetProperty("unfamiliarity").GetProperty("score").GetDouble());
        Assert.True(below.GetProperty("unfamiliar").GetBoolean());
    }

    [Fact]
    public async Task NoiseIsFlaggedInABatchAndEachResultCarriesTheFlag()
    {
        var files = Enumerable.Range(1, 8).Select(seed => ("image", Noise(seed), "image/png")).Append(("image", Familiar, "image/png")).ToArray();
        var body = await Http.JsonAsync(await Client.PostAsync("/classify/batch", Http.Multipart(files)));

        var results = body.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(9, results.Length);
        var flags = results.Select(r => r.GetProperty("unfamiliar").GetBoolean()).ToArray();
        Assert.True(flags[..8].Count(f => f) >= 7, $"noise flagged: {string.Join(", ", flags[..8])}");
        Assert.False(flags[8]);
        var threshold = ManifestThreshold(bundles.SmokeBundle);
        foreach (var (result, flag) in results.Zip(flags))
        {
            Assert.Equal(flag, result.GetProperty("unfamiliarity").GetProperty("score").GetDouble() > threshold);
        }
    }

    [Fact]
    public async Task TheCardOfAnUnfamiliarImageCarriesTheNotice()
    {
        var (flagged, noise) = await FirstFlaggedNoiseAsync(Client);
        Assert.True(flagged, "no noise image was flagged");
        using var familiar = await CardAsync(Client, Familiar);
        using var unfamiliar = await CardAsync(Client, noise);

        Assert.Equal(ExplanationCard.HeightFor(3), familiar.Height);
        Assert.Equal(ExplanationCard.HeightFor(3, notice: true), unfamiliar.Height);
        // The notice band sits under the header: its dark edge and light ground, where the familiar card has the page.
        const int bandTop = 84;
        Assert.Equal(new Rgb24(138, 58, 0), unfamiliar[18, bandTop + 20]);
        Assert.Equal(new Rgb24(255, 236, 204), unfamiliar[700, bandTop + 2]);
        Assert.Equal(new Rgb24(255, 255, 255), familiar[700, bandTop + 2]);
        // Both lines of its text are written in the band's ink (the second line, 24 pixels below the first, too).
        int InkIn(int lineTop) => Enumerable.Range(lineTop, 16).Sum(y => Enumerable.Range(32, 760 - 48).Count(x => unfamiliar[x, y] == new Rgb24(138, 58, 0)));
        Assert.True(InkIn(bandTop + 8) > 100, $"the notice's first line has {InkIn(bandTop + 8)} ink pixels");
        Assert.True(InkIn(bandTop + 32) > 100, $"the notice's second line has {InkIn(bandTop + 32)} ink pixels");
    }

    [Fact]
    public async Task V2InferAnswersTheScoreAndTheFlagAsOutputs()
    {
        var metadata = await Http.JsonAsync(await Client.GetAsync("/v2/models/smoke"));
        var declared = metadata.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!,
            o => (o.GetProperty("datatype").GetString(), string.Join(",", o.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()))));
        Assert.Equal(("FP32", "-1"), declared["unfamiliarity"]);
        Assert.Equal(("BOOL", "-1"), declared["unfamiliar"]);

        // Row 0: a flat mid-grey image (nothing like the prototypes' patterns); row 1: a prototype's own training image.
        var rows = new float[2 * 3 * 32 * 32];
        Array.Fill(rows, 0.5f, 0, 3 * 32 * 32);
        using (var source = Image.Load<Rgb24>(Familiar))
        {
            for (var y = 0; y < 32; y++)
            for (var x = 0; x < 32; x++)
            {
                var p = source[x, y];
                var at = 3 * 32 * 32 + y * 32 + x;
                (rows[at], rows[at + 1024], rows[at + 2048]) = (p.R / 255f, p.G / 255f, p.B / 255f);
            }
        }
        var request = JsonSerializer.Serialize(new { inputs = new[] { new { name = "image", shape = new[] { 2, 3, 32, 32 }, datatype = "FP32", data = rows } } });
        var body = await Http.JsonAsync(await Client.PostAsync("/v2/models/smoke/infer", new StringContent(request, Encoding.UTF8, "application/json")));

        var outputs = body.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!);
        Assert.Equal(["logits", "similarities", "similarity_maps", "unfamiliar", "unfamiliarity"], outputs.Keys.Order());
        var flags = outputs["unfamiliar"].GetProperty("data").EnumerateArray().Select(v => v.GetBoolean()).ToArray();
        Assert.Equal("BOOL", outputs["unfamiliar"].GetProperty("datatype").GetString());
        Assert.Equal([true, false], flags);
        var scores = outputs["unfamiliarity"].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        var similarities = outputs["similarities"].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(-similarities[..8].Max(), scores[0]);
        Assert.Equal(-similarities[8..].Max(), scores[1]);
    }

    [Fact]
    public async Task ABundleWithoutCalibrationServesTheMeasureAndLeavesTheFlagNull()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "plain", dir => TrainerBundles.EditManifest(dir, m => m.AsObject().Remove("unfamiliarity"))));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:DefaultModel", "plain"));
        var client = factory.CreateClient();

        var body = await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(Noise(1))));
        Assert.Equal(JsonValueKind.Null, body.GetProperty("unfamiliar").ValueKind);
        var unfamiliarity = body.GetProperty("unfamiliarity");
        Assert.Equal(Measure, unfamiliarity.GetProperty("measure").GetString());
        Assert.Equal(JsonValueKind.Number, unfamiliarity.GetProperty("score").ValueKind);
        Assert.Equal(JsonValueKind.Null, unfamiliarity.GetProperty("threshold").ValueKind);
        Assert.Equal(JsonValueKind.Null, unfamiliarity.GetProperty("calibration").ValueKind);

        // No notice on the card without a threshold to pass.
        using var card = await CardAsync(client, Noise(1));
        Assert.Equal(ExplanationCard.HeightFor(3), card.Height);

        // v2: the score is an output, the flag is not.
        var metadata = await Http.JsonAsync(await client.GetAsync("/v2/models/plain"));
        var names = metadata.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()).ToArray();
        Assert.Contains("unfamiliarity", names);
        Assert.DoesNotContain("unfamiliar", names);
        var zeros = "[" + string.Join(",", Enumerable.Repeat("0", 3 * 32 * 32)) + "]";
        var asked = $$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{zeros}}}],"outputs":[{"name":"unfamiliar"}]}""";
        var refused = await client.PostAsync("/v2/models/plain/infer", new StringContent(asked, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("calibrated unfamiliarity threshold", await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ABundleWhoseMeasureTheServiceDoesNotComputeIsRefused()
    {
        var root = bundles.NewRoot(
            (bundles.SmokeBundle, "good", null),
            (bundles.SmokeBundle, "other-measure", dir => TrainerBundles.EditManifest(dir, m => m["unfamiliarity"]!["measure"] = "energy")));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:DefaultModel", "good"));

        var models = await Http.JsonAsync(await factory.CreateClient().GetAsync("/models"));
        var refused = models.GetProperty("refused").EnumerateArray().Single();
        Assert.Contains("unfamiliarity.measure 'energy'", refused.GetProperty("reason").GetString());
        Assert.Equal(["good"], models.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("name").GetString()));
    }

    private static async Task<(bool Flagged, byte[] Image)> FirstFlaggedNoiseAsync(HttpClient client)
    {
        for (var seed = 1; seed <= 8; seed++)
        {
            var noise = Noise(seed);
            var body = await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(noise)));
            if (body.GetProperty("unfamiliar").GetBoolean()) return (true, noise);
        }
        return (false, []);
    }

    private static async Task<Image<Rgb24>> CardAsync(HttpClient client, byte[] image)
    {
        var response = await client.PostAsync("/classify/card?topPrototypes=3", Http.Image(image));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
    }
}
