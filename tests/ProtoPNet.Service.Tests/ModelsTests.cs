using System.Net;
using System.Net.Http.Headers;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

[Collection(BundlesCollection.Name)]
public class ModelsTests(TrainerBundles bundles)
{
    private HttpClient Client => bundles.Service.CreateClient();
    private string Version => Path.GetFileName(bundles.SmokeBundle);

    [Fact]
    public async Task ModelsListsEveryLoadedModel()
    {
        var body = await Http.JsonAsync(await Client.GetAsync("/models"));
        Assert.Equal("smoke", body.GetProperty("defaultModel").GetString());
        Assert.False(body.GetProperty("loading").GetBoolean());   // loaded before the host's start ends
        var models = body.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.Equal(["gray", "smoke"], models.Keys.Order().ToArray());
        var smoke = models["smoke"];
        Assert.Equal(Version, smoke.GetProperty("defaultVersion").GetString());
        Assert.Equal(4, smoke.GetProperty("classes").GetArrayLength());
        Assert.Equal(8, smoke.GetProperty("prototypeCount").GetInt32());
        Assert.Equal(32, smoke.GetProperty("input").GetProperty("width").GetInt32());
        Assert.Equal("rgb", smoke.GetProperty("input").GetProperty("colorSpace").GetString());
        Assert.Equal("none", smoke.GetProperty("input").GetProperty("contrast").GetString());
        Assert.True(smoke.GetProperty("training").GetProperty("metrics").TryGetProperty("testAccuracy", out _));
        Assert.Equal("CPUExecutionProvider", smoke.GetProperty("executionProvider").GetString());
        Assert.Equal("gray", models["gray"].GetProperty("input").GetProperty("colorSpace").GetString());
        Assert.Equal(1, models["gray"].GetProperty("input").GetProperty("channels").GetInt32());
    }

    /// <summary>An example's class is not checked at load (MODEL_BUNDLE.md): one past the last class is listed with no label.</summary>
    [Fact]
    public async Task AnExampleOfNoClassIsListedWithoutALabel()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", dir => TrainerBundles.EditManifest(dir, m => m["examples"]![0]!["classIndex"] = 4)));
        await using var factory = ServiceFactory.ForRoot(root);
        var smoke = (await Http.JsonAsync(await factory.CreateClient().GetAsync("/models"))).GetProperty("models")[0];
        var examples = smoke.GetProperty("examples").EnumerateArray().ToArray();
        Assert.Equal((4, System.Text.Json.JsonValueKind.Null), (examples[0].GetProperty("classIndex").GetInt32(), examples[0].GetProperty("label").ValueKind));
        Assert.Equal(System.Text.Json.JsonValueKind.String, examples[1].GetProperty("label").ValueKind);
    }

    [Fact]
    public async Task ModelAndVersionDescribeThemselves()
    {
        var model = await Http.JsonAsync(await Client.GetAsync("/models/smoke"));
        Assert.Equal([Version], model.GetProperty("versions").EnumerateArray().Select(v => v.GetString()!).ToArray());
        var version = await Http.JsonAsync(await Client.GetAsync($"/models/smoke/versions/{Version}"));
        Assert.True(version.GetProperty("isDefaultVersion").GetBoolean());
        Assert.Equal(8, version.GetProperty("featureMapSize").GetProperty("row").GetInt32());
        Assert.Equal(64, version.GetProperty("sha256").GetString()!.Length);
        Assert.Equal($"/models/smoke/versions/{Version}/prototypes", version.GetProperty("prototypesUrl").GetString());
    }

    /// <summary>
    /// The gallery's box of a prototype on its source image (the trainer's, from push) is the box the service draws for
    /// that prototype when that image is uploaded: "this part of that training image" is the same part in both. On a
    /// trained model, as here; an untrained one's distances are so small (1e-3) that ONNX Runtime's float32 sums and
    /// PyTorch's can put a 95th percentile a pixel apart.
    /// </summary>
    [Fact]
    public async Task APrototypesBoxOnItsSourceImageIsTheBoxTheServiceDrawsThere()
    {
        var prototypes = (await Http.JsonAsync(await Client.GetAsync($"/models/smoke/versions/{Version}/prototypes")))
            .GetProperty("prototypes").EnumerateArray().ToArray();
        static (int, int, int, int) BoxOf(System.Text.Json.JsonElement box) => (box.GetProperty("x").GetInt32(),
            box.GetProperty("y").GetInt32(), box.GetProperty("width").GetInt32(), box.GetProperty("height").GetInt32());
        for (var j = 0; j < prototypes.Length; j++)
        {
            var classIndex = prototypes[j].GetProperty("classIndex").GetInt32();
            var answer = await Http.JsonAsync(await Client.PostAsync(
                $"/classify?model=smoke&explainClass={classIndex}&topPrototypes={prototypes.Length}",
                Http.Image(Http.BundleImage(bundles.SmokeBundle, j))));
            var explained = answer.GetProperty("explanation").GetProperty("prototypes").EnumerateArray()
                .Single(p => p.GetProperty("prototypeIndex").GetInt32() == j);
            Assert.Equal(BoxOf(prototypes[j].GetProperty("source").GetProperty("box")), BoxOf(explained.GetProperty("box")));
        }
    }

    [Fact]
    public async Task PrototypesListEveryPrototypeWithWorkingPictureLinks()
    {
        var body = await Http.JsonAsync(await Client.GetAsync($"/models/smoke/versions/{Version}/prototypes"));
        var prototypes = body.GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(8, prototypes.Length);
        var first = prototypes[0];
        Assert.Equal(0, first.GetProperty("classIndex").GetInt32());
        Assert.Equal("train", first.GetProperty("source").GetProperty("split").GetString());
        Assert.True(first.GetProperty("source").GetProperty("box").GetProperty("width").GetInt32() > 0);
        foreach (var kind in new[] { "patch", "source", "activation" })
        {
            var url = first.GetProperty("pictures").GetProperty(kind).GetString()!;
            var response = await Client.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
            using var picture = Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
            Assert.True(picture.Width > 0);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(bundles.SmokeBundle, "prototypes", "0", $"{kind}.png")),
                await response.Content.ReadAsByteArrayAsync());
        }
    }

    [Fact]
    public async Task PrototypePicturesAreCacheableWithAnETag()
    {
        var url = $"/models/smoke/versions/{Version}/prototypes/3/patch.png";
        var response = await Client.GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.CacheControl?.Public);
        Assert.True(response.Headers.CacheControl?.MaxAge >= TimeSpan.FromDays(365));
        Assert.Contains("immutable", response.Headers.CacheControl!.Extensions.Select(e => e.Name));
        var etag = response.Headers.ETag;
        Assert.NotNull(etag);

        var conditional = new HttpRequestMessage(HttpMethod.Get, url);
        conditional.Headers.IfNoneMatch.Add(new EntityTagHeaderValue(etag!.Tag));
        var notModified = await Client.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Empty(await notModified.Content.ReadAsByteArrayAsync());

        var other = await Client.GetAsync($"/models/smoke/versions/{Version}/prototypes/4/patch.png");
        Assert.NotEqual(etag.Tag, other.Headers.ETag?.Tag);
    }

    /// <summary>HEAD wherever GET (RFC 9110): status and headers, no body; not for the training events stream, which would not end.</summary>
    [Fact]
    public async Task EveryGetAnswersHeadWithItsHeadersAndNoBody()
    {
        var picture = $"/models/smoke/versions/{Version}/prototypes/3/patch.png";
        var get = await Client.GetAsync(picture);
        var head = await Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, picture));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(get.Headers.ETag, head.Headers.ETag);
        Assert.Equal("image/png", head.Content.Headers.ContentType?.MediaType);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        foreach (var path in new[] { "/health/live", "/health/ready", "/models", $"/models/smoke/versions/{Version}", "/v2/health/ready", "/metrics" })
        {
            Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path))).StatusCode);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/models/no-such-model"))).StatusCode);
    }

    [Fact]
    public async Task TheResizeAndFilterAreReportedByTheirOwnNamesInModelsAndClassify()
    {
        // model.json may spell them in another case or by an alias; both endpoints report the filter that is applied.
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", bundle => TrainerBundles.EditManifest(bundle, manifest =>
        {
            manifest["input"]!["resize"] = "Stretch";
            manifest["input"]!["interpolation"] = "Linear";
        })));
        await using var factory = ServiceFactory.ForRoot(root);
        var client = factory.CreateClient();
        var input = (await Http.JsonAsync(await client.GetAsync("/models/smoke"))).GetProperty("input");
        Assert.Equal(("stretch", "bilinear"), (input.GetProperty("resize").GetString(), input.GetProperty("interpolation").GetString()));
        var preprocessing = (await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)))))
            .GetProperty("preprocessing");
        Assert.Equal(("stretch", "bilinear"), (preprocessing.GetProperty("resize").GetString(), preprocessing.GetProperty("interpolation").GetString()));
    }

    /// <summary>
    /// A bundle trained by a worker records where its data was on the worker ("/srv/protopnet/data/photos"): answers name
    /// that folder (and a trunk weights file) by its last part, as they name refused folders relative to the model root.
    /// </summary>
    [Fact]
    public async Task TheTrainingMachinesPathsAreNotAnswered()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", bundle =>
        {
            TrainerBundles.EditManifest(bundle, manifest =>
            {
                var config = manifest["training"]!["config"]!;
                config["data"] = "/srv/protopnet/data/photos";
                config["trunk_weights"] = "C:\\models\\resnet18-weights.pt";
                manifest["training"]!["trunkWeights"] = "C:\\models\\resnet18-weights.pt";
            });
            // A key given twice (a model.json may hold one; it is served): still answered, not a 500.
            var manifestFile = Path.Combine(bundle, "model.json");
            File.WriteAllText(manifestFile, File.ReadAllText(manifestFile).Replace("\"trainSize\":", "\"seconds\":1,\"trainSize\":"));
        }));
        await using var factory = ServiceFactory.ForRoot(root);
        var client = factory.CreateClient();
        var version = Path.GetFileName(bundles.SmokeBundle);
        foreach (var url in (string[])["/models", "/models/smoke", $"/models/smoke/versions/{version}"])
        {
            var text = await client.GetStringAsync(url);
            Assert.DoesNotContain("/srv/protopnet", text);
            Assert.DoesNotContain("models\\\\resnet18", text);
            var body = System.Text.Json.JsonDocument.Parse(text).RootElement;
            var model = url == "/models" ? body.GetProperty("models")[0] : body;
            var config = model.GetProperty("training").GetProperty("config");
            Assert.Equal("photos", config.GetProperty("data").GetString());
            Assert.Equal("resnet18-weights.pt", config.GetProperty("trunk_weights").GetString());
            Assert.Equal("resnet18-weights.pt", model.GetProperty("training").GetProperty("trunkWeights").GetString());
            Assert.True(config.GetProperty("epochs").GetInt32() > 0);   // the rest as written
        }
    }

    [Fact]
    public async Task ClassifyLinksPointAtThePrototypePictures()
    {
        var body = await Http.JsonAsync(await Client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
        var prototypes = body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.NotEmpty(prototypes);
        foreach (var prototype in prototypes)
        {
            // Each link serves that prototype's own picture: its patch, and the training image it was projected onto.
            var folder = Path.Combine(bundles.SmokeBundle, "prototypes", prototype.GetProperty("prototypeIndex").GetInt32().ToString());
            foreach (var (link, file) in new[] { ("prototypeImage", "patch.png"), ("prototypeSource", "source.png") })
            {
                var response = await Client.GetAsync(prototype.GetProperty(link).GetString());
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(folder, file)), await response.Content.ReadAsByteArrayAsync());
            }
        }
    }

    [Fact]
    public async Task HealthEndpointsReportLiveAndReady()
    {
        var live = await Http.JsonAsync(await Client.GetAsync("/health/live"));
        Assert.Equal("alive", live.GetProperty("status").GetString());
        var ready = await Http.JsonAsync(await Client.GetAsync("/health/ready"));
        Assert.Equal("ready", ready.GetProperty("status").GetString());
        Assert.Equal("CPUExecutionProvider", ready.GetProperty("executionProvider").GetString());
        Assert.Contains($"smoke@{Version}", ready.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
    }

    /// <summary>
    /// A bundle's pictures are served only as the regular files they are in it: one that is a link (a link may lead
    /// out of the bundle: one to a system file was served), in a linked folder, or a named pipe (its read would wait
    /// for good) is 404, and the card draws it as missing.
    /// </summary>
    [Fact]
    public async Task PicturesThatAreLinksOrPipesAreNotServed()
    {
        var secret = Path.Combine(bundles.WorkDirectory, "secret-" + Guid.NewGuid().ToString("N")[..8] + ".png");
        File.WriteAllText(secret, "not for clients");
        var root = bundles.NewRoot((bundles.SmokeBundle, "linked", dir =>
        {
            var source = Path.Combine(dir, "prototypes", "0", "source.png");
            File.Delete(source);
            File.CreateSymbolicLink(source, secret);
            var folder = Path.Combine(dir, "prototypes", "1");
            Directory.Move(folder, folder + "-real");
            Directory.CreateSymbolicLink(folder, folder + "-real");
            var patch = Path.Combine(dir, "prototypes", "2", "patch.png");
            File.Delete(patch);
            using var mkfifo = System.Diagnostics.Process.Start("mkfifo", [patch]);
            mkfifo.WaitForExit();
        }));
        await using var factory = ServiceFactory.ForRoot(root);
        var client = factory.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(30);
        foreach (var picture in new[] { "0/source.png", "1/patch.png", "2/patch.png" })
        {
            var response = await client.GetAsync($"/models/linked/versions/{Version}/prototypes/{picture}");
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{picture}: {response.StatusCode}");
            Assert.DoesNotContain("not for clients", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/models/linked/versions/{Version}/prototypes/3/patch.png")).StatusCode);
        // The operator is told: the bundle declares those pictures, and only its folder can be mended.
        await factory.Logs.WaitForAsync(line => line.Contains("prototypes/2/patch.png", StringComparison.Ordinal) && line.Contains("cannot be served", StringComparison.Ordinal));
        Assert.Contains(factory.Logs.Entries, e => e.Level == Microsoft.Extensions.Logging.LogLevel.Warning && e.Message.Contains("prototypes/0/source.png", StringComparison.Ordinal));
        var card = await client.PostAsync("/classify/card?model=linked&topPrototypes=5", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        Assert.Equal(HttpStatusCode.OK, card.StatusCode);
    }
}
