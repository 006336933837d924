using System.Net;
using System.Text.Json;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Service.Tests;

[Collection(BundlesCollection.Name)]
public class ClassifyTests(TrainerBundles bundles)
{
    private HttpClient Client => bundles.Service.CreateClient();

    [Fact]
    public async Task ClassifyExplainsThePredictionAndAddsUpToTheLogit()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 3);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?topPrototypes=3&topClasses=4", Http.Image(image)));

        Assert.Equal("smoke", body.GetProperty("model").GetProperty("name").GetString());
        Assert.Equal(32, body.GetProperty("image").GetProperty("width").GetInt32());
        var topClasses = body.GetProperty("topClasses").EnumerateArray().ToArray();
        Assert.Equal(4, topClasses.Length);
        var logits = topClasses.Select(c => c.GetProperty("logit").GetDouble()).ToArray();
        Assert.Equal(logits.OrderByDescending(l => l), logits);
        Assert.Equal(1.0, topClasses.Sum(c => c.GetProperty("probability").GetDouble()), 1e-9);
        var prediction = body.GetProperty("prediction");
        Assert.Equal(topClasses[0].GetProperty("classIndex").GetInt32(), prediction.GetProperty("classIndex").GetInt32());

        var explanation = body.GetProperty("explanation");
        Assert.Equal(prediction.GetProperty("classIndex").GetInt32(), explanation.GetProperty("classIndex").GetInt32());
        var prototypes = explanation.GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(3, prototypes.Length);
        var contributions = prototypes.Select(p => p.GetProperty("contribution").GetDouble()).ToArray();
        Assert.Equal(contributions.OrderByDescending(c => c), contributions);
        foreach (var prototype in prototypes)
        {
            Assert.Equal(prototype.GetProperty("weight").GetDouble() * prototype.GetProperty("similarity").GetDouble(),
                prototype.GetProperty("contribution").GetDouble(), 1e-9);
        }
        var logit = explanation.GetProperty("logit").GetDouble();
        Assert.Equal(logit, contributions.Sum() + explanation.GetProperty("otherPrototypesContribution").GetDouble(), 1e-3);
        Assert.Equal(logits[0], logit, 1e-12);
    }

    [Fact]
    public async Task HttpAnswerEqualsInProcessOnnxRuntime()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 5, 50, 40);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=4", Http.Raw(image, "image/png")));

        // One intra-op thread, as the test service runs: ONNX Runtime's sums depend on the thread count.
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var outputs = bundle.Session.Run(ServiceFactory.InputOf(bundle, image), 1);
        foreach (var score in body.GetProperty("topClasses").EnumerateArray())
        {
            Assert.Equal(outputs.LogitsOf(0)[score.GetProperty("classIndex").GetInt32()], score.GetProperty("logit").GetDouble());
        }
    }

    [Fact]
    public async Task BoxesLieInsideTheUploadedImageAndFollowThePercentileRule()
    {
        const int width = 96, height = 64;
        var image = Http.BundleImage(bundles.SmokeBundle, 0, width, height);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?topPrototypes=8", Http.Image(image)));
        Assert.Equal(width, body.GetProperty("image").GetProperty("width").GetInt32());

        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var outputs = bundle.Session.Run(ServiceFactory.InputOf(bundle, image), 1);
        AssertBoxesFollowThePercentileRule(body, bundle, outputs, width, height);
    }

    /// <summary>
    /// Recomputes each explained prototype's box from the in-process <paramref name="outputs"/> by the rule, independently:
    /// threshold = numpy-style 95th percentile of the bicubically upsampled map, box = bounding rectangle of the pixels
    /// at or above it, mapped onto the uploaded image's <paramref name="width"/> x <paramref name="height"/>.
    /// </summary>
    internal static void AssertBoxesFollowThePercentileRule(JsonElement body, ModelBundle bundle, NetworkOutputs outputs, int width, int height)
    {
        var (inH, inW) = (bundle.Manifest.Input.Height, bundle.Manifest.Input.Width);
        foreach (var prototype in body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray())
        {
            // The feature-map cell named is the map's highest (the first in row-major order of equal highest ones).
            var cells = outputs.MapOf(0, prototype.GetProperty("prototypeIndex").GetInt32()).ToArray();
            var highest = Array.IndexOf(cells, cells.Max());
            var cell = prototype.GetProperty("featureCell");
            Assert.Equal((highest / outputs.MapWidth, highest % outputs.MapWidth),
                (cell.GetProperty("row").GetInt32(), cell.GetProperty("column").GetInt32()));

            var box = prototype.GetProperty("box");
            int x = box.GetProperty("x").GetInt32(), y = box.GetProperty("y").GetInt32();
            int w = box.GetProperty("width").GetInt32(), h = box.GetProperty("height").GetInt32();
            Assert.True(x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= width && y + h <= height, $"box {x},{y},{w},{h} outside {width}x{height}");

            var map = BicubicUpsampler.Resize(outputs.MapOf(0, prototype.GetProperty("prototypeIndex").GetInt32()),
                outputs.MapHeight, outputs.MapWidth, inH, inW);
            var sorted = map.OrderBy(v => v).ToArray();
            var rank = 0.95 * (sorted.Length - 1);
            var threshold = sorted[(int)rank] + (sorted[Math.Min((int)rank + 1, sorted.Length - 1)] - sorted[(int)rank]) * (rank - (int)rank);
            var hot = Enumerable.Range(0, map.Length).Where(i => map[i] >= threshold).ToArray();
            int left = hot.Min(i => i % inW), right = hot.Max(i => i % inW), top = hot.Min(i => i / inW), bottom = hot.Max(i => i / inW);
            // Input pixel column c covers uploaded columns [c * width / inW, (c + 1) * width / inW).
            Assert.Equal((int)Math.Floor(left * (double)width / inW), x);
            Assert.Equal((int)Math.Ceiling((right + 1) * (double)width / inW) - 1, x + w - 1);
            Assert.Equal((int)Math.Floor(top * (double)height / inH), y);
            Assert.Equal((int)Math.Ceiling((bottom + 1) * (double)height / inH) - 1, y + h - 1);
        }
    }

    /// <summary>
    /// Equal logits and equal contributions are listed by index, as a stable sort would list them: a later class or
    /// prototype never displaces an equal earlier one (with zero weights or similarities, ties are common).
    /// </summary>
    [Fact]
    public void TiesAreListedByIndex()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var (mapHeight, mapWidth) = (bundle.Session.MapHeight, bundle.Session.MapWidth);
        using var outputs = new NetworkOutputs(1, 1, bundle.ClassCount, bundle.PrototypeCount, mapHeight, mapWidth, withMaps: true);
        outputs.LogitsRows(0, 1).Span.Fill(1.5f);
        outputs.SimilarityRows(0, 1).Span.Clear();
        var maps = outputs.MapRows(0, 1).Span;
        maps.Clear();
        maps[1 * mapWidth + 3] = 2f;   // prototype 0 most active at row 1, column 3
        using var image = new DecodedImage(new Image<Rgb24>(bundle.Manifest.Input.Width, bundle.Manifest.Input.Height), "png");

        var (prediction, topClasses, explanation) = Explainer.Explain(bundle, outputs, 0, image, new ExplainOptions(TopClasses: 2, TopPrototypes: 3));
        Assert.Equal(0, prediction.ClassIndex);
        Assert.Equal([0, 1], topClasses.Select(c => c.ClassIndex));
        Assert.Equal([0, 1, 2], explanation.Prototypes.Select(p => p.PrototypeIndex));
        Assert.Equal(new FeatureCell(1, 3), explanation.Prototypes[0].FeatureCell);
    }

    /// <summary>
    /// The feature cell named for a prototype is where its map is highest, anywhere in the map (its last cell too), and
    /// the first in row-major order of equal highest cells (a flat map names the first cell), as row and column of a map
    /// wider than tall: the cell a user looks for on the image.
    /// </summary>
    [Fact]
    public void TheFeatureCellIsTheMapsFirstHighestCellWhereverItLies()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.WideBundle);
        var (mapHeight, mapWidth) = (bundle.Session.MapHeight, bundle.Session.MapWidth);
        Assert.True(mapWidth > mapHeight, $"a {mapHeight} x {mapWidth} map");
        var size = mapHeight * mapWidth;
        using var outputs = new NetworkOutputs(1, 1, bundle.ClassCount, bundle.PrototypeCount, mapHeight, mapWidth, withMaps: true);
        outputs.LogitsRows(0, 1).Span.Clear();
        outputs.SimilarityRows(0, 1).Span.Clear();   // equal contributions: prototypes 0, 1 and 2 are explained, in that order
        var maps = outputs.MapRows(0, 1).Span;
        maps.Fill(0.25f);
        maps[size - 1] = 3f;                                      // prototype 0: highest in its last cell
        maps[size + mapWidth - 2] = 2f;                           // prototype 1: equal highest in row 0, column w - 2
        maps[size + (mapHeight - 1) * mapWidth + 1] = 2f;         //   and in the last row, column 1
        using var image = new DecodedImage(new Image<Rgb24>(bundle.Manifest.Input.Width, bundle.Manifest.Input.Height), "png");

        var explanation = Explainer.ExplainClass(bundle, outputs, 0, image, 0, new ExplainOptions(TopPrototypes: 3));
        Assert.Equal([0, 1, 2], explanation.Prototypes.Select(p => p.PrototypeIndex));
        Assert.Equal([new FeatureCell(mapHeight - 1, mapWidth - 1), new FeatureCell(0, mapWidth - 2), new FeatureCell(0, 0)],
            explanation.Prototypes.Select(p => p.FeatureCell));
    }

    /// <summary>
    /// Each explained prototype costs its part of the answer and nothing that grows with the network's input: the map's
    /// upsampling taps (48 bytes per input row and column, 3 KB at 32 x 32) are worked out once per bundle.
    /// </summary>
    [Fact]
    public void AnotherExplainedPrototypeAllocatesOnlyItsPartOfTheAnswer()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var input = ServiceFactory.InputOf(bundle, Http.BundleImage(bundle.Directory, 0));
        using var outputs = bundle.Session.Run(input, 1);
        using var image = new DecodedImage(new Image<Rgb24>(bundle.Manifest.Input.Width, bundle.Manifest.Input.Height), "png");
        var many = Math.Min(8, bundle.PrototypeCount);
        // The least of a few explanations: the shared array pool is shared with the tests running beside this one
        // (which may take a pooled array from under it) and trimmed by the garbage collector, so one explanation may rent
        // anew what the steady state reuses.
        long Allocated(int topPrototypes)
        {
            var options = new ExplainOptions(TopPrototypes: topPrototypes);
            Explainer.ExplainClass(bundle, outputs, 0, image, 0, options); // pools and plans filled first
            var least = long.MaxValue;
            for (var attempt = 0; attempt < 5; attempt++)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                var explanation = Explainer.ExplainClass(bundle, outputs, 0, image, 0, options);
                least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
                Assert.Equal(topPrototypes, explanation.Prototypes.Count);
            }
            return least;
        }
        var perPrototype = (Allocated(many) - Allocated(1)) / (many - 1);
        var tapsOfOneMap = 48 * (bundle.Manifest.Input.Width + bundle.Manifest.Input.Height);
        Assert.True(perPrototype < 400 && perPrototype < tapsOfOneMap,
            $"each further prototype allocated {perPrototype} bytes (its upsampling taps alone would be {tapsOfOneMap})");
    }

    [Fact]
    public async Task HeatmapIsAPngOfTheUploadedImagesSize()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 2, 75, 45);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?heatmaps=png&topPrototypes=2", Http.Image(image)));
        var heatmaps = body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray()
            .Select(p => p.GetProperty("heatmap").GetString()!).ToArray();
        Assert.Equal(2, heatmaps.Length);
        foreach (var heatmap in heatmaps)
        {
            Assert.StartsWith("data:image/png;base64,", heatmap);
            using var png = Image.Load<Rgb24>(Convert.FromBase64String(heatmap["data:image/png;base64,".Length..]));
            Assert.Equal(75, png.Width);
            Assert.Equal(45, png.Height);
        }
        Assert.NotEqual(heatmaps[0], heatmaps[1]);

        var plain = await Http.JsonAsync(await Client.PostAsync("/classify", Http.Image(image)));
        Assert.All(plain.GetProperty("explanation").GetProperty("prototypes").EnumerateArray(), p => Assert.False(p.TryGetProperty("heatmap", out _)));
    }

    [Fact]
    public async Task APrototypesHeatmapOverItsOwnTrainingImageIsTheActivationPictureTheTrainerDrew()
    {
        // The same map, upsampling, normalisation, colour map and blend on both sides: the service's overlay of a
        // prototype over the picture it was projected onto is the trainer's activation.png, to a level of rounding.
        var prototypes = (await Http.JsonAsync(await Client.GetAsync($"/models/smoke/versions/{Path.GetFileName(bundles.SmokeBundle)}/prototypes")))
            .GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(8, prototypes.Length);
        foreach (var prototype in prototypes)
        {
            var (index, classIndex) = (prototype.GetProperty("index").GetInt32(), prototype.GetProperty("classIndex").GetInt32());
            var folder = Path.Combine(bundles.SmokeBundle, "prototypes", index.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var body = await Http.JsonAsync(await Client.PostAsync($"/classify?heatmaps=png&topPrototypes=8&explainClass={classIndex}",
                Http.Image(await File.ReadAllBytesAsync(Path.Combine(folder, "source.png")))));
            var explained = body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray()
                .Single(p => p.GetProperty("prototypeIndex").GetInt32() == index);
            using var heatmap = Image.Load<Rgb24>(Convert.FromBase64String(explained.GetProperty("heatmap").GetString()!["data:image/png;base64,".Length..]));
            using var activation = Image.Load<Rgb24>(Path.Combine(folder, "activation.png"));
            Assert.Equal((activation.Width, activation.Height), (heatmap.Width, heatmap.Height));
            // A pixel whose normalised value lies at one of the colour map's 256 steps may take the neighbouring colour
            // (ONNX Runtime's map against PyTorch's, float against double): 1.2 levels of green at most, and rounding.
            var offByMoreThanOne = 0;
            for (var y = 0; y < heatmap.Height; y++)
            {
                for (var x = 0; x < heatmap.Width; x++)
                {
                    var (shown, drawn) = (heatmap[x, y], activation[x, y]);
                    var difference = Math.Max(Math.Abs(shown.R - drawn.R), Math.Max(Math.Abs(shown.G - drawn.G), Math.Abs(shown.B - drawn.B)));
                    Assert.True(difference <= 2, $"prototype {index} at ({x}, {y}): the service draws {shown}, the trainer drew {drawn}");
                    if (difference > 1) offByMoreThanOne++;
                }
            }
            Assert.True(offByMoreThanOne <= heatmap.Width * heatmap.Height / 100, $"prototype {index}: {offByMoreThanOne} pixels are 2 levels off");
        }
    }

    [Fact]
    public async Task ALargeJpegIsDecodedAtTheDraftScaleAndAnsweredInTheUploadsSize()
    {
        // 400x300 for the smoke model's 32x32 input: the trainer (and so the service) decodes it at 1/8, 50x38.
        const int width = 400, height = 300;
        using var picture = Image.Load<Rgb24>(Http.BundleImage(bundles.SmokeBundle, 1, width, height));
        var jpeg = Http.Encode(picture, new JpegEncoder { Quality = 90 });
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        Assert.True(bundle.Manifest.Input.JpegDraft, "the trainer's bundles decode JPEGs at the draft scale by default");

        var body = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=4&topPrototypes=3&heatmaps=png", Http.Raw(jpeg, "image/jpeg")));
        Assert.Equal((width, height), (body.GetProperty("image").GetProperty("width").GetInt32(), body.GetProperty("image").GetProperty("height").GetInt32()));
        var decodedSize = body.GetProperty("preprocessing").GetProperty("decoded");
        Assert.Equal((50, 38), (decodedSize.GetProperty("width").GetInt32(), decodedSize.GetProperty("height").GetInt32()));

        // The network saw the drafted pixels (exactly), which are not those of a full decode.
        var input = ServiceFactory.InputOf(bundle, jpeg);
        using var outputs = bundle.Session.Run(input, 1);
        Assert.NotEqual(ServiceFactory.InputOf(bundle, jpeg, bundle.Manifest.Input with { JpegDraft = false }), input);
        foreach (var score in body.GetProperty("topClasses").EnumerateArray())
        {
            Assert.Equal(outputs.LogitsOf(0)[score.GetProperty("classIndex").GetInt32()], score.GetProperty("logit").GetDouble());
        }
        // Boxes are in the upload's pixels; heatmaps are drawn over the decoded pixels.
        AssertBoxesFollowThePercentileRule(body, bundle, outputs, width, height);
        foreach (var prototype in body.GetProperty("explanation").GetProperty("prototypes").EnumerateArray())
        {
            using var heatmap = Image.Load<Rgb24>(Convert.FromBase64String(prototype.GetProperty("heatmap").GetString()!["data:image/png;base64,".Length..]));
            Assert.Equal((50, 38), (heatmap.Width, heatmap.Height));
        }
        var card = await Client.PostAsync("/classify/card", Http.Raw(jpeg, "image/jpeg"));
        Assert.Equal(HttpStatusCode.OK, card.StatusCode);
        Assert.Equal("image/png", card.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public void PixelsAreFreedOnceTheInputIsWrittenUnlessTheAnswerDrawsOnThem()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var classifier = new Classifier(new ImageDecoder(new ImageLimits()));
        ReadOnlyMemory<byte>[] images = [Http.BundleImage(bundles.SmokeBundle, 1, 80, 60), Http.BundleImage(bundles.SmokeBundle, 2, 70, 50)];
        using var freed = classifier.Prepare(bundle, images, keptPixels: 0);
        using var kept = classifier.Prepare(bundle, images);
        Assert.All(Enumerable.Range(0, 2), i => Assert.False(freed.DecodedAt(i).HasPixels));
        Assert.Throws<InvalidOperationException>(() => freed.DecodedAt(0).Pixels);
        Assert.All(Enumerable.Range(0, 2), i => Assert.True(kept.DecodedAt(i).HasPixels));
        var elements = 2 * bundle.Session.ImageElementCount;
        Assert.Equal(kept.Input.AsSpan(0, elements).ToArray(), freed.Input.AsSpan(0, elements).ToArray());

        // The answer needs only the sizes.
        using var outputs = bundle.Session.Run(freed.Input, 2);
        var answer = classifier.Explain(bundle, freed, outputs, 0, new ExplainOptions(3, 3), 0, System.Diagnostics.Stopwatch.StartNew())[1].Classification!;
        Assert.Equal((70, 50), (answer.ImageWidth, answer.ImageHeight));
        Assert.Equal((70, 50), answer.Decoded);
        Assert.Equal(3, answer.Explanation.Prototypes.Count);

        // Kept to draw on, up to a number of pixels for all images together: an image beyond it is refused, and freed.
        using var both = classifier.Prepare(bundle, images, keptPixels: 80 * 60 + 70 * 50);
        Assert.Equal(2, both.RowCount);
        using var one = classifier.Prepare(bundle, images, keptPixels: 80 * 60 + 70 * 50 - 1);
        Assert.Equal(1, one.RowCount);
        Assert.True(one.DecodedAt(0).HasPixels);
        Assert.Equal(ImageRejection.TooManyPixels, one.Rejections[1]!.Rejection);
        // A refused image in the middle of a batch: the next one takes its row.
        var small = Http.BundleImage(bundles.SmokeBundle, 3, 40, 30);
        using var middle = classifier.Prepare(bundle, [small, images[0], small], keptPixels: 2 * 40 * 30 + 100);
        Assert.Equal((2, 2), (middle.RowCount, middle.ImageOfRow(1)));
        Assert.Equal(ImageRejection.TooManyPixels, middle.Rejections[1]!.Rejection);
        using var alone = classifier.Prepare(bundle, [small]);
        var image = bundle.Session.ImageElementCount;
        Assert.Equal(alone.Input.AsSpan(0, image).ToArray(), middle.Input.AsSpan(image, image).ToArray());
    }

    [Fact]
    public async Task AnAnswerDrawsOnNoMoreThanItsPixelLimit()
    {
        await using var factory = bundles.SmokeService(("Classify:MaxDrawnPixels", "5000"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 1, 80, 60);   // 4,800 pixels: one fits, two do not
        var batch = () => Http.Multipart(("image", image, "image/png"), ("image", image, "image/png"));

        var drawn = await Http.JsonAsync(await client.PostAsync("/classify/batch?heatmaps=png&topPrototypes=1", batch()));
        var results = drawn.GetProperty("results").EnumerateArray().ToArray();
        Assert.StartsWith("data:image/png", results[0].GetProperty("explanation").GetProperty("prototypes")[0].GetProperty("heatmap").GetString());
        Assert.EndsWith("image-too-many-pixels", results[1].GetProperty("type").GetString());
        Assert.Contains("more than the 5000 pixels one answer draws on", results[1].GetProperty("detail").GetString());

        // Without heatmaps nothing is kept to draw on, so nothing is refused.
        var plain = await Http.JsonAsync(await client.PostAsync("/classify/batch?topPrototypes=1", batch()));
        Assert.All(plain.GetProperty("results").EnumerateArray(), result => Assert.True(result.TryGetProperty("prediction", out _)));
        // The card draws on its one image.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/classify/card", Http.Image(image))).StatusCode);
    }

    [Fact]
    public async Task AnImageOverFourMegapixelsIsDrawnOnScaledDownWithItsHeatmaps()
    {
        // 2100x2000 = 4.2 megapixels. As a PNG the smoke model decodes it in full, and heatmaps are drawn over a copy
        // scaled down to at most 4 megapixels; as a JPEG it is decoded at 1/8 (263x250) and drawn on at that size.
        using var grey = new Image<Rgb24>(2100, 2000, new Rgb24(128, 128, 128));
        var png = Http.Encode(grey, new PngEncoder());
        var answer = await Http.JsonAsync(await Client.PostAsync("/classify?heatmaps=png&topPrototypes=2", Http.Raw(png, "image/png")));
        var decoded = answer.GetProperty("preprocessing").GetProperty("decoded");
        Assert.Equal((2100, 2000), (decoded.GetProperty("width").GetInt32(), decoded.GetProperty("height").GetInt32()));
        var uri = answer.GetProperty("explanation").GetProperty("prototypes")[0].GetProperty("heatmap").GetString()!;
        using (var heatmap = Image.Load<Rgb24>(Convert.FromBase64String(uri["data:image/png;base64,".Length..])))
        {
            Assert.Equal((2049, 1951), (heatmap.Width, heatmap.Height));
            Assert.NotEqual(new Rgb24(128, 128, 128), heatmap[1000, 1000]);   // coloured, not the grey image
        }

        async Task<Image<Rgb24>> CardAsync(byte[] file, string type)
        {
            var response = await Client.PostAsync("/classify/card?topPrototypes=2", Http.Raw(file, type));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
        }
        using var drafted = await CardAsync(Http.Encode(grey, new JpegEncoder { Quality = 90 }), "image/jpeg");
        using var full = await CardAsync(png, "image/png");

        // The same card drawn in process without heatmaps: plain pictures in the rows.
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var plain = new Classifier(new ImageDecoder(new ImageLimits())).Classify(bundle, png, new ExplainOptions(TopPrototypes: 2));
        using var drawing = grey.Clone(context => context.Resize(2049, 1951));
        using var withoutHeatmaps = ExplanationCard.Render(bundle, drawing, plain);

        static int Differing(Image<Rgb24> a, Image<Rgb24> b)
        {
            Assert.Equal((a.Width, a.Height), (b.Width, b.Height));
            var differing = 0;
            for (var y = 0; y < a.Height; y++)
            for (var x = 0; x < a.Width; x++)
            {
                if (a[x, y] != b[x, y]) differing++;
            }
            return differing;
        }
        // The same uniform grey to the network either way, so the same prototypes and rows, each "this" picture with its
        // heatmap: the two cards differ only by resampling, and both from the card without heatmaps. (When the card drew
        // heatmaps only for images decoded to at most 4 megapixels, the PNG's card was the one without.)
        Assert.True(Differing(full, drafted) < 5000, $"{Differing(full, drafted)} pixels differ: both cards should carry heatmaps");
        Assert.True(Differing(full, withoutHeatmaps) > 5000, $"only {Differing(full, withoutHeatmaps)} pixels differ from a card without heatmaps");
        Assert.True(Differing(drafted, withoutHeatmaps) > 5000);
    }

    [Fact]
    public async Task RotatedExifJpegGivesTheSameAnswerAsTheUprightImage()
    {
        // Store the pixels rotated 90 degrees counter-clockwise with EXIF orientation 6 ("rotate 90 clockwise to view").
        using var upright = Image.Load<Rgb24>(Http.BundleImage(bundles.SmokeBundle, 4, 64, 48));
        using var stored = upright.Clone(context => context.Rotate(RotateMode.Rotate270));
        stored.Metadata.ExifProfile = new ExifProfile();
        stored.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);
        var jpeg = Http.Encode(stored, new JpegEncoder { Quality = 90 });

        // The upright reference holds exactly the JPEG's decoded pixels, turned by hand and stored losslessly: decoded
        // as the service decodes a JPEG (libjpeg-turbo), without the orientation, which TurboJPEG does not read.
        using var decodedStored = TurboJpeg.TryDecode(jpeg, 48, 64, 1, Configuration.Default);
        Assert.NotNull(decodedStored);
        Assert.Equal(48, decodedStored.Width);
        decodedStored.Metadata.ExifProfile = null;
        decodedStored.Mutate(context => context.Rotate(RotateMode.Rotate90));
        var reference = Http.Encode(decodedStored, new PngEncoder());

        var rotated = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=4", Http.Raw(jpeg, "image/jpeg")));
        var expected = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=4", Http.Raw(reference, "image/png")));
        Assert.Equal(64, rotated.GetProperty("image").GetProperty("width").GetInt32());
        Assert.Equal(48, rotated.GetProperty("image").GetProperty("height").GetInt32());
        Assert.Equal(Strip(expected.GetProperty("topClasses")), Strip(rotated.GetProperty("topClasses")));
        Assert.Equal(Strip(expected.GetProperty("explanation")), Strip(rotated.GetProperty("explanation")));
    }

    /// <summary>
    /// A JPEG whose EXIF Exif directory points at itself (ImageSharp throws when it first reads such a block; the
    /// service answered 500): classified as stored, like the file without the block, alone and in a batch.
    /// </summary>
    [Fact]
    public async Task AJpegWithAnUnreadableExifBlockIsClassifiedAsStored()
    {
        using var upright = Image.Load<Rgb24>(Http.BundleImage(bundles.SmokeBundle, 4, 64, 48));
        var plain = Http.Encode(upright, new JpegEncoder { Quality = 90 });
        byte[] loop = [(byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x69, 0x87, 4, 0, 1, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0];
        byte[] withExif = [.. plain[..2], 0xFF, 0xE1, 0, (byte)(8 + loop.Length), .. "Exif\0\0"u8, .. loop, .. plain[2..]];

        var response = await Client.PostAsync("/classify?topClasses=4", Http.Raw(withExif, "image/jpeg"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var expected = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=4", Http.Raw(plain, "image/jpeg")));
        var answer = await Http.JsonAsync(response);
        Assert.Equal(Strip(expected.GetProperty("topClasses")), Strip(answer.GetProperty("topClasses")));
        var batch = await Http.JsonAsync(await Client.PostAsync("/classify/batch?topClasses=4", Http.Multipart(("image", withExif, "image/jpeg"))));
        Assert.Equal(Strip(expected.GetProperty("topClasses")), Strip(batch.GetProperty("results")[0].GetProperty("topClasses")));
    }

    [Theory]
    [InlineData("image/bmp", true)]
    [InlineData("image/tiff", true)]
    [InlineData("image/webp", true)]
    [InlineData("image/gif", false)]
    [InlineData("image/jpeg", false)]
    public async Task EveryAcceptedFormatIsClassifiedLikeThePng(string contentType, bool lossless)
    {
        using var image = Image.Load<Rgb24>(Http.BundleImage(bundles.SmokeBundle, 3));
        SixLabors.ImageSharp.Formats.IImageEncoder encoder = contentType switch
        {
            "image/bmp" => new SixLabors.ImageSharp.Formats.Bmp.BmpEncoder(),
            "image/tiff" => new SixLabors.ImageSharp.Formats.Tiff.TiffEncoder(),
            "image/webp" => new SixLabors.ImageSharp.Formats.Webp.WebpEncoder { FileFormat = SixLabors.ImageSharp.Formats.Webp.WebpFileFormatType.Lossless },
            "image/gif" => new SixLabors.ImageSharp.Formats.Gif.GifEncoder(),
            _ => new JpegEncoder { Quality = 95 },
        };
        var png = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=4", Http.Raw(Http.Encode(image, new PngEncoder()), "image/png")));
        var other = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=4", Http.Raw(Http.Encode(image, encoder), contentType)));
        Assert.Equal(32, other.GetProperty("image").GetProperty("width").GetInt32());
        if (lossless)
        {
            Assert.Equal(Strip(png.GetProperty("topClasses")), Strip(other.GetProperty("topClasses")));
            Assert.Equal(Strip(png.GetProperty("explanation")), Strip(other.GetProperty("explanation")));
        }
        else
        {
            // Lossy encodings change pixels a little; the predicted class of a clear training image stays.
            Assert.Equal(png.GetProperty("prediction").GetProperty("classIndex").GetInt32(), other.GetProperty("prediction").GetProperty("classIndex").GetInt32());
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]   // the last of the smoke model's 4 classes
    public async Task ExplainClassExplainsTheRequestedClass(int explained)
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var body = await Http.JsonAsync(await Client.PostAsync($"/classify?explainClass={explained}&topClasses=4&topPrototypes=8", Http.Image(image)));
        var explanation = body.GetProperty("explanation");
        Assert.Equal(explained, explanation.GetProperty("classIndex").GetInt32());
        var logit = body.GetProperty("topClasses").EnumerateArray().Single(c => c.GetProperty("classIndex").GetInt32() == explained).GetProperty("logit").GetDouble();
        Assert.Equal(logit, explanation.GetProperty("logit").GetDouble(), 1e-12);
        var contributions = explanation.GetProperty("prototypes").EnumerateArray().Select(p => p.GetProperty("contribution").GetDouble()).ToArray();
        // Largest contribution first, evidence against the class last: not by size alone, which puts a large negative
        // contribution (another class's prototype, weighted against this one) before the class's own evidence.
        Assert.Equal(contributions.OrderByDescending(c => c), contributions);
        var parts = contributions.Sum();
        Assert.Equal(0.0, explanation.GetProperty("otherPrototypesContribution").GetDouble(), 1e-12); // all 8 prototypes shown
        Assert.Equal(logit, parts, 1e-3);

        // Each prototype is named with its own class, as the model lists it, not with the class explained.
        var listed = (await Http.JsonAsync(await Client.GetAsync($"/models/smoke/versions/{Path.GetFileName(bundles.SmokeBundle)}/prototypes")))
            .GetProperty("prototypes").EnumerateArray().ToDictionary(p => p.GetProperty("index").GetInt32(),
                p => (p.GetProperty("classIndex").GetInt32(), p.GetProperty("label").GetString()));
        var named = explanation.GetProperty("prototypes").EnumerateArray().Select(p => (p.GetProperty("prototypeIndex").GetInt32(),
            (p.GetProperty("classIndex").GetInt32(), p.GetProperty("label").GetString()))).ToArray();
        Assert.Equal(8, named.Length);
        foreach (var (index, classAndLabel) in named) Assert.Equal(listed[index], classAndLabel);
        Assert.Contains(named, n => n.Item2.Item1 != explained);
    }

    [Fact]
    public async Task GrayModelClassifiesAColourUpload()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 1, 56, 56);
        var body = await Http.JsonAsync(await Client.PostAsync("/classify?model=gray&topPrototypes=6", Http.Image(image)));
        Assert.Equal("gray", body.GetProperty("model").GetProperty("name").GetString());
        Assert.Equal(56, body.GetProperty("image").GetProperty("width").GetInt32());
        var explanation = body.GetProperty("explanation");
        var parts = explanation.GetProperty("prototypes").EnumerateArray().Sum(p => p.GetProperty("contribution").GetDouble());
        Assert.Equal(explanation.GetProperty("logit").GetDouble(), parts + explanation.GetProperty("otherPrototypesContribution").GetDouble(), 1e-3);
    }

    [Fact]
    public async Task ModelCanBeNamedWithItsVersion()
    {
        var version = Path.GetFileName(bundles.SmokeBundle);
        var body = await Http.JsonAsync(await Client.PostAsync($"/classify?model=smoke@{version}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))));
        Assert.Equal(version, body.GetProperty("model").GetProperty("version").GetString());
    }

    /// <summary>An empty model parameter (a form with nothing chosen) is the default model, as no parameter is (API.md).</summary>
    [Fact]
    public async Task AnEmptyModelParameterIsTheDefaultModel()
    {
        async Task<string> AnsweredByAsync(string query) => (await Http.JsonAsync(await Client.PostAsync("/classify" + query,
            Http.Image(Http.BundleImage(bundles.SmokeBundle, 0))))).GetProperty("model").GetProperty("name").GetString()!;
        var defaultModel = await AnsweredByAsync("");
        Assert.Equal(defaultModel, await AnsweredByAsync("?model="));
        Assert.Equal(defaultModel, await AnsweredByAsync("?model=%20"));
    }

    [Fact]
    public async Task BatchAnswersEachImageInOrderWithPerItemProblems()
    {
        // A test image, not a prototype's own training image: there a distance is 0 up to rounding, and the log
        // similarity's slope of 1/epsilon (1e4) turns a batch's other rounding into 0.02 of a logit (docs/API.md).
        var first = File.ReadAllBytes(Path.Combine(bundles.SmokeBundle, "examples", "1.png"));
        var third = Http.BundleImage(bundles.SmokeBundle, 6, 40, 40);
        var content = Http.Multipart(("image", first, "image/png"), ("image", "not an image"u8.ToArray(), "image/png"), ("image", third, "image/png"));
        var body = await Http.JsonAsync(await Client.PostAsync("/classify/batch?topClasses=2", content));
        var results = body.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal(3, results.Length);
        Assert.Equal(400, results[1].GetProperty("status").GetInt32());
        Assert.EndsWith("image-not-decodable", results[1].GetProperty("type").GetString());
        // The request's trace id, as every problem has it, to find the request's log line.
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", results[1].GetProperty("traceId").GetString());

        var single1 = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=2", Http.Image(first)));
        var single3 = await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=2", Http.Image(third)));
        AssertSameAnswer(single1, results[0]);
        AssertSameAnswer(single3, results[2]);
        Assert.Equal(40, results[2].GetProperty("image").GetProperty("width").GetInt32());
    }

    /// <summary>
    /// Same classes, prototypes and boxes; numbers within the bundle contract's tolerance (ONNX Runtime
    /// picks different kernels for a batch of 2 and a batch of 1, and log similarities amplify float32 rounding).
    /// </summary>
    private static void AssertSameAnswer(JsonElement expected, JsonElement actual)
    {
        foreach (var (e, a) in expected.GetProperty("topClasses").EnumerateArray().Zip(actual.GetProperty("topClasses").EnumerateArray()))
        {
            Assert.Equal(e.GetProperty("classIndex").GetInt32(), a.GetProperty("classIndex").GetInt32());
            AssertClose(e.GetProperty("logit").GetDouble(), a.GetProperty("logit").GetDouble());
        }
        var expectedPrototypes = expected.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        var actualPrototypes = actual.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(expectedPrototypes.Length, actualPrototypes.Length);
        foreach (var (e, a) in expectedPrototypes.Zip(actualPrototypes))
        {
            Assert.Equal(e.GetProperty("prototypeIndex").GetInt32(), a.GetProperty("prototypeIndex").GetInt32());
            Assert.Equal(e.GetProperty("box").GetRawText(), a.GetProperty("box").GetRawText());
            AssertClose(e.GetProperty("contribution").GetDouble(), a.GetProperty("contribution").GetDouble());
        }
    }

    /// <summary>The bundle contract's tolerance, 1e-3 + 1e-3 * |expected|.</summary>
    private static void AssertClose(double expected, double actual) =>
        Assert.True(BundleLoader.WithinTolerance(actual, expected), $"{actual} differs from {expected} by more than 1e-3 + 1e-3*|expected|");

    /// <summary>The JSON text with numbers rounded to 5 significant digits (batched and single runs may differ in the last float bits).</summary>
    private static string Strip(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", element.EnumerateObject().Select(p => p.Name + ":" + Strip(p.Value))) + "}",
        JsonValueKind.Array => "[" + string.Join(",", element.EnumerateArray().Select(Strip)) + "]",
        JsonValueKind.Number => element.GetDouble().ToString("G5", System.Globalization.CultureInfo.InvariantCulture),
        _ => element.GetRawText(),
    };
}
