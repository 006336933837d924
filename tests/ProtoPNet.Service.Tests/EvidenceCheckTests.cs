using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// <c>verify=true</c> (issue 15, "answers that test their own evidence"): each explained prototype's box is filled with
/// the model's mean colour and the image run again; and the bundle's interpretability scorecard in GET /models/.../versions/v.
/// </summary>
[Collection(BundlesCollection.Name)]
public class EvidenceCheckTests(TrainerBundles bundles)
{
    private HttpClient Client => bundles.Service.CreateClient();
    private string Version => Path.GetFileName(bundles.SmokeBundle);

    [Theory]
    [InlineData(32, 32)]   // the model's input size: the answer's boxes are the boxes that were filled
    [InlineData(50, 40)]   // another size: the filled boxes are in the model's input, not in the upload
    public async Task ProbabilityWithoutBoxIsTheClassProbabilityOfTheImageWithTheBoxFilledWithTheMeanColour(int width, int height)
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 3, width, height);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?topPrototypes=4&verify=true", Http.Image(image)));

        // Independently, in process: the image's input tensor, its network run, and each prototype's 95th-percentile box
        // in the model's input (numpy's percentile rule on the bicubically upsampled map), filled with input.mean. The
        // runs are the service's: one intra-op thread (as the test service is configured), the image alone, then every
        // masked copy in one run. (ONNX Runtime's sums depend on the thread count and the batch: a batch of 1 on two
        // threads differs from the service's run in the fifth decimal of a probability.)
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var session = bundle.Session;
        var size = session.ImageElementCount;
        var input = ServiceFactory.InputOf(bundle, image);
        using var outputs = session.Run(input, 1);
        var mean = bundle.Manifest.Input.Mean!.Select(m => (float)m).ToArray();
        Assert.Equal(session.Channels, mean.Length);

        var prediction = body.GetProperty("prediction");
        var predicted = prediction.GetProperty("classIndex").GetInt32();
        var probability = prediction.GetProperty("probability").GetDouble();
        Assert.Equal(SoftmaxOf(outputs.LogitsOf(0).ToArray(), predicted), probability, 1e-12);
        Assert.Equal(predicted, body.GetProperty("explanation").GetProperty("classIndex").GetInt32());

        var prototypes = body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(4, prototypes.Length);
        var masked = new float[prototypes.Length * size];
        var plane = session.Height * session.Width;
        for (var i = 0; i < prototypes.Length; i++)
        {
            var (x, y, w, h) = InputBox(outputs, prototypes[i].GetProperty("prototypeIndex").GetInt32(), session.Height, session.Width);
            if (width == session.Width && height == session.Height)
            {
                var box = prototypes[i].GetProperty("box");
                Assert.Equal((x, y, w, h), (box.GetProperty("x").GetInt32(), box.GetProperty("y").GetInt32(),
                    box.GetProperty("width").GetInt32(), box.GetProperty("height").GetInt32()));
            }
            Array.Copy(input, 0, masked, i * size, size);
            for (var c = 0; c < session.Channels; c++)
            {
                for (var row = y; row < y + h; row++)
                {
                    masked.AsSpan(i * size + c * plane + row * session.Width + x, w).Fill(mean[c]);
                }
            }
        }
        using var maskedOutputs = session.Run(masked, prototypes.Length);
        var drops = new List<double>();
        for (var i = 0; i < prototypes.Length; i++)
        {
            var expected = SoftmaxOf(maskedOutputs.LogitsOf(i).ToArray(), predicted);
            var without = prototypes[i].GetProperty("probabilityWithoutBox").GetDouble();
            var drop = prototypes[i].GetProperty("drop").GetDouble();
            Assert.Equal(expected, without, 1e-12);
            Assert.Equal(probability - without, drop, 1e-12);
            drops.Add(drop);
        }
        // Filling a box changed the answer: the check ran on masked images, not on the image again.
        Assert.True(drops.Max(Math.Abs) > 1e-3, $"no box made a difference: drops {string.Join(", ", drops)}");
        var timings = body.GetProperty("timingsMs");
        Assert.True(timings.GetProperty("verify").GetDouble() >= 0);
        Assert.True(timings.GetProperty("total").GetDouble() >= timings.GetProperty("verify").GetDouble());
    }

    /// <summary>
    /// With explainClass the check measures the class explained, not the one predicted: each prototype's
    /// probabilityWithoutBox is the explained class's probability on the image with its box filled, and its drop is from
    /// that class's probability on the image itself (the one topClasses lists for it).
    /// </summary>
    [Fact]
    public async Task WithExplainClassTheDropIsTheExplainedClasssProbabilityTheBoxCarried()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 3);
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var session = bundle.Session;
        var size = session.ImageElementCount;
        var input = ServiceFactory.InputOf(bundle, image);
        using var outputs = session.Run(input, 1);
        var logits = outputs.LogitsOf(0).ToArray();
        // The runner-up: explained, not predicted.
        var explained = Enumerable.Range(0, logits.Length).OrderByDescending(k => logits[k]).ElementAt(1);

        var body = await Http.JsonAsync(await Client.PostAsync($"/classify?explainClass={explained}&topClasses=4&topPrototypes=3&verify=true", Http.Image(image)));
        Assert.NotEqual(explained, body.GetProperty("prediction").GetProperty("classIndex").GetInt32());
        Assert.Equal(explained, body.GetProperty("explanation").GetProperty("classIndex").GetInt32());
        var probability = body.GetProperty("topClasses").EnumerateArray()
            .Single(c => c.GetProperty("classIndex").GetInt32() == explained).GetProperty("probability").GetDouble();
        Assert.Equal(SoftmaxOf(logits, explained), probability, 1e-12);

        var prototypes = body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(3, prototypes.Length);
        var mean = bundle.Manifest.Input.Mean!.Select(m => (float)m).ToArray();
        var plane = session.Height * session.Width;
        var masked = new float[prototypes.Length * size];
        for (var i = 0; i < prototypes.Length; i++)
        {
            var (x, y, w, h) = InputBox(outputs, prototypes[i].GetProperty("prototypeIndex").GetInt32(), session.Height, session.Width);
            Array.Copy(input, 0, masked, i * size, size);
            for (var c = 0; c < session.Channels; c++)
            {
                for (var row = y; row < y + h; row++) masked.AsSpan(i * size + c * plane + row * session.Width + x, w).Fill(mean[c]);
            }
        }
        using var maskedOutputs = session.Run(masked, prototypes.Length);
        for (var i = 0; i < prototypes.Length; i++)
        {
            var without = prototypes[i].GetProperty("probabilityWithoutBox").GetDouble();
            Assert.Equal(SoftmaxOf(maskedOutputs.LogitsOf(i).ToArray(), explained), without, 1e-12);
            Assert.Equal(probability - without, prototypes[i].GetProperty("drop").GetDouble(), 1e-12);
        }
    }

    [Fact]
    public async Task VerifyAddsExactlyOneBatchedRunAndWithoutItNothingExtraRunsOrIsAnswered()
    {
        var client = Client;
        var image = Http.BundleImage(bundles.SmokeBundle, 1);

        var (plain, runs, images) = await CountRunsAsync(client, () => client.PostAsync("/classify?topPrototypes=3", Http.Image(image)));
        Assert.Equal((1, 1), (runs, images));
        var plainBody = await Http.JsonAsync(plain);
        foreach (var prototype in plainBody.GetProperty("explanation").GetProperty("prototypes").EnumerateArray())
        {
            Assert.False(prototype.TryGetProperty("probabilityWithoutBox", out _));
            Assert.False(prototype.TryGetProperty("drop", out _));
        }
        Assert.False(plainBody.GetProperty("timingsMs").TryGetProperty("verify", out _));

        // verify=false is the default, said out loud.
        (_, runs, images) = await CountRunsAsync(client, () => client.PostAsync("/classify?topPrototypes=3&verify=false", Http.Image(image)));
        Assert.Equal((1, 1), (runs, images));

        // One more run, holding the three masked copies.
        var (verified, verifiedRuns, verifiedImages) = await CountRunsAsync(client, () => client.PostAsync("/classify?topPrototypes=3&verify=TRUE", Http.Image(image)));
        Assert.Equal((2, 1 + 3), (verifiedRuns, verifiedImages));
        var verifiedBody = await Http.JsonAsync(verified);
        // The explanation itself is the same.
        Assert.Equal(
            plainBody.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().Select(p => p.GetProperty("contribution").GetDouble()),
            verifiedBody.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().Select(p => p.GetProperty("contribution").GetDouble()));

        // topPrototypes=0: nothing to check, nothing extra runs.
        (_, runs, images) = await CountRunsAsync(client, () => client.PostAsync("/classify?topPrototypes=0&verify=true", Http.Image(image)));
        Assert.Equal((1, 1), (runs, images));
    }

    [Fact]
    public async Task ABatchChecksEveryImageInOneExtraRunWithTheAnswersOfSingleRequests()
    {
        var client = Client;
        var first = Http.BundleImage(bundles.SmokeBundle, 0);
        var second = Http.BundleImage(bundles.SmokeBundle, 5, 40, 36);
        var (response, runs, images) = await CountRunsAsync(client, () => client.PostAsync("/classify/batch?topPrototypes=2&verify=true",
            Http.Multipart(("image", first, "image/png"), ("image", "not an image"u8.ToArray(), "image/png"), ("image", second, "image/png"))));
        Assert.Equal((2, 2 + 2 * 2), (runs, images));
        var results = (await Http.JsonAsync(response)).GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(3, results.Length);
        Assert.Equal(400, results[1].GetProperty("status").GetInt32());

        foreach (var (result, upload) in new[] { (results[0], first), (results[2], second) })
        {
            var single = await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=2&verify=true", Http.Image(upload)));
            var batched = result.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
            var alone = single.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
            Assert.Equal(2, batched.Length);
            // Not to the last bit: the masked copies ran in a batch of 4 here and of 2 alone, and ONNX Runtime's sums
            // differ with the batch (by about 1e-6 in these probabilities).
            for (var i = 0; i < batched.Length; i++)
            {
                Assert.Equal(alone[i].GetProperty("prototypeIndex").GetInt32(), batched[i].GetProperty("prototypeIndex").GetInt32());
                Assert.Equal(alone[i].GetProperty("probabilityWithoutBox").GetDouble(), batched[i].GetProperty("probabilityWithoutBox").GetDouble(), 1e-5);
                Assert.Equal(alone[i].GetProperty("drop").GetDouble(), batched[i].GetProperty("drop").GetDouble(), 1e-5);
            }
        }
    }

    /// <summary>
    /// Two requests whose checks share one run (one run at a time, batches formed for 300 ms): each image's drops come
    /// from its own masked copies, whatever rows of the run they took, and equal those of the image checked alone.
    /// </summary>
    [Fact]
    public async Task RequestsWhoseChecksShareARunEachGetTheirOwnImagesDrops()
    {
        await using var factory = bundles.SmokeService(("Batching:Strategy", "Fixed"), ("Batching:MaxBatchSize", "8"),
            ("Batching:MaxConcurrentRuns", "1"), ("Batching:MaxQueueDelayMs", "300"));
        var client = factory.CreateClient();
        var uploads = new[] { Http.BundleImage(bundles.SmokeBundle, 0), Http.BundleImage(bundles.SmokeBundle, 3) };
        async Task<JsonElement[]> PrototypesAsync(byte[] upload) => (await Http.JsonAsync(
                await client.PostAsync("/classify?topPrototypes=2&verify=true", Http.Image(upload))))
            .GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();

        var together = await Task.WhenAll(uploads.Select(PrototypesAsync));
        for (var image = 0; image < uploads.Length; image++)
        {
            var alone = await PrototypesAsync(uploads[image]);
            for (var i = 0; i < alone.Length; i++)
            {
                Assert.Equal(alone[i].GetProperty("prototypeIndex").GetInt32(), together[image][i].GetProperty("prototypeIndex").GetInt32());
                Assert.Equal(alone[i].GetProperty("drop").GetDouble(), together[image][i].GetProperty("drop").GetDouble(), 1e-5);
            }
        }
    }

    [Fact]
    public async Task TheCardWithVerifyShowsTheDropsInItsRowsAndKeepsItsSize()
    {
        var client = Client;
        var image = Http.BundleImage(bundles.SmokeBundle, 2);
        using var plain = await CardAsync(client, "/classify/card?topPrototypes=3", image);
        var (response, runs, _) = await CountRunsAsync(client, () => client.PostAsync("/classify/card?topPrototypes=3&verify=true", Http.Image(image)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, runs);
        using var verified = Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());

        Assert.Equal(plain.Size(), verified.Size());
        Assert.Equal(ExplanationCard.HeightFor(3), verified.Height);
        // Header, upload and top classes are the same; the rows differ (each has its drop line).
        var rowsTop = ExplanationCard.HeightFor(0) - 60;
        Assert.Equal(0, DifferingPixels(plain, verified, 0, rowsTop));
        for (var row = 0; row < 3; row++)
        {
            var top = rowsTop + row * 140;
            Assert.True(DifferingPixels(plain, verified, top, top + 140) > 50, $"row {row + 1} of the card looks the same with verify=true");
        }
    }

    [Theory]
    [InlineData("/classify?verify=yes")]
    [InlineData("/classify?verify=1")]
    [InlineData("/classify/card?verify=maybe")]
    [InlineData("/classify/batch?verify=on")]
    public async Task AVerifyThatIsNotTrueOrFalseIsAnInvalidParameter(string url)
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var problem = await Http.ProblemAsync(await Client.PostAsync(url, Http.Image(image)), HttpStatusCode.BadRequest, "invalid-parameter");
        Assert.Contains("verify must be 'true' or 'false'", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task VerifyChecksAtMostMaxVerifiedPrototypesPerImage()
    {
        await using var factory = bundles.SmokeService(("Classify:MaxVerifiedPrototypes", "2"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var problem = await Http.ProblemAsync(await client.PostAsync("/classify?topPrototypes=3&verify=true", Http.Image(image)),
            HttpStatusCode.BadRequest, "invalid-parameter");
        Assert.Contains("MaxVerifiedPrototypes", problem.GetProperty("detail").GetString());
        // Without verify the same request is fine, and with two prototypes the check runs.
        await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=3", Http.Image(image)));
        var body = await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=2&verify=true", Http.Image(image)));
        Assert.All(body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray(), p => p.GetProperty("drop").GetDouble());
    }

    [Fact]
    public async Task AVersionExposesItsInterpretabilityScorecardAndABundleWithoutOneStillLoads()
    {
        var root = bundles.NewRoot(
            (bundles.SmokeBundle, "smoke", null),
            (bundles.SmokeBundle, "plain", b => TrainerBundles.EditManifest(b, m => m.AsObject().Remove("interpretability"))),
            // Data without part boxes: no consistency, per prototype or overall.
            (bundles.SmokeBundle, "noparts", b => TrainerBundles.EditManifest(b, m =>
            {
                var block = m["interpretability"]!;
                block["parts"] = false;
                block["consistency"] = null;
                foreach (var prototype in block["prototypes"]!.AsArray()) prototype!.AsObject().Remove("consistency");
            })),
            // A scorecard that cannot be read, or is not this model's: the bundle serves without it, saying why.
            (bundles.SmokeBundle, "typed", b => TrainerBundles.EditManifest(b, m => m["interpretability"]!["pointingGame"] = "high")),
            (bundles.SmokeBundle, "misindexed", b => TrainerBundles.EditManifest(b, m => m["interpretability"]!["prototypes"]![0]!["index"] = 8)),   // one past the last of 8
            // A number no double holds was read as infinity, which no answer can be written with (the version's page was a 500).
            (bundles.SmokeBundle, "huge", b => TrainerBundles.EditManifest(b, m => m["interpretability"]!["noiseStability"] = TrainerBundles.RawJson, "1e400")));
        await using var factory = ServiceFactory.ForRoot(root);
        var client = factory.CreateClient();

        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(bundles.SmokeBundle, "model.json")))!;
        var expected = manifest["interpretability"] ?? throw new Xunit.Sdk.XunitException("the smoke bundle has no interpretability block: train runs the scorecard before publishing");
        var version = await Http.JsonAsync(await client.GetAsync($"/models/smoke/versions/{Version}"));
        var scorecard = version.GetProperty("interpretability");
        Assert.Equal(expected["deletion"]!["ratio"]!.GetValue<double>(), scorecard.GetProperty("deletion").GetProperty("ratio").GetDouble());
        Assert.Equal(expected["noiseStability"]!.GetValue<double>(), scorecard.GetProperty("noiseStability").GetDouble());
        var prototypes = scorecard.GetProperty("prototypes").EnumerateArray().ToArray();
        var expectedPrototypes = expected["prototypes"]!.AsArray();
        Assert.Equal(8, prototypes.Length);
        for (var j = 0; j < prototypes.Length; j++)
        {
            var want = expectedPrototypes[j]!;
            var got = prototypes[j];
            Assert.Equal(want["index"]!.GetValue<int>(), got.GetProperty("index").GetInt32());
            foreach (var field in (string[])["consistency", "noiseStability", "jpegStability"])
            {
                double? wanted = want[field] is { } value ? value.GetValue<double>() : null;
                Assert.Equal(wanted, got.GetProperty(field).ValueKind == JsonValueKind.Null ? null : got.GetProperty(field).GetDouble());
            }
            Assert.Equal(want["background"]!.GetValue<bool>(), got.GetProperty("background").GetBoolean());
        }
        Assert.Contains(prototypes, p => p.GetProperty("consistency").ValueKind == JsonValueKind.Number);

        var plain = await Http.JsonAsync(await client.GetAsync($"/models/plain/versions/{Version}"));
        Assert.Equal(JsonValueKind.Null, plain.GetProperty("interpretability").ValueKind);
        await Http.JsonAsync(await client.PostAsync("/classify?model=plain&verify=true", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));

        foreach (var (model, problem) in new[] { ("typed", "interpretability.pointingGame holds a value of another type than a scorecard's"),
                     ("misindexed", "interpretability.prototypes[0] is for prototype 8, which this model (of 8 prototypes) does not have"),
                     ("huge", "interpretability.noiseStability holds a number beyond a double's range") })
        {
            var served = await Http.JsonAsync(await client.GetAsync($"/models/{model}/versions/{Version}"));
            Assert.Equal(JsonValueKind.Null, served.GetProperty("interpretability").ValueKind);
            await factory.Logs.WaitForAsync(m => m.Contains($"Model {model}@{Version} is served without its interpretability scorecard: {problem}"),
                onTimeout: () => string.Join('\n', factory.Logs.Entries.Select(e => e.Message).Where(m => m.Contains("scorecard"))));
            await Http.JsonAsync(await client.PostAsync($"/classify?model={model}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
        }

        var noParts = (await Http.JsonAsync(await client.GetAsync($"/models/noparts/versions/{Version}"))).GetProperty("interpretability");
        Assert.Equal(JsonValueKind.Null, noParts.GetProperty("consistency").ValueKind);
        Assert.All(noParts.GetProperty("prototypes").EnumerateArray(), p =>
        {
            Assert.Equal(JsonValueKind.Null, p.GetProperty("consistency").ValueKind);
            Assert.Equal(JsonValueKind.Number, p.GetProperty("noiseStability").ValueKind);
        });
    }

    /// <summary>Sends a request and counts the smoke model's network runs and the images in them (from /metrics) meanwhile.</summary>
    private static async Task<(HttpResponseMessage Response, double Runs, double Images)> CountRunsAsync(HttpClient client, Func<Task<HttpResponseMessage>> send)
    {
        string[] labels = ["model=\"smoke\""];
        var before = await PrometheusText.ScrapeAsync(client);
        var response = await send();
        await response.Content.LoadIntoBufferAsync();
        var after = await PrometheusText.ScrapeAsync(client);
        return (response,
            PrometheusText.Sum(after, "protopnet_batch_size_count", labels) - PrometheusText.Sum(before, "protopnet_batch_size_count", labels),
            PrometheusText.Sum(after, "protopnet_batch_size_sum", labels) - PrometheusText.Sum(before, "protopnet_batch_size_sum", labels));
    }

    private static async Task<Image<Rgb24>> CardAsync(HttpClient client, string url, byte[] image)
    {
        var response = await client.PostAsync(url, Http.Image(image));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
    }

    private static int DifferingPixels(Image<Rgb24> a, Image<Rgb24> b, int top, int bottom)
    {
        var count = 0;
        for (var y = top; y < bottom; y++)
        {
            for (var x = 0; x < a.Width; x++)
            {
                if (!a[x, y].Equals(b[x, y])) count++;
            }
        }
        return count;
    }

    /// <summary>Softmax probability of one class, computed here in double precision.</summary>
    private static double SoftmaxOf(float[] logits, int classIndex)
    {
        var max = logits.Max();
        var sum = logits.Sum(l => Math.Exp(l - (double)max));
        return Math.Exp(logits[classIndex] - (double)max) / sum;
    }

    /// <summary>The prototype's high-activation box in the model's input: pixels at or above numpy's 95th percentile of the upsampled map.</summary>
    private static (int X, int Y, int Width, int Height) InputBox(NetworkOutputs outputs, int prototype, int height, int width)
    {
        var map = BicubicUpsampler.Resize(outputs.MapOf(0, prototype), outputs.MapHeight, outputs.MapWidth, height, width);
        var sorted = map.OrderBy(v => v).ToArray();
        var rank = 0.95 * (sorted.Length - 1);
        var threshold = sorted[(int)rank] + (sorted[Math.Min((int)rank + 1, sorted.Length - 1)] - sorted[(int)rank]) * (rank - (int)rank);
        var hot = Enumerable.Range(0, map.Length).Where(i => map[i] >= threshold).ToArray();
        int left = hot.Min(i => i % width), right = hot.Max(i => i % width), top = hot.Min(i => i / width), bottom = hot.Max(i => i / width);
        return (left, top, right - left + 1, bottom - top + 1);
    }
}
