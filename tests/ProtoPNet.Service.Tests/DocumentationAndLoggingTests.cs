using System.Net;
using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

[Collection(BundlesCollection.Name)]
public class DocumentationAndLoggingTests(TrainerBundles bundles)
{
    private HttpClient Client => bundles.Service.CreateClient();

    [Fact]
    public async Task SwaggerDocumentsEveryEndpointWithSummariesDescriptionsAndExamples()
    {
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/swagger/index.html")).StatusCode);
        var document = await Http.JsonAsync(await Client.GetAsync("/swagger/v1/swagger.json"));
        var paths = document.GetProperty("paths");
        string[] expected =
        [
            "/classify", "/classify/batch", "/models", "/models/{name}", "/models/{name}/versions/{version}",
            "/models/{name}/versions/{version}/prototypes", "/models/{name}/versions/{version}/prototypes/{index}/{kind}.png",
            "/health/live", "/health/ready", "/classify/card", "/models/{name}/versions/{version}/examples/{index}",
            "/metrics", "/models/reload", "/models/{name}/reload",
            "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/infer",
            "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready", "/v2/models/{name}/versions/{version}/infer",
            "/training/data", "/training/jobs", "/training/jobs/{id}", "/training/jobs/{id}/events", "/training/jobs/{id}/folder", "/training/options",
        ];
        Assert.Equal(expected.Order(), paths.EnumerateObject().Select(p => p.Name).Order());
        foreach (var path in paths.EnumerateObject())
        foreach (var operation in path.Value.EnumerateObject())
        {
            var where = $"{operation.Name.ToUpperInvariant()} {path.Name}";
            Assert.NotEqual("head", operation.Name);   // every GET also answers HEAD; the document lists the GET

            Assert.False(string.IsNullOrWhiteSpace(operation.Value.GetProperty("summary").GetString()), where);
            Assert.False(string.IsNullOrWhiteSpace(operation.Value.GetProperty("description").GetString()), where);
            foreach (var response in operation.Value.GetProperty("responses").EnumerateObject())
            {
                if (response.Name == "304") continue;
                if (!response.Value.TryGetProperty("content", out var content)) continue;
                foreach (var media in content.EnumerateObject())
                {
                    if (media.Name.StartsWith("image/", StringComparison.Ordinal) || media.Name == "application/octet-stream") continue;   // pictures and binary tensor data
                    Assert.True(media.Value.TryGetProperty("example", out _) || media.Value.TryGetProperty("examples", out _),
                        $"{where} {response.Name} {media.Name} has no example");
                }
                if (int.Parse(response.Name) < 400) continue;
                if (path.Name.StartsWith("/v2", StringComparison.Ordinal))
                {
                    // The Open Inference Protocol's own error body: {"error": "..."} (the key check and the rate limiter's too).
                    Assert.True(content.GetProperty("application/json").GetProperty("example").TryGetProperty("error", out _), $"{where} {response.Name}");
                }
                else
                {
                    Assert.True(content.TryGetProperty("application/problem+json", out _), $"{where} {response.Name}");
                }
            }
        }
        // The Open Inference Protocol's request bodies: its required members required, other members allowed (the
        // service skips what it does not know; a gateway that checks bodies against this schema must not refuse them).
        var schemas = document.GetProperty("components").GetProperty("schemas");
        foreach (var (schema, required) in new[] { ("V2InferenceRequest", "inputs"), ("V2RequestInput", "name,shape,datatype"), ("V2RequestOutput", "name") })
        {
            var body = schemas.GetProperty(schema);
            Assert.Equal(required.Split(','), body.GetProperty("required").EnumerateArray().Select(r => r.GetString()!));
            Assert.False(body.TryGetProperty("additionalProperties", out var extra) && extra.ValueKind == JsonValueKind.False, schema);
        }
        var classify = paths.GetProperty("/classify").GetProperty("post");
        Assert.True(classify.GetProperty("requestBody").GetProperty("content").TryGetProperty("multipart/form-data", out _));
        Assert.True(classify.GetProperty("requestBody").GetProperty("content").TryGetProperty("image/jpeg", out _));
        string[] statuses = ["200", "400", "401", "403", "404", "408", "413", "415", "422", "429", "503"];
        Assert.Equal(statuses, classify.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        var parameters = classify.GetProperty("parameters").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!, p => p.GetProperty("schema"));
        Assert.Equal(["explainClass", "heatmaps", "model", "topClasses", "topPrototypes", "verify"], parameters.Keys.Order());
        // What the parameters take, as the service checks them.
        Assert.Equal(0, parameters["topPrototypes"].GetProperty("minimum").GetInt32());
        Assert.Equal(100, parameters["topPrototypes"].GetProperty("maximum").GetInt32());
        Assert.Equal(["none", "png"], parameters["heatmaps"].GetProperty("enum").EnumerateArray().Select(v => v.GetString()));
        // Every problem the endpoints answer has its example; the headers the answers carry are declared.
        string[] ExampleNames(JsonElement operation, string status) =>
            operation.GetProperty("responses").GetProperty(status).GetProperty("content").GetProperty("application/problem+json")
                .GetProperty("examples").EnumerateObject().Select(e => e.Name).ToArray();
        Assert.Contains("too-many-images", ExampleNames(classify, "400"));
        Assert.Contains("request-body-unreadable", ExampleNames(classify, "400"));
        Assert.DoesNotContain("image-truncated", ExampleNames(paths.GetProperty("/classify/batch").GetProperty("post"), "400"));   // per image, in the 200
        var example = paths.GetProperty("/models/{name}/versions/{version}/examples/{index}").GetProperty("get");
        Assert.Contains("example-not-found", ExampleNames(example, "404"));
        Assert.True(classify.GetProperty("responses").GetProperty("503").GetProperty("headers").TryGetProperty("Retry-After", out _));
        var picture = paths.GetProperty("/models/{name}/versions/{version}/prototypes/{index}/{kind}.png").GetProperty("get").GetProperty("responses");
        Assert.True(picture.GetProperty("200").GetProperty("content").TryGetProperty("image/png", out _));
        Assert.True(picture.GetProperty("200").GetProperty("headers").TryGetProperty("ETag", out _));
        // The evidence check and its cost are described on the endpoint.
        var description = classify.GetProperty("description").GetString()!;
        Assert.Contains("verify=true", description);
        Assert.Contains("probabilityWithoutBox", description);
        Assert.Contains("extra", description[description.IndexOf("verify=true", StringComparison.Ordinal)..]);
    }

    [Fact]
    public async Task RequestLogLineHoldsModelPredictionStatusAndTraceIdButNoImageBytes()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        var response = await Client.PostAsync("/classify?model=smoke", Http.Image(image));
        var body = await Http.JsonAsync(response);
        var label = body.GetProperty("prediction").GetProperty("label").GetString()!;
        var version = body.GetProperty("model").GetProperty("version").GetString()!;

        var line = await bundles.Service.Logs.WaitForAsync(m => m.Contains("HTTP") && m.Contains("/classify") && m.Contains("responded 200")
                                                                && m.Contains($"smoke@{version}") && m.Contains(label));
        Assert.Contains("POST", line);
        Assert.Contains($"smoke@{version}", line);
        Assert.Contains(label, line);
        Assert.Matches(@"in \d+(\.\d)? ms", line);
        Assert.Matches("trace \"?00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", line);

        var base64 = Convert.ToBase64String(image);
        Assert.DoesNotContain(bundles.Service.Logs.Entries, e => e.Message.Contains(base64[..40]) || e.Message.Contains("IHDR"));
    }

    [Fact]
    public async Task ProblemTraceIdMatchesTheRequestLog()
    {
        var response = await Client.PostAsync("/classify", Http.Raw("nope"u8.ToArray(), "text/plain"));
        var problem = await Http.ProblemAsync(response, HttpStatusCode.UnsupportedMediaType);
        var traceId = problem.GetProperty("traceId").GetString()!;
        var line = await bundles.Service.Logs.WaitForAsync(m => m.Contains(traceId), onTimeout: () => string.Join("\n", bundles.Service.Logs.Entries.Where(e => e.Message.Contains("415")).Select(e => e.Message)) + " wanted " + traceId);
        Assert.Contains("responded 415", line);
    }

    /// <summary>
    /// A path with a line break (sent as %0A) stays on its request's one line: it cannot forge another log line. Nor can
    /// a Unicode line separator (some log viewers break lines at it) or a right-to-left override (it shows the rest of
    /// the line reversed), nor an invisible Unicode tag: each is written as an escape.
    /// </summary>
    [Theory]
    [InlineData("/forged%0A[18:00:00%20ERR]%20ProtoPNet.Service.Models.ModelRegistry:%20fake", "/forged\\n[18:00:00 ERR] ProtoPNet.Service.Models.ModelRegistry: fake")]
    [InlineData("/unicode-forged%E2%80%A8next%E2%80%AEdesrever", "/unicode-forged\\u2028next\\u202Edesrever")]
    [InlineData("/tagged%F3%A0%80%81hidden", "/tagged\\U000E0001hidden")]   // a format character beyond U+FFFF, as the trainer writes it
    public async Task ARequestPathCannotStartOrDisguiseALogLine(string path, string written)
    {
        await Client.GetAsync(path);
        var line = await bundles.Service.Logs.WaitForAsync(m => m.Contains(written[..8]));
        Assert.DoesNotContain(line, c => c is '\n' or '\u2028' or '\u202E');
        Assert.Contains(written, line);
        Assert.Contains("responded 404", line);
    }
}
