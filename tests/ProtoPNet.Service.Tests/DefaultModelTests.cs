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
        Assert.Equal(10, (await Http.JsonAsync(await client.GetAsync("/models/fashion-mnist"))).GetProperty("classes").GetArrayLength());
        var explanation = answer.GetProperty("explanation");
        var parts = explanation.GetProperty("prototypes").EnumerateArray().Sum(p => p.GetProperty("contribution").GetDouble());
        Assert.Equal(explanation.GetProperty("logit").GetDouble(), parts + explanation.GetProperty("otherPrototypesContribution").GetDouble(), 1e-3);
    }
}
