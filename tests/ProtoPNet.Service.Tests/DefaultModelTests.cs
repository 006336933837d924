using System.Net;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// The service as `dotnet run --project src/ProtoPNet.Service` starts it: no Models:Root, so the repository's models/
/// folder, where the committed default model (fashion-mnist) is served.
/// </summary>
[Collection(BundlesCollection.Name)]
public class DefaultModelTests(TrainerBundles bundles)
{
    [Fact]
    public async Task ServesTheRepositoryModelsFolderByDefault()
    {
        var settings = new Dictionary<string, string?> { ["Inference:IntraOpThreads"] = "1" };
        await using var factory = new ServiceFactory(settings);
        var client = factory.CreateClient();
        var modelsFolder = Path.Combine(bundles.RepositoryRoot, "models");
        var published = Directory.Exists(modelsFolder) && Directory.EnumerateFiles(modelsFolder, "model.json", SearchOption.AllDirectories)
            .Any(f => !Path.GetRelativePath(modelsFolder, f).Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.')));

        await factory.Logs.WaitForAsync(m => m.Contains("Loading model bundles from") && m.Contains(modelsFolder));
        // The committed default model is part of the product: `dotnet run` must serve it. (An empty model root is
        // covered by ErrorTests.NoModelReadyIs503WithRetryAfter.)
        Assert.True(published, $"no published bundle under {modelsFolder}: the default model must be committed");
        var ready = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        var body = await Http.JsonAsync(ready);
        Assert.Equal("fashion-mnist", body.GetProperty("defaultModel").GetString());
        // A grey 28x28 picture, as the Fashion-MNIST model takes, classified by the default model.
        using var image = new Image<L8>(28, 28);
        for (var y = 6; y < 22; y++)
        for (var x = 4; x < 24; x++) image[x, y] = new L8(200);
        var answer = await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(Http.Encode(image, new PngEncoder()))));
        Assert.Equal("fashion-mnist", answer.GetProperty("model").GetProperty("name").GetString());
        var model = await Http.JsonAsync(await client.GetAsync("/models/fashion-mnist"));
        Assert.Equal(10, model.GetProperty("classes").GetArrayLength());
        // What a v2 tensor caller must do itself: the contrast step of the bundle's input.
        Assert.Equal("auto", model.GetProperty("input").GetProperty("contrast").GetString());
        Assert.False(model.GetProperty("input").GetProperty("jpegDraft").GetBoolean());
        var explanation = answer.GetProperty("explanation");
        var parts = explanation.GetProperty("prototypes").EnumerateArray().Sum(p => p.GetProperty("contribution").GetDouble());
        Assert.Equal(explanation.GetProperty("logit").GetDouble(), parts + explanation.GetProperty("otherPrototypesContribution").GetDouble(), 1e-3);
    }

    /// <summary>
    /// Blank pictures (a uniform grey at any level, a light wall photographed with a little noise) are not garments:
    /// the contrast step makes them all ground, and the default model flags them unfamiliar. Left grey, they were taken
    /// for a T-shirt with 74-93 % and not flagged.
    /// </summary>
    [Fact]
    public async Task BlankPicturesAreFlaggedUnfamiliarNotTakenForAGarment()
    {
        await using var factory = new ServiceFactory(new Dictionary<string, string?> { ["Inference:IntraOpThreads"] = "1" });
        var client = factory.CreateClient();
        var uploads = new List<(string Name, byte[] Bytes, string Type)>();
        foreach (var level in new byte[] { 30, 60, 100, 160, 200, 230 })
        {
            using var grey = new Image<L8>(28, 28, new L8(level));
            uploads.Add(($"grey {level}", Http.Encode(grey, new PngEncoder()), "image/png"));
        }
        var random = new Random(2);
        using var wall = new Image<Rgb24>(640, 480);
        for (var y = 0; y < 480; y++)
        for (var x = 0; x < 640; x++)
        {
            var v = (byte)(200 + random.Next(-2, 3));
            wall[x, y] = new Rgb24(v, v, v);
        }
        uploads.Add(("wall", Http.Encode(wall, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 90 }), "image/jpeg"));

        foreach (var (name, bytes, type) in uploads)
        {
            var answer = await Http.JsonAsync(await client.PostAsync("/classify", Http.Multipart(("image", bytes, type))));
            Assert.Equal("auto", answer.GetProperty("preprocessing").GetProperty("contrast").GetString());
            Assert.True(answer.GetProperty("unfamiliar").GetBoolean(), $"{name}: {answer.GetProperty("unfamiliarity")}");
        }
    }
}
