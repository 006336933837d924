using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using ProtoPNet.Tests.Shared;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Web.Tests;

/// <summary>The web page at / in headless Chromium against the running service: what a person sees and can do.</summary>
[Collection(WebCollection.Name)]
public sealed class WebPageTests(WebFixture fixture)
{
    private Task<IPage> OpenAsync(int width = 1100, int height = 900) => fixture.OpenPageAsync(width, height);

    /// <summary>What POST /classify says about an image, to compare the page with.</summary>
    private async Task<JsonElement> ClassifyAsync(string path, int topPrototypes, bool verify = false, int? explainClass = null)
    {
        using var content = new MultipartFormDataContent();
        var file = new ByteArrayContent(await File.ReadAllBytesAsync(path));
        file.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        content.Add(file, "image", Path.GetFileName(path));
        using var response = await fixture.Http.PostAsync(
            $"classify?model={fixture.ModelName}&topPrototypes={topPrototypes}" + (verify ? "&verify=true" : "")
            + (explainClass is { } index ? $"&explainClass={index}" : ""), content);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>What the page's Content-Security-Policy blocked since it opened: nothing, or the policy broke the page.</summary>
    private static async Task<string[]> PolicyViolationsAsync(IPage page) => await page.EvaluateAsync<string[]>("() => window.cspViolations");

    private static Task WaitForResultAsync(IPage page) => WebFixture.WaitForResultAsync(page);

    [Fact]
    public async Task Uploading_an_image_shows_the_prediction_boxes_and_prototype_pictures()
    {
        var image = fixture.SourceImage(0);
        var expected = await ClassifyAsync(image, topPrototypes: 3);
        var page = await OpenAsync();

        await page.SetInputFilesAsync("#file", image);
        await WaitForResultAsync(page);

        // The predicted label is the service's, with its probability.
        var label = expected.GetProperty("prediction").GetProperty("label").GetString()!;
        Assert.Equal(label, await page.TextContentAsync("#prediction"));
        // Probabilities as the card writes them: one decimal, and never rounded to certainty or to none.
        var probability = expected.GetProperty("prediction").GetProperty("probability").GetDouble();
        Assert.StartsWith($"{ProtoPNet.Inference.Rendering.ExplanationCard.Percent(probability)} probability, by ", await page.TextContentAsync("#prediction-detail"));
        Assert.Equal(3, await page.Locator("#top-classes li").CountAsync());
        var topClasses = expected.GetProperty("topClasses").EnumerateArray().ToArray();
        for (var i = 0; i < topClasses.Length; i++)
        {
            Assert.Equal(ProtoPNet.Inference.Rendering.ExplanationCard.Percent(topClasses[i].GetProperty("probability").GetDouble()),
                await page.Locator("#top-classes li").Nth(i).Locator("span").First.TextContentAsync());
        }

        // One row per explained prototype, in the service's order.
        var rows = page.Locator("#prototype-rows .proto-row");
        var prototypes = expected.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        Assert.Equal(prototypes.Length, await rows.CountAsync());
        for (var i = 0; i < prototypes.Length; i++)
        {
            var row = rows.Nth(i);
            Assert.Equal(prototypes[i].GetProperty("prototypeIndex").GetInt32().ToString(), await row.GetAttributeAsync("data-prototype"));
            // The uploaded image with its box, the heatmap with the box, the prototype's patch and its training image with its box.
            foreach (var selector in new[] { "img.upload", "img.heatmap", "img.patch", "img.source" })
            {
                var picture = row.Locator(selector);
                Assert.True(await picture.EvaluateAsync<bool>("i => i.complete && i.naturalWidth > 0"), $"row {i}: {selector} is not loaded");
                Assert.False(string.IsNullOrWhiteSpace(await picture.GetAttributeAsync("alt")), $"row {i}: {selector} has no alt text");
            }
            var patchSource = await row.Locator("img.patch").GetAttributeAsync("src");
            Assert.EndsWith($"/prototypes/{prototypes[i].GetProperty("prototypeIndex").GetInt32()}/patch.png", patchSource);
            var boxes = row.Locator(".box");
            Assert.Equal(3, await boxes.CountAsync());
            for (var b = 0; b < 3; b++)
            {
                var bounds = await boxes.Nth(b).BoundingBoxAsync();
                Assert.NotNull(bounds);
                Assert.True(bounds.Width > 0 && bounds.Height > 0, $"row {i}: box {b} has no size");
            }
            var points = await row.Locator(".points").TextContentAsync();
            var p = prototypes[i];
            Assert.Equal(
                $"similarity {p.GetProperty("similarity").GetDouble():0.00} \u00d7 weight {p.GetProperty("weight").GetDouble():0.000} = {p.GetProperty("contribution").GetDouble():0.00} points",
                points);
        }

        // The overview: the uploaded image with one numbered box per prototype, placed where the service said.
        var overviewBoxes = page.Locator("#overview-boxed .box");
        Assert.Equal(prototypes.Length, await overviewBoxes.CountAsync());
        var imageBounds = (await page.Locator("#overview-boxed img").BoundingBoxAsync())!;
        var firstBox = (await overviewBoxes.First.BoundingBoxAsync())!;
        var imageWidth = expected.GetProperty("image").GetProperty("width").GetDouble();
        var box = prototypes[0].GetProperty("box");
        Assert.Equal(box.GetProperty("x").GetDouble() / imageWidth * imageBounds.Width, firstBox.X - imageBounds.X, precision: 0);
        Assert.Equal(box.GetProperty("width").GetDouble() / imageWidth * imageBounds.Width, firstBox.Width, precision: 0);

        Assert.Contains("the score (logit)", await page.TextContentAsync("#explanation-total"));
        Assert.True(await page.Locator("#error").IsHiddenAsync());
        // The page runs under its policy (no framing by other sites, only its own scripts) and the policy blocked nothing.
        using var served = await fixture.Http.GetAsync("/");
        Assert.Contains("frame-ancestors 'none'", served.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", served.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebFixture.ArtifactsDirectory, "page.png"), FullPage = true });
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Uploading_a_text_file_shows_a_readable_message()
    {
        var page = await OpenAsync();
        await page.SetInputFilesAsync("#file", new FilePayload
        {
            Name = "notes.txt", MimeType = "text/plain", Buffer = "this is not an image"u8.ToArray(),
        });
        var error = page.Locator("#error");
        await error.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });

        // The problem's title and detail, not a status code or raw JSON.
        var text = await error.TextContentAsync();
        Assert.Contains("notes.txt: The image cannot be decoded", text);   // named, as the status named it
        Assert.Contains("not an image in a supported format", text);
        Assert.DoesNotContain("{", text);
        Assert.Equal("alert", await error.GetAttributeAsync("role"));
        Assert.True(await page.Locator("#result").IsHiddenAsync());
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebFixture.ArtifactsDirectory, "page-error.png") });
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    /// <summary>The service reads TIFF, which no browser shows: the answer is shown with its boxes on a blank of the image's size.</summary>
    [Fact]
    public async Task A_format_the_browser_cannot_show_is_explained_on_a_blank_of_its_size()
    {
        var tiff = Path.Combine(WebFixture.ArtifactsDirectory, "upload.tiff");
        using (var image = await Image.LoadAsync(fixture.SourceImage(0))) await image.SaveAsTiffAsync(tiff);
        var page = await OpenAsync();
        await page.SetInputFilesAsync("#file", tiff);
        await WaitForResultAsync(page);

        Assert.Contains("cannot show the file's format", await page.TextContentAsync("#status"));
        Assert.StartsWith("data:image/svg+xml", await page.GetAttributeAsync("#overview-boxed img", "src"));
        Assert.True(await page.Locator("#error").IsHiddenAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Example_images_of_the_bundle_can_be_picked_with_the_keyboard()
    {
        var page = await OpenAsync();
        var examples = page.Locator("#example-list button");
        await page.Locator("#examples").WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });
        Assert.Equal(fixture.ExampleCount, await examples.CountAsync());
        Assert.True(await examples.First.Locator("img").EvaluateAsync<bool>("i => i.complete && i.naturalWidth > 0"));

        // Tab from the file input reaches the first example; Enter classifies it.
        await page.FocusAsync("#file");
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal(await examples.First.GetAttributeAsync("data-url"), await page.EvaluateAsync<string>("() => document.activeElement.dataset.url"));
        await page.Keyboard.PressAsync("Enter");
        await WaitForResultAsync(page);

        var url = (await examples.First.GetAttributeAsync("data-url"))!;
        var expected = await ClassifyExampleAsync(url);
        Assert.Equal(expected, await page.TextContentAsync("#prediction"));
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    private async Task<string> ClassifyExampleAsync(string url)
    {
        var bytes = await fixture.Http.GetByteArrayAsync(url.TrimStart('/'));
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        using var response = await fixture.Http.PostAsync($"classify?model={fixture.ModelName}", content);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("prediction").GetProperty("label").GetString()!;
    }

    [Fact]
    public async Task Dropping_an_image_on_the_drop_zone_classifies_it()
    {
        var image = fixture.SourceImage(1);
        var expected = await ClassifyAsync(image, topPrototypes: 3);
        var page = await OpenAsync();
        var bytes = (await File.ReadAllBytesAsync(image)).Select(b => (int)b).ToArray();
        // What a browser does when a file is dragged from the desktop: dragenter/dragover, then drop with the file.
        await page.EvaluateAsync("""
            bytes => {
              const transfer = new DataTransfer();
              transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png", { type: "image/png" }));
              const zone = document.getElementById("drop-zone");
              for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
              }
            }
            """, bytes);
        await WaitForResultAsync(page);
        Assert.Equal(expected.GetProperty("prediction").GetProperty("label").GetString(), await page.TextContentAsync("#prediction"));
        // The status, which a screen reader announces, gives the answer first.
        var probability = ProtoPNet.Inference.Rendering.ExplanationCard.Percent(expected.GetProperty("prediction").GetProperty("probability").GetDouble());
        Assert.StartsWith($"{expected.GetProperty("prediction").GetProperty("label").GetString()}, {probability}. Done in ", await page.TextContentAsync("#status"));
        Assert.DoesNotContain("dragging", await page.GetAttributeAsync("#drop-zone", "class"));
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    /// <summary>An image pasted anywhere on the classify view, or dropped beside the drop zone, is classified (not opened by the browser).</summary>
    [Fact]
    public async Task Pasting_an_image_or_dropping_it_beside_the_drop_zone_classifies_it()
    {
        var image = fixture.SourceImage(1);
        var expected = (await ClassifyAsync(image, topPrototypes: 3)).GetProperty("prediction").GetProperty("label").GetString();
        var page = await OpenAsync();
        var bytes = (await File.ReadAllBytesAsync(image)).Select(b => (int)b).ToArray();

        var dropped = await page.EvaluateAsync<bool>("""
            bytes => {
              const transfer = new DataTransfer();
              transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png", { type: "image/png" }));
              const beside = document.getElementById("classify-title");
              beside.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
              // false when the page cancelled it: the browser does not open the file in its place
              return beside.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }
            """, bytes);
        Assert.False(dropped, "the drop beside the zone was not cancelled: the browser would leave the page for the file");
        await WaitForResultAsync(page);
        Assert.Equal(expected, await page.TextContentAsync("#prediction"));

        await page.EvaluateAsync("() => { document.getElementById('result').hidden = true; }");
        await page.EvaluateAsync("""
            bytes => {
              const clipboard = new DataTransfer();
              clipboard.items.add(new File([new Uint8Array(bytes)], "image.png", { type: "image/png" }));
              document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: clipboard, bubbles: true, cancelable: true }));
            }
            """, bytes);
        await WaitForResultAsync(page);
        Assert.Equal(expected, await page.TextContentAsync("#prediction"));
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    /// <summary>An image chosen while an example is still downloading is newer: its answer is the one shown.</summary>
    [Fact]
    public async Task An_image_chosen_while_an_example_downloads_wins_over_the_example()
    {
        var upload = Path.Combine(fixture.WorkDirectory, "newer-than-the-example.png");
        using (var source = await SixLabors.ImageSharp.Image.LoadAsync(fixture.SourceImage(0)))
        {
            source.Mutate(context => context.Resize(75, 45));   // a size no example has
            await source.SaveAsPngAsync(upload);
        }
        var page = await OpenAsync();
        await page.Locator("#examples").WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });
        var exampleServed = new TaskCompletionSource();
        await page.RouteAsync("**/examples/**", async route =>
        {
            var clicked = route.Request.ResourceType == "fetch";   // not a thumbnail
            if (clicked) await Task.Delay(2000);   // a slow download
            await route.ContinueAsync();
            if (clicked) exampleServed.TrySetResult();
        });

        await page.Locator("#example-list button").First.ClickAsync();
        await page.SetInputFilesAsync("#file", upload);
        await exampleServed.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await WaitForResultAsync(page);
        await page.WaitForTimeoutAsync(1500);   // time for the example's answer, had it been sent

        Assert.Equal(75, await page.EvaluateAsync<int>("() => document.querySelector('#overview-boxed img').naturalWidth"));
        Assert.True(await page.Locator("#error").IsHiddenAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    /// <summary>A failure answered by something other than the service (a proxy's HTML error page) shows its status line.</summary>
    [Fact]
    public async Task A_failure_without_a_problem_body_shows_the_status_line()
    {
        var page = await OpenAsync();
        await page.RouteAsync("**/classify?**", route => route.FulfillAsync(new RouteFulfillOptions
        {
            Status = 502, ContentType = "text/html", Body = "<html><body><h1>502 Bad Gateway</h1></body></html>",
        }));
        await page.SetInputFilesAsync("#file", fixture.SourceImage(0));
        var error = page.Locator("#error");
        await error.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });

        var text = (await error.TextContentAsync())!;
        Assert.Contains("The service answered 502", text);
        Assert.DoesNotContain("[object", text);
        Assert.DoesNotContain("undefined", text);
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    /// <summary>A failure that comes while another view is shown waits for its own view: not shown on the gallery, shown back on classify.</summary>
    [Fact]
    public async Task A_failure_of_a_view_not_shown_waits_for_that_view()
    {
        var page = await OpenAsync();
        var answered = new TaskCompletionSource();
        await page.RouteAsync("**/classify?**", async route =>
        {
            await Task.Delay(1500);   // the user has moved on meanwhile
            await route.FulfillAsync(new RouteFulfillOptions { Status = 502, ContentType = "text/html", Body = "<html>Bad Gateway</html>" });
            answered.TrySetResult();
        });
        await page.SetInputFilesAsync("#file", fixture.SourceImage(0));
        await page.EvaluateAsync("() => { location.hash = 'gallery'; }");
        await answered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await page.WaitForTimeoutAsync(500);
        Assert.True(await page.Locator("#error").IsHiddenAsync(), "the classify view's failure is shown on the gallery");

        await page.EvaluateAsync("() => { location.hash = 'classify'; }");
        var error = page.Locator("#error");
        await error.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });
        Assert.Contains("The service answered 502", await error.TextContentAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    /// <summary>The "Prototypes to show" field shows the count the page asks for: out of range, it is corrected to it.</summary>
    [Fact]
    public async Task The_prototypes_field_shows_the_count_asked_for()
    {
        var page = await OpenAsync();
        foreach (var (typed, sent, image) in new[] { ("50", 10, 0), ("0", 1, 1) })
        {
            await page.FillAsync("#top-prototypes", typed);
            var request = await page.RunAndWaitForRequestAsync(() => page.SetInputFilesAsync("#file", fixture.SourceImage(image)),
                r => r.Url.Contains("/classify?", StringComparison.Ordinal));
            Assert.Contains($"topPrototypes={sent}&", request.Url);
            await WaitForResultAsync(page);
            Assert.Equal(sent.ToString(System.Globalization.CultureInfo.InvariantCulture), await page.InputValueAsync("#top-prototypes"));
        }
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Large_photos_are_explained_without_full_size_heatmaps()
    {
        // 2100 x 2000 = 4.2 megapixels: over the page's heatmap limit of 4 megapixels.
        var path = Path.Combine(fixture.WorkDirectory, "large.png");
        using (var source = SixLabors.ImageSharp.Image.Load(fixture.SourceImage(0)))
        {
            source.Mutate(context => context.Resize(2100, 2000, KnownResamplers.NearestNeighbor));
            await source.SaveAsPngAsync(path);
        }
        var page = await OpenAsync();
        await page.SetInputFilesAsync("#file", path);
        await WaitForResultAsync(page);

        Assert.Equal(3, await page.Locator("#prototype-rows .proto-row").CountAsync());
        Assert.Equal(0, await page.Locator("#prototype-rows img.heatmap").CountAsync());
        Assert.Equal(3, await page.Locator("#prototype-rows img.upload").CountAsync());
        Assert.Contains("Heatmaps are left out", await page.TextContentAsync("#status"));
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_unfamiliar_image_gets_a_notice_above_the_explanation()
    {
        // A flat mid-grey picture: none of its parts looks like a prototype of the synthetic shapes.
        var path = Path.Combine(fixture.WorkDirectory, "grey.png");
        using (var grey = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(32, 32, new SixLabors.ImageSharp.PixelFormats.Rgb24(128, 128, 128)))
        {
            await grey.SaveAsPngAsync(path);
        }
        var classified = await ClassifyAsync(path, topPrototypes: 3);
        Assert.True(classified.GetProperty("unfamiliar").GetBoolean());
        var page = await OpenAsync();

        await page.SetInputFilesAsync("#file", path);
        await WaitForResultAsync(page);
        var notice = page.Locator("#unfamiliar-notice");
        Assert.True(await notice.IsVisibleAsync());
        Assert.Contains("does not look like anything this model has learned", await notice.TextContentAsync());
        // The share the threshold flags (the smoke bundle's 1%), not the share it lets through: at 50% the two would read alike.
        var share = classified.GetProperty("unfamiliarity").GetProperty("calibration").GetProperty("targetShare").GetDouble();
        Assert.True(share < 0.5, $"the smoke bundle's threshold flags {share} of its images, so the share's direction is not tested");
        Assert.Equal($"Its closest match to any prototype is weaker than for all but {ProtoPNet.Inference.Rendering.ExplanationCard.Percent(share)} of the images "
            + "the model's threshold was set on, so the prediction below is only the least bad guess.", await page.TextContentAsync("#unfamiliar-detail"));
        Assert.Equal("alert", await notice.GetAttributeAsync("role"));
        var noticeBox = await notice.BoundingBoxAsync();
        var explanationBox = await page.Locator("#why-title").BoundingBoxAsync();
        Assert.True(noticeBox!.Y + noticeBox.Height <= explanationBox!.Y, "the notice is not above the explanation");

        // A training image of the model's own: the notice goes away.
        Assert.False((await ClassifyAsync(fixture.SourceImage(0), topPrototypes: 3)).GetProperty("unfamiliar").GetBoolean());
        await page.SetInputFilesAsync("#file", fixture.SourceImage(0));
        await page.WaitForFunctionAsync("() => document.getElementById('unfamiliar-notice').hidden");
        Assert.False(await notice.IsVisibleAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_page_fits_a_phone_width_screen()
    {
        const int Width = 360;
        var page = await OpenAsync(width: Width, height: 740);
        // A model whose name is longer than the screen is wide (names may have 128 characters): its menu entry shrinks.
        await page.EvaluateAsync("""
            () => { for (const id of ["model", "gallery-model"]) document.getElementById(id).append(new Option("a-model-with-a-name-much-longer-than-a-phone-screen-is-wide (10 classes, 100 prototypes)", "long")); }
            """);
        await page.SetInputFilesAsync("#file", fixture.SourceImage(1));
        await WaitForResultAsync(page);

        // Nothing wider than the screen: no sideways scrolling, in any view.
        async Task<int> ScrollWidthAsync() => await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        var scrollWidth = await ScrollWidthAsync();
        Assert.True(scrollWidth <= Width, $"the page is {scrollWidth} px wide on a {Width} px screen");
        foreach (var view in new[] { "gallery", "training" })
        {
            await page.EvaluateAsync("view => { location.hash = view; }", view);
            await page.WaitForFunctionAsync("view => !document.getElementById('view-' + view).hidden", view);
            var width = await ScrollWidthAsync();
            Assert.True(width <= Width, $"the {view} view is {width} px wide on a {Width} px screen");
        }
        await page.EvaluateAsync("() => { location.hash = 'classify'; }");
        await page.WaitForFunctionAsync("() => !document.getElementById('view-classify').hidden");
        var patch = await page.Locator("#prototype-rows .proto-row img.patch").First.BoundingBoxAsync();
        Assert.True(patch!.Width >= 80, $"prototype pictures shrink to {patch.Width} px");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebFixture.ArtifactsDirectory, "page-phone.png"), FullPage = true });
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_gallery_shows_every_prototype_grouped_by_class()
    {
        var page = await OpenAsync();
        await page.ClickAsync("#tab-gallery");
        await page.WaitForFunctionAsync(
            "() => document.querySelectorAll('#gallery-classes li').length > 0 && [...document.querySelectorAll('#gallery-classes img')].every(i => i.complete && i.naturalWidth > 0)");

        using var listing = JsonDocument.Parse(await fixture.Http.GetStringAsync($"models/{fixture.ModelName}"));
        var version = listing.RootElement.GetProperty("defaultVersion").GetString();
        using var prototypes = JsonDocument.Parse(await fixture.Http.GetStringAsync($"models/{fixture.ModelName}/versions/{version}/prototypes"));
        var byClass = prototypes.RootElement.GetProperty("prototypes").EnumerateArray()
            .GroupBy(p => p.GetProperty("classIndex").GetInt32()).ToDictionary(g => g.Key, g => g.Select(p => p.GetProperty("index").GetInt32().ToString()).ToArray());

        var sections = page.Locator("#gallery-classes section.gallery-class");
        Assert.Equal(listing.RootElement.GetProperty("classes").GetArrayLength(), await sections.CountAsync());
        foreach (var (classIndex, members) in byClass)
        {
            var shown = await page.Locator($"#gallery-class-{classIndex} ~ ul > li").EvaluateAllAsync<string[]>("items => items.map(i => i.dataset.prototype)");
            Assert.Equal(members, shown);
        }
        // Patches are drawn large enough to see (they are a few pixels in the bundle), with alt text.
        var widths = await page.Locator("#gallery-classes li img").EvaluateAllAsync<double[]>("images => images.map(i => i.getBoundingClientRect().width)");
        Assert.All(widths, width => Assert.True(width >= 48, $"a gallery picture is only {width} px wide"));
        Assert.All(await page.Locator("#gallery-classes img").EvaluateAllAsync<string[]>("images => images.map(i => i.alt)"), alt => Assert.False(string.IsNullOrWhiteSpace(alt)));
        Assert.Equal("page", await page.GetAttributeAsync("#tab-gallery", "aria-current"));
        Assert.True(await page.Locator("#view-classify").IsHiddenAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_gallery_shows_one_class_when_one_is_chosen_and_a_prototypes_class_links_there()
    {
        using var listing = JsonDocument.Parse(await fixture.Http.GetStringAsync($"models/{fixture.ModelName}"));
        var version = listing.RootElement.GetProperty("defaultVersion").GetString();
        using var prototypes = JsonDocument.Parse(await fixture.Http.GetStringAsync($"models/{fixture.ModelName}/versions/{version}/prototypes"));
        var members = prototypes.RootElement.GetProperty("prototypes").EnumerateArray()
            .GroupBy(p => p.GetProperty("classIndex").GetInt32()).ToDictionary(g => g.Key, g => g.Select(p => p.GetProperty("index").GetInt32().ToString()).ToArray());
        var classCount = listing.RootElement.GetProperty("classes").GetArrayLength();
        async Task<string[]> ShownPrototypes(IPage page) =>
            await page.Locator("#gallery-classes li[data-prototype]:visible").EvaluateAllAsync<string[]>("items => items.map(i => i.dataset.prototype)");

        // Each class in the menu, with its count; chosen, its prototypes alone; "All classes", every one again.
        var page = await OpenAsync();
        await page.ClickAsync("#tab-gallery");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#gallery-classes li').length > 0");
        Assert.Equal(classCount + 1, await page.Locator("#gallery-class option").CountAsync());
        var chosen = members.Keys.Max();
        await page.SelectOptionAsync("#gallery-class", chosen.ToString());
        Assert.Equal(members[chosen], await ShownPrototypes(page));
        Assert.Equal(1, await page.Locator("#gallery-classes section.gallery-class:visible").CountAsync());
        await page.SelectOptionAsync("#gallery-class", "");
        Assert.Equal(members.Values.SelectMany(m => m).Count(), (await ShownPrototypes(page)).Length);

        // From an explanation: a prototype's class link opens the gallery on that class.
        await page.ClickAsync("#tab-classify");
        await page.SetInputFilesAsync("#file", fixture.SourceImage(0));
        await WaitForResultAsync(page);
        var expected = await ClassifyAsync(fixture.SourceImage(0), topPrototypes: 3);
        var first = expected.GetProperty("explanation").GetProperty("prototypes")[0];
        var classIndex = first.GetProperty("classIndex").GetInt32();
        await page.Locator("#prototype-rows .proto-row").First.Locator("a.class-link").ClickAsync();
        await page.WaitForFunctionAsync($"() => location.hash === '#gallery' && document.getElementById('gallery-class').value === '{classIndex}'");
        Assert.Equal(members[classIndex], await ShownPrototypes(page));
        Assert.Equal($"all prototypes of {first.GetProperty("label").GetString()}",
            await page.Locator("#view-classify .proto-row a.class-link").First.TextContentAsync());
        Assert.True(await page.Locator("#error").IsHiddenAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Checking_the_explanation_shows_the_probability_without_each_box()
    {
        var image = fixture.SourceImage(0);
        var expected = await ClassifyAsync(image, topPrototypes: 3, verify: true);
        var page = await OpenAsync();

        await page.CheckAsync("#verify");
        await page.SetInputFilesAsync("#file", image);
        await WaitForResultAsync(page);

        var rows = page.Locator("#prototype-rows .proto-row");
        var prototypes = expected.GetProperty("explanation").GetProperty("prototypes").EnumerateArray().ToArray();
        var label = expected.GetProperty("explanation").GetProperty("label").GetString();
        Assert.Equal(prototypes.Length, await rows.CountAsync());
        for (var i = 0; i < prototypes.Length; i++)
        {
            var evidence = rows.Nth(i).Locator(".evidence");
            var without = prototypes[i].GetProperty("probabilityWithoutBox").GetDouble();
            var drop = prototypes[i].GetProperty("drop").GetDouble();
            Assert.Equal(drop, double.Parse((await evidence.GetAttributeAsync("data-drop"))!, System.Globalization.CultureInfo.InvariantCulture), 1e-9);
            var text = await evidence.TextContentAsync();
            Assert.StartsWith($"Without this box: {ProtoPNet.Inference.Rendering.ExplanationCard.Percent(without)} for {label} (drop ", text);
            Assert.EndsWith(drop >= 0.05 ? "This part carries the decision." : "The decision stands without this box alone.", text);
        }
        Assert.Contains("checking the boxes took", await page.TextContentAsync("#status"));
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebFixture.ArtifactsDirectory, "page-verify.png"), FullPage = true });

        // Unchecked, the image is classified again without the check.
        await page.UncheckAsync("#verify");
        await page.WaitForFunctionAsync("() => !document.getElementById('status').textContent.includes('checking') && document.getElementById('status').textContent.includes('. Done in ')");
        Assert.Equal(0, await page.Locator("#prototype-rows .evidence").CountAsync());
        Assert.Equal(prototypes.Length, await rows.CountAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Choosing_another_top_class_explains_why_that_class_scored_what_it_did()
    {
        var image = fixture.SourceImage(0);
        var page = await OpenAsync();
        await page.SetInputFilesAsync("#file", image);
        await WaitForResultAsync(page);
        var predicted = page.Locator("#top-classes li").Nth(0).Locator("button");
        Assert.Equal("true", await predicted.GetAttributeAsync("aria-pressed"));

        // The second class, pressed: the same image, explained for it, with the keyboard's focus kept on its button.
        var second = page.Locator("#top-classes li").Nth(1).Locator("button");
        var classIndex = int.Parse((await second.GetAttributeAsync("data-class"))!);
        var request = await page.RunAndWaitForRequestAsync(() => second.ClickAsync(), r => r.Url.Contains("/classify?", StringComparison.Ordinal));
        Assert.Contains($"explainClass={classIndex}", request.Url);
        await page.WaitForFunctionAsync("() => document.getElementById('why-title').textContent.includes('(not the prediction)')");
        await WaitForResultAsync(page);
        var expected = await ClassifyAsync(image, topPrototypes: 3, explainClass: classIndex);
        var explanation = expected.GetProperty("explanation");
        Assert.Equal(classIndex, explanation.GetProperty("classIndex").GetInt32());
        Assert.Equal($"Why {explanation.GetProperty("label").GetString()}? (not the prediction) This looks like that:", await page.TextContentAsync("#why-title"));
        var shown = await page.Locator("#prototype-rows .proto-row").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.prototype)");
        Assert.Equal(explanation.GetProperty("prototypes").EnumerateArray().Select(p => p.GetProperty("prototypeIndex").GetInt32().ToString()), shown);
        Assert.Equal("true", await page.Locator($"#top-classes button[data-class='{classIndex}']").GetAttributeAsync("aria-pressed"));
        Assert.Equal(classIndex.ToString(), await page.EvaluateAsync<string>("() => document.activeElement.dataset.class"));
        // Its picture is of the same class.
        var card = await page.RunAndWaitForRequestAsync(() => page.ClickAsync("#save-card"), r => r.Url.Contains("/classify/card?", StringComparison.Ordinal));
        Assert.Contains($"explainClass={classIndex}", card.Url);

        // The predicted class, pressed, explains the prediction again; so does a new image.
        request = await page.RunAndWaitForRequestAsync(() => page.Locator("#top-classes li").Nth(0).Locator("button").ClickAsync(),
            r => r.Url.Contains("/classify?", StringComparison.Ordinal));
        Assert.DoesNotContain("explainClass", request.Url);
        await page.WaitForFunctionAsync("() => !document.getElementById('why-title').textContent.includes('(not the prediction)')");
        await page.Locator($"#top-classes li").Nth(1).Locator("button").ClickAsync();
        await page.WaitForFunctionAsync("() => document.getElementById('why-title').textContent.includes('(not the prediction)')");
        request = await page.RunAndWaitForRequestAsync(() => page.SetInputFilesAsync("#file", fixture.SourceImage(1)),
            r => r.Url.Contains("/classify?", StringComparison.Ordinal));
        Assert.DoesNotContain("explainClass", request.Url);
        await page.WaitForFunctionAsync("() => !document.getElementById('why-title').textContent.includes('(not the prediction)')");
        Assert.True(await page.Locator("#error").IsHiddenAsync());
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Save_as_a_picture_saves_the_services_card_of_the_explanation_shown()
    {
        var image = fixture.SourceImage(0);
        var version = Path.GetFileName(fixture.BundleDirectory);
        var page = await OpenAsync();
        await page.FillAsync("#top-prototypes", "2");
        await page.CheckAsync("#verify");
        await page.SetInputFilesAsync("#file", image);
        await WaitForResultAsync(page);

        var cardRequest = await page.RunAndWaitForRequestAsync(async () =>
        {
            var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#save-card"));
            Assert.Equal($"{Path.GetFileNameWithoutExtension(image)} explained by {fixture.ModelName}.png", download.SuggestedFilename);
            // The button is held while the card is made without losing the focus (a disabled button drops it).
            Assert.Equal("save-card", await page.EvaluateAsync<string>("() => document.activeElement.id"));
            var saved = await File.ReadAllBytesAsync((await download.PathAsync())!);

            // The card of what the page shows: the model version that answered, its count and its check.
            using var content = new MultipartFormDataContent();
            var file = new ByteArrayContent(await File.ReadAllBytesAsync(image));
            file.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
            content.Add(file, "image", Path.GetFileName(image));
            using var response = await fixture.Http.PostAsync(
                $"classify/card?model={fixture.ModelName}@{version}&topPrototypes=2&topClasses=3&verify=true", content);
            response.EnsureSuccessStatusCode();
            using var expected = Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(await response.Content.ReadAsByteArrayAsync());
            using var card = Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(saved);
            Assert.Equal(ProtoPNet.Inference.Rendering.ExplanationCard.HeightFor(2), card.Height);
            Assert.Equal(expected.Size(), card.Size());
            var (ours, theirs) = (new byte[card.Width * card.Height * 3], new byte[card.Width * card.Height * 3]);
            card.CopyPixelDataTo(ours);
            expected.CopyPixelDataTo(theirs);
            Assert.True(ours.SequenceEqual(theirs), $"the saved card differs from the service's in {Enumerable.Range(0, ours.Length).Count(i => ours[i] != theirs[i])} of {ours.Length} values");
        }, request => request.Url.Contains("/classify/card?", StringComparison.Ordinal));
        var query = System.Web.HttpUtility.ParseQueryString(new Uri(cardRequest.Url).Query);
        Assert.Equal($"{fixture.ModelName}@{version}", query["model"]);
        Assert.Equal("2", query["topPrototypes"]);
        Assert.Equal("true", query["verify"]);
        Assert.Equal("POST", cardRequest.Method);
        Assert.True(await page.Locator("#error").IsHiddenAsync());
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_gallery_shows_each_prototypes_consistency_and_stability_from_the_scorecard()
    {
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(fixture.BundleDirectory, "model.json")))!;
        var scores = (manifest["interpretability"] ?? throw new Xunit.Sdk.XunitException("the smoke bundle has no interpretability block"))["prototypes"]!.AsArray();
        var page = await OpenAsync();
        await page.ClickAsync("#tab-gallery");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#gallery-classes .badge').length > 0");

        static string Share(double value) => Math.Round(100 * value, MidpointRounding.AwayFromZero).ToString(System.Globalization.CultureInfo.InvariantCulture) + "%";
        var threshold = manifest["interpretability"]!["consistencyThreshold"]?.GetValue<double>() ?? 0.8;
        var low = 0;
        foreach (var score in scores)
        {
            var index = score!["index"]!.GetValue<int>();
            var expected = new List<string>();
            // A measure below the threshold says so in words, not by its colour alone.
            string Badge(string name, double value) => $"{name} {Share(value)}" + (value >= threshold ? "" : ", low");
            if (score["consistency"] is { } consistency) expected.Add(Badge("consistent", consistency.GetValue<double>()));
            if (score["noiseStability"] is { } noise) expected.Add(Badge("noise", noise.GetValue<double>()));
            if (score["jpegStability"] is { } jpeg) expected.Add(Badge("JPEG", jpeg.GetValue<double>()));
            if (score["background"]?.GetValue<bool>() == true) expected.Add("background");
            var shown = await page.Locator($"#gallery-classes li[data-prototype='{index}'] .badge").AllTextContentsAsync();
            Assert.Equal(expected, shown);
            low += expected.Count(text => text.EndsWith(", low", StringComparison.Ordinal));
        }
        Assert.True(low > 0, "the smoke bundle's scorecard has no measure below its threshold, so the words are not tested");
        var summary = await page.TextContentAsync("#gallery-scorecard");
        Assert.Contains($"on {manifest["interpretability"]!["images"]!.GetValue<int>()} test images", summary);
        Assert.Contains("pointing game", summary);
        Assert.True(await page.Locator("#gallery-scorecard").IsVisibleAsync());
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(WebFixture.ArtifactsDirectory, "gallery.png"), FullPage = true });
        Assert.Empty(await PolicyViolationsAsync(page));
        await page.Context.CloseAsync();
    }

    /// <summary>Every field of a scorecard may be null: one with no image count and no headline measure shows no summary (it said "on null test images: .").</summary>
    [Fact]
    public async Task A_scorecard_without_its_headline_numbers_shows_no_summary()
    {
        await WithTheGalleryOfACopyAsync("bare-scorecard",
            manifest => manifest["interpretability"] = new System.Text.Json.Nodes.JsonObject { ["prototypes"] = manifest["interpretability"]!["prototypes"]!.DeepClone() },
            async page =>
            {
                Assert.False(await page.Locator("#gallery-scorecard").IsVisibleAsync());
                Assert.Equal("", await page.TextContentAsync("#gallery-scorecard"));
                Assert.True(await page.Locator("#gallery-classes .badge").CountAsync() > 0);   // the prototypes' own scores still show
            });
    }

    /// <summary>A measure exactly at the scorecard's threshold (0.8) has reached it: its badge reads as good, not low.</summary>
    [Fact]
    public async Task A_measure_at_exactly_the_threshold_reads_as_good_not_low()
    {
        var index = -1;
        await WithTheGalleryOfACopyAsync("threshold-scorecard", manifest =>
        {
            var interpretability = manifest["interpretability"]!;
            Assert.Equal(0.8, interpretability["consistencyThreshold"]?.GetValue<double>() ?? 0.8);
            var score = interpretability["prototypes"]!.AsArray()[0]!;
            index = score["index"]!.GetValue<int>();
            score["consistency"] = 0.8;
            score["noiseStability"] = 0.8;
            score["jpegStability"] = 0.8;
            score["background"] = false;
        }, async page =>
        {
            var badges = page.Locator($"#gallery-classes li[data-prototype='{index}'] .badge");
            Assert.Equal(["consistent 80%", "noise 80%", "JPEG 80%"], await badges.AllTextContentsAsync());
            // Green too, not only without the word.
            Assert.All(await badges.EvaluateAllAsync<bool[]>("badges => badges.map(b => b.classList.contains('good'))"), Assert.True);
        });
    }

    /// <summary>
    /// Serves a copy of the bundle as model <paramref name="name"/> with its manifest changed by <paramref name="edit"/>,
    /// opens the gallery on it once rendered (not loading: "Loading the prototypes of ..." comes first, the previous
    /// model's summary still shown), checks it, and takes the copy away.
    /// </summary>
    private async Task WithTheGalleryOfACopyAsync(string name, Action<System.Text.Json.Nodes.JsonNode> edit, Func<IPage, Task> check)
    {
        var folder = Path.Combine(fixture.ModelRoot, name, Path.GetFileName(fixture.BundleDirectory));
        Trainer.CopyDirectory(fixture.BundleDirectory, folder);
        var manifestPath = Path.Combine(folder, "model.json");
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(manifestPath))!;
        manifest["name"] = name;
        edit(manifest);
        await File.WriteAllTextAsync(manifestPath, manifest.ToJsonString());
        try
        {
            await WaitForModelAsync(name, loaded: true);
            var page = await OpenAsync();
            await page.ClickAsync("#tab-gallery");
            await page.SelectOptionAsync("#gallery-model", name);
            await page.WaitForFunctionAsync($"() => document.getElementById('gallery-status').textContent.includes('prototypes of {name} (version')");
            await check(page);
            await page.Context.CloseAsync();
        }
        finally
        {
            Directory.Delete(Path.Combine(fixture.ModelRoot, name), recursive: true);
            await WaitForModelAsync(name, loaded: false);
        }
    }

    private async Task WaitForModelAsync(string name, bool loaded)
    {
        static bool Serves(JsonElement catalog, string name) => catalog.GetProperty("models").EnumerateArray().Any(m => m.GetProperty("name").GetString() == name);
        var catalog = await Eventually.ValueAsync(() => fixture.Http.GetFromJsonAsync<JsonElement>("/models"), c => Serves(c, name) == loaded, TimeSpan.FromSeconds(60));
        Assert.True(Serves(catalog, name) == loaded, $"{name} is {(loaded ? "not loaded" : "still loaded")} after 60 s: {catalog}");
    }
}
