using System.Net;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests;

/// <summary>Every row of API.md's error table that this service owns, each with its status and a problem body.</summary>
[Collection(BundlesCollection.Name)]
public class ErrorTests(TrainerBundles bundles)
{
    private HttpClient Client => bundles.Service.CreateClient();

    [Fact]
    public async Task BodyThatIsNotAnImageIs400()
    {
        var response = await Client.PostAsync("/classify", Http.Raw("this is plain text, not a PNG"u8.ToArray(), "image/png"));
        await Http.ProblemAsync(response, HttpStatusCode.BadRequest, "image-not-decodable");
    }

    [Fact]
    public async Task TruncatedFileIs400()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0, 64, 64);
        var response = await Client.PostAsync("/classify", Http.Image(png[..(png.Length / 2)]));
        await Http.ProblemAsync(response, HttpStatusCode.BadRequest, "image-truncated");
    }

    [Fact]
    public async Task CorruptFileIs400()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0, 64, 64);
        for (var i = 60; i < png.Length - 20; i += 7) png[i] ^= 0x5A;
        var response = await Client.PostAsync("/classify", Http.Image(png));
        await Http.ProblemAsync(response, HttpStatusCode.BadRequest, "image-not-decodable");
    }

    [Fact]
    public async Task MissingImageFieldIs400()
    {
        var content = Http.Multipart(("file", Http.BundleImage(bundles.SmokeBundle, 0), "image/png"));
        var problem = await Http.ProblemAsync(await Client.PostAsync("/classify", content), HttpStatusCode.BadRequest, "image-missing");
        Assert.Contains("'image'", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task EmptyBodyIs400()
    {
        await Http.ProblemAsync(await Client.PostAsync("/classify", Http.Raw([], "image/png")), HttpStatusCode.BadRequest, "image-missing");
    }

    /// <summary>An image sent without a Content-Type is told so, not that it sent no image; a request with neither is told both.</summary>
    [Fact]
    public async Task AnImageWithoutAContentTypeIsToldToNameIt()
    {
        var unnamed = new ByteArrayContent(Http.BundleImage(bundles.SmokeBundle, 0));
        unnamed.Headers.ContentType = null;
        var problem = await Http.ProblemAsync(await Client.PostAsync("/classify", unnamed), HttpStatusCode.BadRequest, "image-missing");
        Assert.Contains("body has no Content-Type, so it is not read as an image", problem.GetProperty("detail").GetString());
        problem = await Http.ProblemAsync(await Client.PostAsync("/classify", null), HttpStatusCode.BadRequest, "image-missing");
        Assert.Contains("no Content-Type and no image", problem.GetProperty("detail").GetString());
    }

    [Theory]
    [InlineData("topClasses=abc")]
    [InlineData("topClasses=")]
    [InlineData("topPrototypes=-1")]
    [InlineData("explainClass=99")]
    [InlineData("explainClass=4")]   // one past the smoke model's last class
    [InlineData("heatmaps=gif")]
    [InlineData("topPrototypes=101")]
    public async Task InvalidQueryParameterIs400(string query)
    {
        // The framework's own binding failures (a word or nothing for an integer) are the same problem type as the service's.
        var response = await Client.PostAsync($"/classify?{query}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        await Http.ProblemAsync(response, HttpStatusCode.BadRequest, "invalid-parameter");
    }

    /// <summary>A multipart part whose headers run into its image: the parser's message quotes the bytes, shown as text only.</summary>
    [Fact]
    public async Task AMultipartRefusalQuotesNoBinary()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        byte[] body = [.. "--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"u8, .. png, .. "\r\n--b--\r\n"u8];
        var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=b");
        var problem = await Http.ProblemAsync(await Client.PostAsync("/classify", content), HttpStatusCode.BadRequest, "request-body-unreadable");
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.StartsWith("The multipart body cannot be read: ", detail);
        Assert.DoesNotContain(detail, c => char.IsControl(c) || c == '\uFFFD');
        Assert.True(detail.Length < 300, detail);
    }

    /// <summary>A value the binder cannot read as an integer (a word, nothing, out of int's range) is named with the parameter.</summary>
    [Theory]
    [InlineData("topClasses=abc", "parameter topClasses is 'abc'")]
    [InlineData("topPrototypes=", "parameter topPrototypes is ''")]
    [InlineData("explainClass=2147483648", "parameter explainClass is '2147483648', which is not an integer from 0 to 2147483647 (topClasses and topPrototypes take a count from 0, explainClass a class index from 0;")]
    [InlineData("topClasses=abc&topPrototypes=x&explainClass=", "parameters topClasses ('abc'), topPrototypes ('x') and explainClass ('') are not integers")]
    [InlineData("TOPCLASSES=99999999999999999999999999999999999999999999", "parameter topClasses is '9999999999999999999999999999999999999999...'")]
    public async Task AnUnreadableIntegerIsNamedInTheProblem(string query, string fragment)
    {
        var response = await Client.PostAsync($"/classify?{query}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        var problem = await Http.ProblemAsync(response, HttpStatusCode.BadRequest, "invalid-parameter");
        var detail = problem.GetProperty("detail").GetString();
        Assert.StartsWith($"The query {fragment}", detail);
    }

    [Theory]
    [InlineData("/classify?model=no-such-model")]
    [InlineData("/classify?model=smoke@19990101T000000Z")]
    public async Task UnknownModelOrVersionIs404(string path)
    {
        var response = await Client.PostAsync(path, Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        await Http.ProblemAsync(response, HttpStatusCode.NotFound, "model-not-found");
    }

    /// <summary>A model parameter that could not name a folder, or an '@' with no version, is refused before any lookup.</summary>
    [Theory]
    [InlineData("../etc")]
    [InlineData("@20261130T113842Z")]
    [InlineData("smoke@")]
    [InlineData("-abc")]
    [InlineData("bad..name")]
    [InlineData("smoke@../v1")]
    public async Task ModelParameterThatCannotNameAFolderIs400(string model)
    {
        foreach (var path in new[] { "/classify", "/classify/card" })
        {
            var response = await Client.PostAsync($"{path}?model={Uri.EscapeDataString(model)}", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
            var problem = await Http.ProblemAsync(response, HttpStatusCode.BadRequest, "invalid-parameter");
            Assert.Contains($"model '{model}' is not valid", problem.GetProperty("detail").GetString());
        }
    }

    [Fact]
    public async Task AModelPathThatCannotNameAFolderIs400()
    {
        // A trailing newline: '$' in a regular expression matches before it, so such a name once passed the check.
        foreach (var path in new[] { "/models/smoke%0A", "/models/smoke/versions/v1%0A" })
        {
            await Http.ProblemAsync(await Client.GetAsync(path), HttpStatusCode.BadRequest, "invalid-parameter");
        }
    }

    /// <summary>A path no endpoint serves is named in its 404 without its query string.</summary>
    [Fact]
    public async Task APathNoEndpointServesIsNamedWithoutItsQuery()
    {
        var problem = await Http.ProblemAsync(await Client.GetAsync("/no/such/route?x=1"), HttpStatusCode.NotFound);
        Assert.Equal("No endpoint matches GET /no/such/route. The API is described at /swagger.", problem.GetProperty("detail").GetString());
    }

    /// <summary>
    /// A request for the server as a whole (<c>OPTIONS *</c>, which only a real socket can send) has no path: its 404 and
    /// its log line name the target it asked for, not an empty path.
    /// </summary>
    [Fact]
    public async Task ARequestForTheWholeServerIsNamedByItsTarget()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"));
        var answer = await Http.SendWrittenAsync(service.Client.BaseAddress!.Port, "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 404 ", answer);
        Assert.Contains("No endpoint matches OPTIONS *. The API is described at /swagger.", answer);
        await service.WaitForLineAsync("HTTP OPTIONS * responded 404 ");
    }

    [Fact]
    public async Task UnknownModelPathsAre404()
    {
        var version = Path.GetFileName(bundles.SmokeBundle);
        await Http.ProblemAsync(await Client.GetAsync("/models/no-such-model"), HttpStatusCode.NotFound, "model-not-found");
        await Http.ProblemAsync(await Client.GetAsync("/models/smoke/versions/19990101T000000Z"), HttpStatusCode.NotFound, "model-not-found");
        await Http.ProblemAsync(await Client.GetAsync("/models/smoke/versions/19990101T000000Z/prototypes"), HttpStatusCode.NotFound, "model-not-found");
        await Http.ProblemAsync(await Client.GetAsync($"/models/smoke/versions/{version}/prototypes/999/patch.png"), HttpStatusCode.NotFound, "prototype-not-found");
        await Http.ProblemAsync(await Client.GetAsync($"/models/smoke/versions/{version}/prototypes/8/patch.png"), HttpStatusCode.NotFound, "prototype-not-found");   // one past the last of 8
        await Http.ProblemAsync(await Client.GetAsync($"/models/smoke/versions/{version}/prototypes/1/secret.png"), HttpStatusCode.NotFound, "prototype-not-found");
        // An index that is no int at all is an unknown prototype or example too, not a route that does not exist.
        foreach (var index in new[] { "99999999999", "abc", "-0x1" })
        {
            var prototype = await Http.ProblemAsync(await Client.GetAsync($"/models/smoke/versions/{version}/prototypes/{index}/patch.png"),
                HttpStatusCode.NotFound, "prototype-not-found");
            Assert.Contains($"'{index}' is not one of them", prototype.GetProperty("detail").GetString());
            await Http.ProblemAsync(await Client.GetAsync($"/models/smoke/versions/{version}/examples/{index}"), HttpStatusCode.NotFound, "example-not-found");
        }
        await Http.ProblemAsync(await Client.GetAsync("/models/smoke/versions/19990101T000000Z/prototypes/abc/patch.png"), HttpStatusCode.NotFound, "model-not-found");
        await Http.ProblemAsync(await Client.GetAsync("/no/such/route"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task UnacceptedContentTypeIs415()
    {
        await Http.ProblemAsync(await Client.PostAsync("/classify", Http.Raw("hello"u8.ToArray(), "text/plain")),
            HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        await Http.ProblemAsync(await Client.PostAsync("/classify", Http.Raw("{}"u8.ToArray(), "application/json")),
            HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        await Http.ProblemAsync(await Client.PostAsync("/classify/batch", Http.Raw(Http.BundleImage(bundles.SmokeBundle, 0), "image/png")),
            HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        // A content type that cannot be read (an unterminated quote) is not one "not accepted": it was meant as multipart.
        var unreadable = new ByteArrayContent("--b\r\n"u8.ToArray());
        unreadable.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=\"b");
        var problem = await Http.ProblemAsync(await Client.PostAsync("/classify", unreadable), HttpStatusCode.BadRequest, "request-body-unreadable");
        Assert.Contains("cannot be read as a media type (an unterminated quote", problem.GetProperty("detail").GetString());
        // So for a raw image: its type is taken, its header is not (it was read as the image's type before).
        var rawImage = new ByteArrayContent(Http.BundleImage(bundles.SmokeBundle, 0));
        rawImage.Headers.TryAddWithoutValidation("Content-Type", "image/png; x=\"a");
        problem = await Http.ProblemAsync(await Client.PostAsync("/classify", rawImage), HttpStatusCode.BadRequest, "request-body-unreadable");
        Assert.Contains("Content-Type 'image/png; x=\"a' cannot be read as a media type", problem.GetProperty("detail").GetString());
    }

    /// <summary>
    /// A body in a content coding (a gzipped image, gzipped JSON) is refused as such, 415 with Accept-Encoding: identity,
    /// not read as a broken image; under /v2 in the protocol's shape. Identity is no coding.
    /// </summary>
    [Fact]
    public async Task ACompressedBodyIs415NamingItsContentEncoding()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        using var zipped = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(zipped, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(png);
        foreach (var (path, type) in new[] { ("/classify", "image/png"), ("/classify/card", "image/png"), ("/classify/batch", "image/png"),
                     ("/v2/models/smoke/infer", "image/png"), ("/training/jobs", "application/json") })
        {
            var content = Http.Raw(zipped.ToArray(), type);
            content.Headers.ContentEncoding.Add("gzip");
            var response = await Client.PostAsync(path, content);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
            Assert.True(response.Headers.TryGetValues("Accept-Encoding", out var accepted), $"{path}: no Accept-Encoding");
            Assert.Equal("identity", string.Join(",", accepted));
            var detail = path.StartsWith("/v2", StringComparison.Ordinal)
                ? (await Http.JsonAsync(response, HttpStatusCode.UnsupportedMediaType)).GetProperty("error").GetString()
                : (await Http.ProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported-media-type")).GetProperty("detail").GetString();
            Assert.Contains("Content-Encoding 'gzip'", detail);
        }
        var identity = Http.Raw(png, "image/png");
        identity.Headers.ContentEncoding.Add("identity");
        await Http.JsonAsync(await Client.PostAsync("/classify", identity));
        // An empty element of the list is no coding (RFC 9110, 5.6.1).
        var listed = Http.Raw(png, "image/png");
        listed.Headers.TryAddWithoutValidation("Content-Encoding", "identity, ");
        await Http.JsonAsync(await Client.PostAsync("/classify", listed));

        // A coding named for no body codes nothing: a GET with the header is answered as any GET.
        using var models = new HttpRequestMessage(HttpMethod.Get, "/models");
        models.Headers.TryAddWithoutValidation("Content-Encoding", "gzip");
        Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(models)).StatusCode);

        // An endpoint that takes no body ignores one sent anyway, in whatever coding (it answered 415).
        foreach (var (method, path) in new[] { (HttpMethod.Get, "/models"), (HttpMethod.Get, "/v2"), (HttpMethod.Post, "/models/reload") })
        {
            using var request = new HttpRequestMessage(method, path) { Content = new ByteArrayContent("hello"u8.ToArray()) };
            request.Content.Headers.ContentEncoding.Add("gzip");
            using var response = await Client.SendAsync(request);
            Assert.NotEqual(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        }
        // A path no endpoint serves is 404 whatever the body's coding.
        using var nowhere = new HttpRequestMessage(HttpMethod.Post, "/nowhere") { Content = new ByteArrayContent("hello"u8.ToArray()) };
        nowhere.Content.Headers.ContentEncoding.Add("gzip");
        Assert.Equal(HttpStatusCode.NotFound, (await Client.SendAsync(nowhere)).StatusCode);
    }

    /// <summary>
    /// A client whose Accept admits no JSON (an image/png client of the card, a browser-like text/html) still gets its
    /// problem, whole: the framework's own 4xx were an empty 500, and the endpoints' problems had no trace id.
    /// </summary>
    [Theory]
    [InlineData("image/png")]
    [InlineData("text/html")]
    [InlineData("application/xml;q=0.9, image/*")]
    public async Task AProblemIsWrittenWhateverTheClientAccepts(string accept)
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        async Task<System.Text.Json.JsonElement> Answer(HttpMethod method, string path, HttpContent? content, HttpStatusCode status, string? type)
        {
            using var request = new HttpRequestMessage(method, path) { Content = content };
            request.Headers.TryAddWithoutValidation("Accept", accept);
            return await Http.ProblemAsync(await Client.SendAsync(request), status, type);
        }
        await Answer(HttpMethod.Get, "/nowhere", null, HttpStatusCode.NotFound, null);
        await Answer(HttpMethod.Get, "/classify/card", null, HttpStatusCode.MethodNotAllowed, null);
        await Answer(HttpMethod.Post, "/classify/card?topClasses=abc", Http.Raw(png, "image/png"), HttpStatusCode.BadRequest, "invalid-parameter");
        await Answer(HttpMethod.Post, "/classify?model=nope", Http.Raw(png, "image/png"), HttpStatusCode.NotFound, "model-not-found");
        // And the answer itself is what it always is.
        using var card = new HttpRequestMessage(HttpMethod.Post, "/classify/card") { Content = Http.Raw(png, "image/png") };
        card.Headers.TryAddWithoutValidation("Accept", accept);
        using var drawn = await Client.SendAsync(card);
        Assert.Equal(HttpStatusCode.OK, drawn.StatusCode);
        Assert.Equal("image/png", drawn.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>
    /// Health probes are never refused for the request's shape (a repeated parameter, a content coding): a 4xx from a
    /// probe reads as "not live" or "not ready" to Kubernetes and to the Open Inference Protocol.
    /// </summary>
    [Fact]
    public async Task HealthProbesAreNeverRefusedForTheRequestsShape()
    {
        foreach (var path in new[] { "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready" })
        {
            Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync($"{path}?a=1&a=2")).StatusCode);
            using var coded = new HttpRequestMessage(HttpMethod.Get, path);
            coded.Headers.TryAddWithoutValidation("Content-Encoding", "gzip");
            Assert.Equal(HttpStatusCode.OK, (await Client.SendAsync(coded)).StatusCode);
        }
    }

    /// <summary>
    /// A query parameter given twice is 400 naming it on every endpoint, whatever its type (strings were joined with a
    /// comma and integers refused as not integers, and an empty first value let the second count); /v2 in its own shape.
    /// </summary>
    [Fact]
    public async Task AQueryParameterGivenTwiceIs400NamingIt()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        foreach (var query in new[] { "topClasses=1&topClasses=2", "heatmaps=&heatmaps=png", "heatmaps=png&HEATMAPS=png", "verify=&verify=true&model=smoke" })
        {
            var problem = await Http.ProblemAsync(await Client.PostAsync($"/classify?{query}", Http.Raw(png, "image/png")),
                HttpStatusCode.BadRequest, "invalid-parameter");
            var name = query.Split('=')[0];
            Assert.Contains($"'{name}' is given 2 times", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        }
        await Http.ProblemAsync(await Client.GetAsync("/models?a=1&a=2"), HttpStatusCode.BadRequest, "invalid-parameter");
        var v2 = await Client.GetAsync("/v2/models/smoke?x=1&x=2");
        Assert.Contains("'x' is given 2 times", (await Http.JsonAsync(v2, HttpStatusCode.BadRequest)).GetProperty("error").GetString());
        await Http.JsonAsync(await Client.PostAsync("/classify?topClasses=2&heatmaps=png", Http.Raw(png, "image/png")));
    }

    /// <summary>
    /// A query parameter the endpoint does not take is 400 naming it, the nearest name it does take and all of them:
    /// heatmap=png (for heatmaps) was ignored, and the answer came without heatmaps and no word why. Names are matched
    /// without regard to case, as they are bound.
    /// </summary>
    [Theory]
    [InlineData("/classify", "heatmap=png", "heatmap", "heatmaps")]
    [InlineData("/classify", "topPrototype=3", "topPrototype", "topPrototypes")]
    [InlineData("/classify/batch", "explain_class=1", "explain_class", "explainClass")]
    [InlineData("/classify/card", "heatmap=png", "heatmap", "heatmaps")]
    [InlineData("/classify", "callback=x", "callback", null)]
    public async Task AQueryParameterTheEndpointDoesNotTakeIs400NamingIt(string path, string query, string name, string? nearest)
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        HttpContent content = path.EndsWith("batch", StringComparison.Ordinal) ? Http.Multipart(("image", png, "image/png")) : Http.Raw(png, "image/png");
        var problem = await Http.ProblemAsync(await Client.PostAsync($"{path}?topClasses=2&{query}", content), HttpStatusCode.BadRequest, "invalid-parameter");
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains($"POST {path} takes no query parameter '{name}'", detail);
        if (nearest is null) Assert.DoesNotContain("did you mean", detail);
        else Assert.Contains($"(did you mean '{nearest}'?)", detail);
        Assert.Contains("model", detail);
        Assert.Contains("topPrototypes", detail);
    }

    /// <summary>The three classify endpoints take one query string: the card takes heatmaps too, and draws them whatever it says.</summary>
    [Fact]
    public async Task TheCardTakesTheClassifyEndpointsQueryString()
    {
        var card = await Client.PostAsync("/classify/card?topPrototypes=2&heatmaps=png&verify=false",
            Http.Raw(Http.BundleImage(bundles.SmokeBundle, 0), "image/png"));
        Assert.Equal(HttpStatusCode.OK, card.StatusCode);
        Assert.Equal("image/png", card.Content.Headers.ContentType?.MediaType);
        // ... and refuses what /classify refuses (a bad value was drawn over, without a word).
        var problem = await Http.ProblemAsync(await Client.PostAsync("/classify/card?Heatmaps=bogus",
            Http.Raw(Http.BundleImage(bundles.SmokeBundle, 0), "image/png")), HttpStatusCode.BadRequest, "invalid-parameter");
        Assert.Contains("heatmaps must be 'none' or 'png'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task QueryParameterNamesAreTakenInAnyCase()
    {
        var answer = await Http.JsonAsync(await Client.PostAsync("/classify?TOPCLASSES=2&Heatmaps=png",
            Http.Raw(Http.BundleImage(bundles.SmokeBundle, 0), "image/png")));
        Assert.Equal(2, answer.GetProperty("topClasses").GetArrayLength());
        Assert.StartsWith("data:image/png", answer.GetProperty("explanation").GetProperty("prototypes")[0].GetProperty("heatmap").GetString());
    }

    /// <summary>A multipart content type without its boundary parameter, or with an empty one, is 400 saying so (its parts cannot be told apart).</summary>
    [Fact]
    public async Task AMultipartBodyWithoutABoundaryIs400SayingSo()
    {
        foreach (var path in new[] { "/classify", "/classify/batch", "/classify/card" })
        {
            foreach (var contentType in new[] { "multipart/form-data", "multipart/form-data; boundary=" })
            {
                var content = new ByteArrayContent(Http.BundleImage(bundles.SmokeBundle, 0));
                content.Headers.TryAddWithoutValidation("Content-Type", contentType);
                var problem = await Http.ProblemAsync(await Client.PostAsync(path, content), HttpStatusCode.BadRequest, "request-body-unreadable");
                Assert.Contains("has no boundary (its boundary parameter is missing or empty)", problem.GetProperty("detail").GetString());
            }
        }
    }

    /// <summary>A multipart body that ends before its closing boundary (cut short, or not multipart at all) is 400 on every upload endpoint.</summary>
    [Fact]
    public async Task MultipartBodyThatCannotBeReadIs400()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        var multipart = Http.Multipart(("image", png, "image/png"));
        var boundary = multipart.Headers.ContentType!.Parameters.Single(p => p.Name == "boundary").Value!.Trim('"');
        var whole = await multipart.ReadAsByteArrayAsync();
        var wholeText = System.Text.Encoding.Latin1.GetString(whole);
        byte[][] bodies =
        [
            png,                                            // an image under a multipart content type
            whole[..^20],                                   // cut 20 bytes short
            whole[..wholeText.LastIndexOf("--" + boundary + "--", StringComparison.Ordinal)],   // no closing boundary
        ];
        foreach (var path in new[] { "/classify", "/classify/batch", "/classify/card" })
        {
            foreach (var body in bodies)
            {
                var content = new ByteArrayContent(body);
                content.Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary=\"{boundary}\"");
                var problem = await Http.ProblemAsync(await Client.PostAsync(path, content), HttpStatusCode.BadRequest, "image-not-decodable");
                Assert.Contains("closing boundary", problem.GetProperty("detail").GetString());
            }
        }
        // The same multipart body whole is classified.
        await Http.JsonAsync(await Client.PostAsync("/classify", Http.Image(png)));
    }

    /// <summary>
    /// In a multipart body the parts named 'image' are the images, with or without a filename (curl -F 'image=&lt;f' sends
    /// none); other parts are skipped unread, whatever their size, so they cost no memory; too many images are counted.
    /// </summary>
    [Fact]
    public async Task MultipartPartsAreTheImagesNamedImageAndOthersAreSkipped()
    {
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        var expected = (await Http.JsonAsync(await Client.PostAsync("/classify", Http.Image(png)))).GetProperty("prediction").GetProperty("logit").GetDouble();
        using (var noFilename = new MultipartFormDataContent())
        {
            noFilename.Add(new ByteArrayContent(png), "image");   // form-data; name=image, no filename
            var answer = await Http.JsonAsync(await Client.PostAsync("/classify", noFilename));
            Assert.Equal(expected, answer.GetProperty("prediction").GetProperty("logit").GetDouble());
        }
        using (var longText = Http.Image(png))
        {
            longText.Add(new StringContent(new string('x', 3_000_000)), "comment");
            var answer = await Http.JsonAsync(await Client.PostAsync("/classify", longText));
            Assert.Equal(expected, answer.GetProperty("prediction").GetProperty("logit").GetDouble());
        }
        using (var text = new MultipartFormDataContent())
        {
            text.Add(new StringContent("a note"), "comment");
            var problem = await Http.ProblemAsync(await Client.PostAsync("/classify", text), HttpStatusCode.BadRequest, "image-missing");
            Assert.Contains("no field named 'image' (it has: comment)", problem.GetProperty("detail").GetString());
        }
        using (var manyImages = Http.Multipart(Enumerable.Repeat(("image", png, "image/png"), 100).ToArray()))
        {
            var problem = await Http.ProblemAsync(await Client.PostAsync("/classify/batch", manyImages), HttpStatusCode.BadRequest, "too-many-images");
            Assert.Contains("holds 100 images", problem.GetProperty("detail").GetString());
        }
        foreach (var path in (string[])["/classify", "/classify/card"])
        {
            using var twoImages = Http.Multipart(Enumerable.Repeat(("image", png, "image/png"), 2).ToArray());
            var problem = await Http.ProblemAsync(await Client.PostAsync(path, twoImages), HttpStatusCode.BadRequest, "too-many-images");
            Assert.Equal("The request holds 2 images; this endpoint takes one (POST /classify/batch takes several).", problem.GetProperty("detail").GetString());
        }
    }

    /// <summary>A URL-encoded form holds no files: it is a content type the upload endpoints do not take.</summary>
    [Fact]
    public async Task UrlEncodedFormIs415()
    {
        foreach (var path in new[] { "/classify", "/classify/batch", "/classify/card" })
        {
            var form = new FormUrlEncodedContent([new("image", "abc")]);
            var problem = await Http.ProblemAsync(await Client.PostAsync(path, form), HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
            Assert.Contains("application/x-www-form-urlencoded", problem.GetProperty("detail").GetString());
            // Each endpoint says what it takes: the batch endpoint multipart only.
            Assert.Equal(path == "/classify/batch", problem.GetProperty("detail").GetString()!.Contains("one file field 'image' per image"));
        }
    }

    /// <summary>
    /// Routing's own 415, for a content type an endpoint does not take, is the same kind of problem as the endpoints'
    /// own, with a detail; under /v2 routing's answers are the protocol's {"error": "..."}.
    /// </summary>
    [Fact]
    public async Task ContentTypeAnEndpointDoesNotTakeIs415WithADetail()
    {
        var problem = await Http.ProblemAsync(await Client.PostAsync("/training/jobs", Http.Raw("{}"u8.ToArray(), "text/plain")),
            HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        Assert.Contains("'text/plain'", problem.GetProperty("detail").GetString());

        // v2 infer takes any content type (the protocol names none): text is read as the JSON request it holds.
        var v2 = await Client.PostAsync("/v2/models/smoke/infer", Http.Raw("{}"u8.ToArray(), "text/plain"));
        Assert.Equal(HttpStatusCode.BadRequest, v2.StatusCode);
        Assert.Equal("application/json", v2.Content.Headers.ContentType?.MediaType);
        Assert.Contains("inputs", (await Http.JsonAsync(v2, HttpStatusCode.BadRequest)).GetProperty("error").GetString());

        var unknown = await Client.GetAsync("/v2/no/such/route");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("/v2/no/such/route", (await Http.JsonAsync(unknown, HttpStatusCode.NotFound)).GetProperty("error").GetString());
    }

    [Fact]
    public async Task ImageWithMorePixelsThanTheLimitIs422()
    {
        // A 45-byte PNG that declares 100000 x 100000 pixels: refused from its header, before any decoding.
        var response = await Client.PostAsync("/classify", Http.Raw(PngHeaderOnly(100_000, 100_000), "image/png"));
        var problem = await Http.ProblemAsync(response, (HttpStatusCode)422, "image-too-many-pixels");
        Assert.Contains("40000000", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task AnImageWithASideLongerThanTheLimitIs422AndOneAtTheLimitIsClassified()
    {
        // A complete, valid, tiny file: within the pixel limit, but its resize would cost time and memory with its
        // 70,000-pixel side (a 1 x 25,000,000 PNG overflowed the resizer's buffer size: a 500 before the limit).
        using var tooLong = new Image<L8>(1, 70_000);
        var problem = await Http.ProblemAsync(await Client.PostAsync("/classify", Http.Raw(Http.Encode(tooLong, new PngEncoder()), "image/png")),
            (HttpStatusCode)422, "image-side-too-long");
        Assert.Contains("1x70000", problem.GetProperty("detail").GetString());
        Assert.Contains("65535", problem.GetProperty("detail").GetString());

        foreach (var (width, height) in new[] { (1, 65_535), (65_535, 2) })
        {
            using var atLimit = new Image<L8>(width, height);
            var answer = await Http.JsonAsync(await Client.PostAsync("/classify", Http.Raw(Http.Encode(atLimit, new PngEncoder()), "image/png")));
            Assert.Equal(width, answer.GetProperty("image").GetProperty("width").GetInt32());
        }
    }

    [Fact]
    public async Task ZeroSizedImageIs422()
    {
        using var image = new Image<Rgba32>(4, 4);
        var bmp = Http.Encode(image, new BmpEncoder());
        bmp[18] = bmp[19] = bmp[20] = bmp[21] = 0; // BITMAPINFOHEADER width = 0
        await Http.ProblemAsync(await Client.PostAsync("/classify", Http.Raw(bmp, "image/bmp")), (HttpStatusCode)422, "image-zero-sized");
    }

    [Fact]
    public async Task BodyLargerThanTheByteLimitIs413()
    {
        await using var factory = bundles.SmokeService(("Images:MaxBytes", "4000"));
        var client = factory.CreateClient();
        var large = Http.BundleImage(bundles.SmokeBundle, 0, 200, 200);
        Assert.True(large.Length > 4000 && Http.BundleImage(bundles.SmokeBundle, 0).Length < 4000);
        await Http.ProblemAsync(await client.PostAsync("/classify", Http.Raw(large, "image/png")), HttpStatusCode.RequestEntityTooLarge, "image-too-large");
        await Http.ProblemAsync(await client.PostAsync("/classify", Http.Image(large)), HttpStatusCode.RequestEntityTooLarge, "image-too-large");
        await Http.ProblemAsync(await client.PostAsync("/classify/batch", Http.Multipart(("image", large, "image/png"))), HttpStatusCode.RequestEntityTooLarge, "image-too-large");
        // A body without Content-Length (chunked: a stream of unknown length, through the test server's own client, which
        // does not buffer it) is cut off at the limit too, and one of exactly the limit is read whole.
        static StreamContent Chunked(byte[] bytes)
        {
            var content = new StreamContent(new UnknownLengthStream(bytes));
            content.Headers.ContentType = new("image/png");
            return content;
        }
        var streaming = factory.Server.CreateClient();
        var tooLarge = Chunked(large);
        Assert.False(tooLarge.Headers.ContentLength.HasValue);
        await Http.ProblemAsync(await streaming.PostAsync("/classify", tooLarge), HttpStatusCode.RequestEntityTooLarge, "image-too-large");
        var small = Http.BundleImage(bundles.SmokeBundle, 0);
        await Http.JsonAsync(await streaming.PostAsync("/classify", Chunked(small)));
        var exactly = small.Concat(new byte[4000 - small.Length]).ToArray();   // trailing bytes after the PNG's end are ignored
        await Http.JsonAsync(await streaming.PostAsync("/classify", Chunked(exactly)));
        await Http.ProblemAsync(await streaming.PostAsync("/classify", Chunked([.. exactly, 0])), HttpStatusCode.RequestEntityTooLarge, "image-too-large");
        // And the same service still classifies a small image.
        await Http.JsonAsync(await client.PostAsync("/classify", Http.Raw(Http.BundleImage(bundles.SmokeBundle, 0), "image/png")));
    }

    [Fact]
    public async Task TooManyHeatmapsIs400()
    {
        await using var factory = bundles.SmokeService(("Classify:MaxHeatmapPrototypes", "2"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var problem = await Http.ProblemAsync(await client.PostAsync("/classify?topPrototypes=3&heatmaps=png", Http.Image(image)),
            HttpStatusCode.BadRequest, "invalid-parameter");
        Assert.Contains("MaxHeatmapPrototypes", problem.GetProperty("detail").GetString());
        await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=2&heatmaps=png", Http.Image(image)));
        await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=3", Http.Image(image)));
    }

    /// <summary>The default number of prototypes explained (5) is held to the operator's lower limits; more asked for is refused.</summary>
    [Fact]
    public async Task TheDefaultPrototypeCountKeepsToTheConfiguredLimits()
    {
        await using var factory = bundles.SmokeService(("Classify:MaxTopPrototypes", "3"), ("Classify:MaxHeatmapPrototypes", "2"),
            ("Classify:MaxVerifiedPrototypes", "1"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        int Explained(System.Text.Json.JsonElement answer) => answer.GetProperty("explanation").GetProperty("prototypes").GetArrayLength();
        Assert.Equal(3, Explained(await Http.JsonAsync(await client.PostAsync("/classify", Http.Image(image)))));
        Assert.Equal(2, Explained(await Http.JsonAsync(await client.PostAsync("/classify?heatmaps=png", Http.Image(image)))));
        Assert.Equal(1, Explained(await Http.JsonAsync(await client.PostAsync("/classify?verify=true", Http.Image(image)))));
        Assert.Equal(3, Explained(await Http.JsonAsync(await client.PostAsync("/classify?topPrototypes=3", Http.Image(image)))));
        var problem = await Http.ProblemAsync(await client.PostAsync("/classify?topPrototypes=4", Http.Image(image)),
            HttpStatusCode.BadRequest, "invalid-parameter");
        Assert.Contains("MaxTopPrototypes", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task TooManyImagesInABatchIs400()
    {
        await using var factory = bundles.SmokeService(("Classify:MaxBatchImages", "2"));
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var content = Http.Multipart(("image", image, "image/png"), ("image", image, "image/png"), ("image", image, "image/png"));
        await Http.ProblemAsync(await factory.CreateClient().PostAsync("/classify/batch", content), HttpStatusCode.BadRequest, "too-many-images");
    }

    /// <summary>
    /// Retry-After goes with a 503 only: refusals that retrying does not mend (an upload that is no image, a model that
    /// is not there, under /v2 too) carry none.
    /// </summary>
    [Fact]
    public async Task RefusalsThatRetryingDoesNotMendCarryNoRetryAfter()
    {
        var client = bundles.Service.CreateClient();
        using var notAnImage = await client.PostAsync("/classify", Http.Raw([1, 2, 3, 4], "image/png"));
        await Http.ProblemAsync(notAnImage, HttpStatusCode.BadRequest);
        Assert.Null(notAnImage.Headers.RetryAfter);
        using var unknown = await client.PostAsync("/classify?model=nope", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        await Http.ProblemAsync(unknown, HttpStatusCode.NotFound);
        Assert.Null(unknown.Headers.RetryAfter);
        using var v2Unknown = await client.GetAsync("/v2/models/nope");
        Assert.Equal(HttpStatusCode.NotFound, v2Unknown.StatusCode);
        Assert.Null(v2Unknown.Headers.RetryAfter);
    }

    /// <summary>One model loaded is said as served, not as none loaded (the warning is for a root with no model at all).</summary>
    [Fact]
    public async Task OneModelLoadedIsLoggedAsServedNotAsNoModel()
    {
        await using var factory = bundles.SmokeService();
        factory.CreateClient();
        await factory.Logs.WaitForAsync(m => m.Contains($"Serving \"smoke@{Path.GetFileName(bundles.SmokeBundle)}\" (default \"smoke\")"),
            onTimeout: () => string.Join("\n", factory.Logs.Entries.Select(e => e.Message)));
        Assert.DoesNotContain(factory.Logs.Entries, e => e.Message.Contains("No model is loaded"));
    }

    [Fact]
    public async Task AModelRootThatIsAModelOrAVersionFolderIsNamedForWhatItIs()
    {
        // --Models:Root models/fashion-mnist (or its version folder): nothing loads, and the scan refused nothing either.
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", null));
        var model = Path.Combine(root, "smoke");
        var version = Directory.GetDirectories(model).Single();
        foreach (var (given, what, meant) in new[] { (model, "a model's folder", root), (version, "a model version's folder", root) })
        {
            await using var factory = ServiceFactory.ForRoot(given);
            await Http.ProblemAsync(await factory.CreateClient().GetAsync("/health/ready"), HttpStatusCode.ServiceUnavailable, "no-model-ready");
            // (the test's log renders each value in quotes)
            await factory.Logs.WaitForAsync(m => m.StartsWith($"Models:Root \"{given}\" is \"{what}", StringComparison.Ordinal)
                    && m.EndsWith($"set Models:Root to \"{meant}\", the folder that holds the model folders", StringComparison.Ordinal),
                onTimeout: () => string.Join('\n', factory.Logs.Entries.Select(e => e.Message)));
        }
        // An empty root is only empty.
        await using var empty = ServiceFactory.ForRoot(bundles.NewRoot());
        await Http.ProblemAsync(await empty.CreateClient().GetAsync("/health/ready"), HttpStatusCode.ServiceUnavailable, "no-model-ready");
        await empty.Logs.WaitForAsync(m => m.Contains("No model is loaded"));
        Assert.DoesNotContain(empty.Logs.Entries, e => e.Message.Contains("set Models:Root to"));
    }

    [Fact]
    public async Task NoModelReadyIs503WithRetryAfter()
    {
        var empty = bundles.NewRoot();
        await using var factory = ServiceFactory.ForRoot(empty);
        var client = factory.CreateClient();
        var response = await client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        await Http.ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "no-model-ready");
        Assert.NotNull(response.Headers.RetryAfter);

        var ready = await client.GetAsync("/health/ready");
        await Http.ProblemAsync(ready, HttpStatusCode.ServiceUnavailable, "no-model-ready");
        Assert.NotNull(ready.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
        Assert.Contains(factory.Logs.Entries, e => e.Message.Contains("No model is loaded"));
        // "Not ready" is deliberate, not a fault: the request log says it as a warning, naming which 503 it is (overload,
        // no model and a full spool are all 503s); so does a v2 error, whose body is the protocol's, not a problem.
        var line = await factory.Logs.WaitForAsync(m => m.Contains("/health/ready") && m.Contains("responded 503"));
        Assert.Contains(factory.Logs.Entries, e => e.Message == line && e.Level == Microsoft.Extensions.Logging.LogLevel.Warning);
        Assert.Contains("problem no-model-ready,", line);
        await factory.Logs.WaitForAsync(m => m.Contains("POST /classify ") && m.Contains("responded 503") && m.Contains("problem no-model-ready,"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.PostAsync("/v2/models/smoke/infer", new StringContent("{}"))).StatusCode);
        await factory.Logs.WaitForAsync(m => m.Contains("/v2/models/smoke/infer") && m.Contains("problem no-model-ready,"));
        Assert.Contains(factory.Logs.Entries, e => e.Message.Contains("GET /health/live ") && e.Message.Contains("problem -,"));
    }

    /// <summary>
    /// Routing's own answers (no endpoint, a method the path does not take, a content type the endpoint does not take)
    /// are named in the request's log line as the endpoints' problems are: they are written inside its scope.
    /// </summary>
    [Fact]
    public async Task RoutingsProblemsAreNamedInTheRequestLog()
    {
        using var factory = bundles.SmokeService();
        var client = factory.CreateClient();
        await Http.ProblemAsync(await client.GetAsync("/no-such-page"), HttpStatusCode.NotFound, "https://tools.ietf.org/html/rfc9110#section-15.5.5");
        await Http.ProblemAsync(await client.DeleteAsync("/classify"), HttpStatusCode.MethodNotAllowed, "https://tools.ietf.org/html/rfc9110#section-15.5.6");
        await Http.ProblemAsync(await client.PostAsync("/classify", new StringContent("text")), HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        await factory.Logs.WaitForAsync(m => m.Contains("GET /no-such-page responded 404") && m.Contains("problem not-found,"));
        await factory.Logs.WaitForAsync(m => m.Contains("DELETE /classify responded 405") && m.Contains("problem method-not-allowed,"));
        await factory.Logs.WaitForAsync(m => m.Contains("POST /classify responded 415") && m.Contains("problem unsupported-media-type,"));
    }

    private static byte[] PngHeaderOnly(int width, int height)
    {
        var bytes = new List<byte> { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A };
        var ihdr = new byte[17];
        "IHDR"u8.CopyTo(ihdr);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(8), height);
        ihdr[12] = 8;
        ihdr[13] = 2;
        bytes.AddRange([0, 0, 0, 13]);
        bytes.AddRange(ihdr);
        var crc = Crc32(ihdr);
        bytes.AddRange([(byte)(crc >> 24), (byte)(crc >> 16), (byte)(crc >> 8), (byte)crc]);
        return bytes.ToArray();
    }

    private static uint Crc32(byte[] data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>A readable stream that cannot say its length, so HttpClient sends it chunked.</summary>
    private sealed class UnknownLengthStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
