using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// A bundle's contrast step (<c>input.contrast: "auto"</c>, issue 16) through the real HTTP pipeline, on the trainer's
/// smoke bundle with the step declared: the negative of an image (what a light-ground photo is to a dark-ground data set)
/// gets the answer the image gets, and the answer says which of the two was inverted; without the step it does not.
/// </summary>
[Collection(BundlesCollection.Name)]
public class ContrastTests(TrainerBundles bundles)
{
    private static byte[] Negative(byte[] png)
    {
        using var image = Image.Load<Rgb24>(png);
        image.Mutate(context => context.Invert());
        return Http.Encode(image, new PngEncoder());
    }

    private static double[] Probabilities(JsonElement body) =>
        body.GetProperty("topClasses").EnumerateArray().OrderBy(c => c.GetProperty("classIndex").GetInt32())
            .Select(c => c.GetProperty("probability").GetDouble()).ToArray();

    [Fact]
    public async Task WithTheContrastStepANegativeIsAnsweredAsTheImageIsAndSaysItWasInverted()
    {
        var root = bundles.NewRoot(
            (bundles.SmokeBundle, "auto", dir => TrainerBundles.EditManifest(dir, m => m["input"]!["contrast"] = "auto")),
            (bundles.SmokeBundle, "plain", dir => TrainerBundles.EditManifest(dir, m => m["input"]!["contrast"] = "none")));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:DefaultModel", "auto"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var negative = Negative(image);

        async Task<JsonElement> Classify(string model, byte[] png) =>
            await Http.JsonAsync(await client.PostAsync($"/classify?model={model}&topClasses=4", Http.Image(png)));

        var original = await Classify("auto", image);
        var inverted = await Classify("auto", negative);
        var flags = new[] { original, inverted }.Select(b => b.GetProperty("preprocessing").GetProperty("inverted").GetBoolean()).ToArray();
        Assert.Single(flags, true);   // exactly one of the pair has a light ground
        Assert.All(new[] { original, inverted }, b => Assert.Equal("auto", b.GetProperty("preprocessing").GetProperty("contrast").GetString()));
        Assert.Equal(original.GetProperty("prediction").GetProperty("classIndex").GetInt32(), inverted.GetProperty("prediction").GetProperty("classIndex").GetInt32());
        // 1 - (255 - v) / 255 and v / 255 differ in the last float bit at most: the answers are equal to rounding.
        var expected = Probabilities(original);
        var actual = Probabilities(inverted);
        for (var k = 0; k < expected.Length; k++) Assert.Equal(expected[k], actual[k], 1e-4);

        // Without the step the network sees the negative as it is, and says nothing was inverted.
        var plainOriginal = await Classify("plain", image);
        var plainNegative = await Classify("plain", negative);
        Assert.Equal("none", plainNegative.GetProperty("preprocessing").GetProperty("contrast").GetString());
        Assert.Equal(JsonValueKind.Null, plainNegative.GetProperty("preprocessing").GetProperty("inverted").ValueKind);
        var largestChange = Probabilities(plainOriginal).Zip(Probabilities(plainNegative), (a, b) => Math.Abs(a - b)).Max();
        Assert.True(largestChange > 0.01, $"the negative changed no probability by more than {largestChange}");
    }

    /// <summary>
    /// In a batch each result says whether its own image was inverted, also after an image that could not be decoded
    /// (and so holds no row of the network's input): the flag follows the image, not its place in the upload.
    /// </summary>
    [Fact]
    public async Task InABatchEachResultSaysWhetherItsOwnImageWasInverted()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "auto", dir => TrainerBundles.EditManifest(dir, m => m["input"]!["contrast"] = "auto")));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:DefaultModel", "auto"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var negative = Negative(image);
        async Task<bool> InvertedAloneAsync(byte[] png) => (await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(png))))
            .GetProperty("preprocessing").GetProperty("inverted").GetBoolean();
        var (imageInverted, negativeInverted) = (await InvertedAloneAsync(image), await InvertedAloneAsync(negative));
        Assert.NotEqual(imageInverted, negativeInverted);

        var body = await Http.JsonAsync(await client.PostAsync("/classify/batch", Http.Multipart(("image", "not an image"u8.ToArray(), "image/png"),
            ("image", image, "image/png"), ("image", negative, "image/png"), ("image", image, "image/png"))));
        var results = body.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(4, results.Length);
        Assert.Equal(400, results[0].GetProperty("status").GetInt32());
        Assert.Equal([imageInverted, negativeInverted, imageInverted],
            results[1..].Select(r => r.GetProperty("preprocessing").GetProperty("inverted").GetBoolean()));
    }

    [Fact]
    public async Task ABundleWithAnUnknownContrastStepIsRefused()
    {
        var root = bundles.NewRoot(
            (bundles.SmokeBundle, "good", null),
            (bundles.SmokeBundle, "sharpened", dir => TrainerBundles.EditManifest(dir, m => m["input"]!["contrast"] = "sharpen")));
        await using var factory = ServiceFactory.ForRoot(root, ("Models:DefaultModel", "good"));

        var models = await Http.JsonAsync(await factory.CreateClient().GetAsync("/models"));
        var refused = models.GetProperty("refused").EnumerateArray().Single();
        Assert.Contains("input.contrast 'sharpen'", refused.GetProperty("reason").GetString());
    }
}
