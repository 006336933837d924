using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// The OpenAPI document is what other teams generate their clients from: the real answers of the real service, success
/// and problem alike, are declared there with their status and content type, and their JSON fits the declared schema
/// (required members present, null only where the schema allows it). A generated client once threw on a model without
/// calibration ("Required property 'calibration' expects a non-null value") and on every training job.
/// </summary>
[Collection(BundlesCollection.Name)]
public class OpenApiContractTests(TrainerBundles bundles)
{
    private const string AdminKey = "contract-admin-key";

    /// <summary>
    /// A member that refers to another schema and may be null is one of that schema or null, and the null branch admits
    /// null alone (<c>{nullable: true}</c> without its enum is no type, which strict validators read as anything; and
    /// without a <c>type</c> beside it <c>nullable</c> means nothing since OpenAPI 3.0.3).
    /// </summary>
    [Fact]
    public async Task NullableReferencesAreOneOfTheirSchemaOrNullAlone()
    {
        var document = JsonNode.Parse(await bundles.Service.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!;
        var members = document["components"]!["schemas"]!.AsObject()
            .SelectMany(schema => schema.Value!["properties"]?.AsObject().Select(m => (Name: $"{schema.Key}.{m.Key}", Schema: m.Value!)) ?? [])
            .Where(member => member.Schema["oneOf"] is not null).ToArray();
        Assert.Contains(members, member => member.Name == "TrainingJob.progress");
        Assert.All(members, member =>
        {
            var branches = member.Schema["oneOf"]!.AsArray();
            Assert.Equal(2, branches.Count);
            Assert.StartsWith("#/components/schemas/", branches[0]!["$ref"]!.GetValue<string>());
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"type": "object", "nullable": true, "enum": [null]}"""), branches[1]), $"{member.Name}: {branches[1]}");
        });
    }

    /// <summary>
    /// The document's description says how errors come, as the README does: problems, but {"error": "..."} under /v2
    /// (it said every error was a problem).
    /// </summary>
    [Fact]
    public async Task TheDescriptionSaysTheV2EndpointsAnswerErrorsAsTheirProtocolSays()
    {
        var document = JsonNode.Parse(await bundles.Service.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!;
        var description = document["info"]!["description"]!.GetValue<string>();
        Assert.Contains("application/problem+json", description);
        Assert.Contains("/v2 endpoints, which answer {\"error\": \"...\"}", description);
    }

    /// <summary>Every metric family of a scrape is named in the /metrics operation's description and in docs/API.md.</summary>
    [Fact]
    public async Task EveryMetricFamilyIsNamedInTheMetricsDescriptionAndInTheApiDocument()
    {
        var client = bundles.Service.CreateClient();
        // One classification, so that the request, queue, run and explanation histograms have series.
        using (var image = new ByteArrayContent(Http.NoisePhotoPng()))
        {
            image.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            (await client.PostAsync("/classify", image)).EnsureSuccessStatusCode();
        }
        var scrape = await client.GetStringAsync("/metrics");
        var families = System.Text.RegularExpressions.Regex.Matches(scrape, @"^# TYPE (\S+) ", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(match => match.Groups[1].Value).ToArray();
        Assert.Contains("protopnet_explanation_duration_seconds", families);
        var description = JsonNode.Parse(await client.GetStringAsync("/swagger/v1/swagger.json"))!["paths"]!["/metrics"]!["get"]!["description"]!.GetValue<string>();
        var apiDocument = await File.ReadAllTextAsync(Path.Combine(ProtoPNet.Tests.Shared.Trainer.RepositoryRoot, "docs", "API.md"));
        Assert.All(families, family =>
        {
            Assert.True(description.Contains($"`{family}", StringComparison.Ordinal), $"the /metrics description leaves out {family}");
            Assert.True(apiDocument.Contains($"| `{family}` |", StringComparison.Ordinal), $"docs/API.md's metrics table leaves out {family}");
        });
    }

    [Fact]
    public async Task RealAnswersAreDeclaredAndFitTheirSchemas()
    {
        // "bare": a bundle without the optional sections, whose answers hold the nulls.
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", null), (bundles.SmokeBundle, "bare", bundle => TrainerBundles.EditManifest(bundle, manifest =>
        {
            foreach (var section in (string[])["unfamiliarity", "interpretability", "examples", "training"]) manifest.AsObject().Remove(section);
        })));
        var jobs = Directory.CreateTempSubdirectory("protopnet-contract-jobs-").FullName;
        using var factory = ServiceFactory.ForRoot(root, ("Training:JobsRoot", jobs), ("Security:AdminApiKey", AdminKey));
        var client = factory.CreateClient();
        var contract = new Contract(JsonNode.Parse(await client.GetStringAsync("/swagger/v1/swagger.json"))!);
        var version = Path.GetFileName(bundles.SmokeBundle);
        var png = Http.BundleImage(bundles.SmokeBundle, 0);
        var v2Request = JsonSerializer.Serialize(new { inputs = new[] { new { name = "image", shape = new[] { 1, 3, 32, 32 }, datatype = "FP32", data = new float[3 * 32 * 32] } } });

        (string Template, HttpMethod Method, string Url, Func<HttpContent?> Body)[] requests =
        [
            ("/classify", HttpMethod.Post, "/classify", () => Http.Raw(png, "image/png")),
            ("/classify", HttpMethod.Post, "/classify?verify=true&heatmaps=png&topPrototypes=2", () => Http.Image(png)),
            ("/classify", HttpMethod.Post, "/classify?model=bare", () => Http.Raw(png, "image/png")),
            ("/classify", HttpMethod.Post, "/classify", () => null),
            ("/classify", HttpMethod.Post, "/classify", () => new StringContent("not an image", Encoding.UTF8, "text/plain")),
            ("/classify", HttpMethod.Post, "/classify?model=nope", () => Http.Raw(png, "image/png")),
            ("/classify", HttpMethod.Post, "/classify?topPrototypes=-1", () => Http.Raw(png, "image/png")),
            ("/classify/batch", HttpMethod.Post, "/classify/batch",
                () => Http.Multipart(("image", png, "image/png"), ("image", Encoding.UTF8.GetBytes("not a png"), "image/png"))),
            ("/classify/card", HttpMethod.Post, "/classify/card?topPrototypes=2", () => Http.Raw(png, "image/png")),
            ("/models", HttpMethod.Get, "/models", () => null),
            ("/models", HttpMethod.Get, "/models?a=1&a=2", () => null),
            ("/models/{name}", HttpMethod.Get, "/models/smoke", () => null),
            ("/models/{name}", HttpMethod.Get, "/models/bare", () => null),
            ("/models/{name}", HttpMethod.Get, "/models/nope", () => null),
            ("/models/{name}/versions/{version}", HttpMethod.Get, $"/models/smoke/versions/{version}", () => null),
            ("/models/{name}/versions/{version}", HttpMethod.Get, $"/models/bare/versions/{version}", () => null),
            ("/models/{name}/versions/{version}/prototypes", HttpMethod.Get, $"/models/smoke/versions/{version}/prototypes", () => null),
            ("/models/{name}/versions/{version}/prototypes", HttpMethod.Get, $"/models/bare/versions/{version}/prototypes", () => null),
            ("/models/{name}/versions/{version}/prototypes/{index}/{kind}.png", HttpMethod.Get, $"/models/smoke/versions/{version}/prototypes/0/patch.png", () => null),
            ("/models/reload", HttpMethod.Post, "/models/reload", () => null),
            ("/models/{name}/reload", HttpMethod.Post, "/models/smoke/reload", () => null),
            ("/health/live", HttpMethod.Get, "/health/live", () => null),
            ("/health/ready", HttpMethod.Get, "/health/ready", () => null),
            ("/metrics", HttpMethod.Get, "/metrics", () => null),
            ("/v2", HttpMethod.Get, "/v2", () => null),
            ("/v2/health/ready", HttpMethod.Get, "/v2/health/ready", () => null),
            ("/v2/models/{name}", HttpMethod.Get, "/v2/models/smoke", () => null),
            ("/v2/models/{name}/ready", HttpMethod.Get, "/v2/models/smoke/ready", () => null),
            ("/v2/models/{name}/versions/{version}", HttpMethod.Get, $"/v2/models/smoke/versions/{version}", () => null),
            ("/v2/models/{name}/infer", HttpMethod.Post, "/v2/models/smoke/infer", () => new StringContent(v2Request, Encoding.UTF8, "application/json")),
            ("/v2/models/{name}/infer", HttpMethod.Post, "/v2/models/nope/infer", () => new StringContent(v2Request, Encoding.UTF8, "application/json")),
            ("/training/jobs", HttpMethod.Post, "/training/jobs", () => new StringContent("""{"name": "m", "preset": "smoke", "options": {"epochs": 2}}""", Encoding.UTF8, "application/json")),
            ("/training/jobs", HttpMethod.Post, "/training/jobs", () => new StringContent("""{"preset": "smoke"}""", Encoding.UTF8, "application/json")),
            ("/training/jobs", HttpMethod.Post, "/training/jobs?a=1&a=2", () => new StringContent("{}", Encoding.UTF8, "application/json")),
            ("/training/jobs", HttpMethod.Post, "/training/jobs", () => UnreadableJsonType()),
            ("/training/jobs", HttpMethod.Get, "/training/jobs", () => null),
            ("/training/jobs", HttpMethod.Get, "/training/jobs?limit=99999999999", () => null),
            ("/training/options", HttpMethod.Get, "/training/options", () => null),
        ];

        var failures = new List<string>();
        var statuses = new HashSet<(string, int)>();
        foreach (var (template, method, url, body) in requests)
        {
            using var request = new HttpRequestMessage(method, url) { Content = body() };
            if (template.StartsWith("/training", StringComparison.Ordinal) || template.EndsWith("/reload", StringComparison.Ordinal)) request.Headers.Add("X-Api-Key", AdminKey);
            using var response = await client.SendAsync(request);
            var status = (int)response.StatusCode;
            statuses.Add((template, status));
            var text = await response.Content.ReadAsStringAsync();
            failures.AddRange(contract.Check(template, method, status, response.Content.Headers.ContentType, text).Select(f => $"{method} {url} -> {status}: {f}"));
        }
        string id;
        using (var listing = new HttpRequestMessage(HttpMethod.Get, "/training/jobs") { Headers = { { "X-Api-Key", AdminKey } } })
        using (var listed = await client.SendAsync(listing))
        {
            id = JsonNode.Parse(await listed.Content.ReadAsStringAsync())![0]!["id"]!.GetValue<string>();
        }
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{id}") { Headers = { { "X-Api-Key", AdminKey } } })
        using (var response = await client.SendAsync(request))
        {
            failures.AddRange(contract.Check("/training/jobs/{id}", HttpMethod.Get, (int)response.StatusCode, response.Content.Headers.ContentType,
                await response.Content.ReadAsStringAsync()).Select(f => $"GET /training/jobs/{id}: {f}"));
        }

        Directory.Delete(jobs, recursive: true);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // The cases above reached what they were written for: answers and problems both.
        Assert.Superset(new HashSet<(string, int)>
        {
            ("/classify", 200), ("/classify", 400), ("/classify", 404), ("/classify", 415), ("/classify/batch", 200), ("/models", 400),
            ("/models/{name}", 404), ("/v2/models/{name}/infer", 200), ("/v2/models/{name}/infer", 404), ("/training/jobs", 202), ("/training/jobs", 400),
        }, statuses);
    }

    /// <summary>
    /// The keys are the document's security schemes, so that Swagger UI's Authorize button and a generated client send
    /// them: the administrative endpoints always need theirs, the classify endpoints only where a key is configured.
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("a-classify-key")]
    public async Task TheApiKeysAreSecuritySchemesOfTheEndpointsThatNeedThem(string? classifyKey)
    {
        using var factory = bundles.SmokeService(("Security:ClassifyApiKey", classifyKey));
        var document = JsonNode.Parse(await factory.CreateClient().GetStringAsync("/swagger/v1/swagger.json"))!;
        foreach (var scheme in (string[])["adminApiKey", "classifyApiKey"])
        {
            var declared = document["components"]!["securitySchemes"]![scheme]!;
            Assert.Equal(("apiKey", "header", "X-Api-Key"), (declared["type"]!.GetValue<string>(), declared["in"]!.GetValue<string>(), declared["name"]!.GetValue<string>()));
        }
        string? SchemeOf(string path, string method) => document["paths"]![path]![method]!["security"]?[0]?.AsObject().Single().Key;
        Assert.Equal("adminApiKey", SchemeOf("/training/jobs", "post"));
        Assert.Equal("adminApiKey", SchemeOf("/models/{name}/reload", "post"));
        Assert.Equal("adminApiKey", SchemeOf("/models/reload", "post"));
        Assert.Equal(classifyKey is null ? null : "classifyApiKey", SchemeOf("/classify", "post"));
        Assert.Equal(classifyKey is null ? null : "classifyApiKey", SchemeOf("/v2/models/{name}/infer", "post"));
        Assert.Null(SchemeOf("/models", "get"));
    }

    /// <summary>The document's operations and schemas, its OpenAPI 3.0 schemas read as JSON Schema.</summary>
    /// <summary>A JSON body whose Content-Type header cannot be read (an unterminated quote).</summary>
    private static StringContent UnreadableJsonType()
    {
        var content = new StringContent("{}");
        content.Headers.Remove("Content-Type");
        content.Headers.TryAddWithoutValidation("Content-Type", "application/json; charset=\"x");
        return content;
    }

    private sealed class Contract(JsonNode document)
    {
        private readonly JsonObject _definitions = ToJsonSchema(document["components"]!["schemas"]!).AsObject();

        public IEnumerable<string> Check(string template, HttpMethod method, int status, MediaTypeHeaderValue? contentType, string body)
        {
            var operation = document["paths"]?[template]?[method.Method.ToLowerInvariant()];
            if (operation is null)
            {
                yield return $"the document has no {method} {template}";
                yield break;
            }
            var response = operation["responses"]?[status.ToString(System.Globalization.CultureInfo.InvariantCulture)];
            if (response is null)
            {
                yield return $"status {status} is not declared (declared: {string.Join(", ", operation["responses"]!.AsObject().Select(r => r.Key))})";
                yield break;
            }
            var media = contentType?.MediaType;
            var content = response["content"]?.AsObject();
            if (media is null || content is null) yield break;   // a 304, a HEAD: no body
            if (!content.TryGetPropertyValue(media, out var declared) || declared is null)
            {
                yield return $"content type {media} is not declared (declared: {string.Join(", ", content.Select(c => c.Key))})";
                yield break;
            }
            if (!media.EndsWith("json", StringComparison.Ordinal) || declared["schema"] is not { } schema) yield break;
            // A problem is one of the kinds the document shows for its status (a client reads them as the list of what may come).
            if (media == "application/problem+json" && declared["examples"] is JsonObject examples
                && JsonNode.Parse(body)?["type"]?.GetValue<string>() is { } type && !examples.ContainsKey(type[(type.LastIndexOf(':') + 1)..]))
            {
                yield return $"problem {type} is not among the examples of status {status} ({string.Join(", ", examples.Select(e => e.Key))})";
            }
            var standalone = new JsonObject
            {
                ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
                ["$defs"] = _definitions.DeepClone(),
            };
            foreach (var (key, value) in ToJsonSchema(schema).AsObject()) standalone[key] = value?.DeepClone();
            var evaluation = JsonSchema.FromText(standalone.ToJsonString(), new BuildOptions(), new Uri($"urn:contract:{Guid.NewGuid():N}"))
                .Evaluate(JsonDocument.Parse(body).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
            if (evaluation.IsValid) yield break;
            foreach (var detail in (evaluation.Details ?? []).Where(d => d.Errors is { Count: > 0 }).Take(8))
            {
                yield return $"at {detail.InstanceLocation} ({detail.EvaluationPath}): {string.Join("; ", detail.Errors!.Values)}";
            }
        }

        /// <summary>
        /// OpenAPI 3.0's schema dialect as JSON Schema, as strict validators read it: <c>nullable</c> adds "null" to the
        /// <c>type</c> beside it (and to its <c>enum</c>) and does nothing without one, references point into
        /// <c>$defs</c>, and the examples are dropped.
        /// </summary>
        private static JsonNode ToJsonSchema(JsonNode node)
        {
            switch (node)
            {
                case JsonArray array:
                    return new JsonArray([.. array.Select(item => item is null ? null : ToJsonSchema(item))]);
                case JsonObject schema:
                    var converted = new JsonObject();
                    var nullable = false;
                    foreach (var (key, value) in schema)
                    {
                        switch (key)
                        {
                            case "nullable":
                                nullable = value?.GetValue<bool>() == true;
                                break;
                            case "example" or "examples":
                                break;
                            case "$ref":
                                converted[key] = value!.GetValue<string>().Replace("#/components/schemas/", "#/$defs/", StringComparison.Ordinal);
                                break;
                            case "properties" or "$defs" when value is JsonObject members:
                                converted[key] = new JsonObject(members.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)ToJsonSchema(m.Value!))));
                                break;
                            default:
                                converted[key] = value is JsonObject or JsonArray ? ToJsonSchema(value) : value?.DeepClone();
                                break;
                        }
                    }
                    if (!nullable) return converted;
                    if (converted["type"] is JsonValue type)
                    {
                        converted["type"] = new JsonArray(type.GetValue<string>(), "null");
                        if (converted["enum"] is JsonArray values) values.Add(null);
                        return converted;
                    }
                    // OpenAPI 3.0.3: nullable has no effect without a type beside it (strict validators read it so).
                    return converted;
                default:
                    return node.DeepClone();
            }
        }
    }
}
