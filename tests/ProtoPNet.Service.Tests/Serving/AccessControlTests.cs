using System.Net;
using System.Net.Sockets;
using System.Text;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>API keys, the per-client rate limit, CORS, and route values that try to leave the model root.</summary>
[Collection(BundlesCollection.Name)]
public class AccessControlTests(TrainerBundles bundles)
{
    [Fact]
    public async Task ClassifyApiKeyIsOffByDefaultAndRequiredOnceConfigured()
    {
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        Assert.Equal(HttpStatusCode.OK, (await bundles.Service.CreateClient().PostAsync("/classify", Http.Image(image))).StatusCode);

        await using var factory = bundles.SmokeService(("Security:ClassifyApiKey", "classify-key"));
        var client = factory.CreateClient();
        await Http.ProblemAsync(await client.PostAsync("/classify", Http.Image(image)), HttpStatusCode.Unauthorized, "api-key-missing");
        await Http.ProblemAsync(await client.PostAsync("/classify/card", Http.Image(image)), HttpStatusCode.Unauthorized, "api-key-missing");
        await Http.ProblemAsync(await client.PostAsync("/classify/batch", Http.Image(image)), HttpStatusCode.Unauthorized, "api-key-missing");
        // Under /v2 in the protocol's own error body.
        Assert.Contains("X-Api-Key", await Http.OpenInferenceErrorAsync(
            await client.PostAsync("/v2/models/smoke/infer", new StringContent("{}", Encoding.UTF8, "application/json")), HttpStatusCode.Unauthorized));
        using (var wrongV2 = new HttpRequestMessage(HttpMethod.Post, "/v2/models/smoke/infer") { Content = new StringContent("{}", Encoding.UTF8, "application/json") })
        {
            wrongV2.Headers.Add("X-Api-Key", "classify-kez");
            await Http.OpenInferenceErrorAsync(await client.SendAsync(wrongV2), HttpStatusCode.Forbidden);
        }
        using (var wrong = new HttpRequestMessage(HttpMethod.Post, "/classify") { Content = Http.Image(image) })
        {
            wrong.Headers.Add("X-Api-Key", "classify-kez");
            await Http.ProblemAsync(await client.SendAsync(wrong), HttpStatusCode.Forbidden, "api-key-rejected");
        }
        using var right = new HttpRequestMessage(HttpMethod.Post, "/classify") { Content = Http.Image(image) };
        right.Headers.Add("X-Api-Key", "classify-key");
        await Http.JsonAsync(await client.SendAsync(right));
        // Reading endpoints stay open.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/models")).StatusCode);
    }

    /// <summary>The two keys open their own endpoints only: the classify key is not an administrator's, nor the reverse.</summary>
    [Fact]
    public async Task TheAdminKeyAndTheClassifyKeyEachOpenOnlyTheirOwnEndpoints()
    {
        await using var factory = bundles.SmokeService(("Security:AdminApiKey", "admin-key"), ("Security:ClassifyApiKey", "classify-key"));
        var client = factory.CreateClient();
        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        HttpRequestMessage Request(string path, string? key, HttpContent? content = null)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
            if (key is not null) request.Headers.Add("X-Api-Key", key);
            return request;
        }

        await Http.ProblemAsync(await client.SendAsync(Request("/models/reload", null)), HttpStatusCode.Unauthorized, "api-key-missing");
        await Http.ProblemAsync(await client.SendAsync(Request("/models/reload", "classify-key")), HttpStatusCode.Forbidden, "api-key-rejected");
        await Http.JsonAsync(await client.SendAsync(Request("/models/reload", "admin-key")));

        await Http.ProblemAsync(await client.SendAsync(Request("/classify", "admin-key", Http.Image(image))), HttpStatusCode.Forbidden, "api-key-rejected");
        await Http.JsonAsync(await client.SendAsync(Request("/classify", "classify-key", Http.Image(image))));
    }

    [Fact]
    public void KeysAreComparedWholly()
    {
        Assert.True(ApiKeys.Matches("secret", "secret"));
        Assert.False(ApiKeys.Matches("secret", "secre"));
        Assert.False(ApiKeys.Matches("secret ", "secret"));
        Assert.False(ApiKeys.Matches("", "secret"));
    }

    [Fact]
    public async Task RateLimitAnswers429WithRetryAfterAndSparesHealthAndMetrics()
    {
        await using var factory = bundles.SmokeService(("RateLimiting:PermitLimit", "3"), ("RateLimiting:WindowSeconds", "60"));
        var client = factory.CreateClient();
        for (var i = 0; i < 3; i++) Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/models")).StatusCode);
        var limited = await client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
        await Http.ProblemAsync(limited, (HttpStatusCode)429, "rate-limited");
        var retryAfter = int.Parse(limited.Headers.GetValues("Retry-After").Single());
        Assert.InRange(retryAfter, 1, 60);
        var limitedV2 = await client.PostAsync("/v2/models/smoke/infer", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Contains("RateLimiting:PermitLimit", await Http.OpenInferenceErrorAsync(limitedV2, (HttpStatusCode)429));
        Assert.True(limitedV2.Headers.Contains("Retry-After"));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/models/smoke/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/metrics")).StatusCode);
    }

    [Fact]
    public async Task TheRateLimitCountsEachClientAddressApart()
    {
        // The service as deployed (Kestrel, a process of its own), asked from two loopback addresses: one client
        // spending its permits leaves the other's untouched.
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ["RateLimiting__PermitLimit"] = "2",
            ["RateLimiting__WindowSeconds"] = "60",
        });
        await using (service)
        {
            Assert.True(ready, string.Join('\n', service.Output));
            using var first = ClientFrom("127.0.0.2", service.Client.BaseAddress!);
            using var second = ClientFrom("127.0.0.3", service.Client.BaseAddress!);
            for (var i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.OK, (await first.GetAsync("/models")).StatusCode);
            await Http.ProblemAsync(await first.GetAsync("/models"), (HttpStatusCode)429, "rate-limited");
            for (var i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.OK, (await second.GetAsync("/models")).StatusCode);
            await Http.ProblemAsync(await second.GetAsync("/models"), (HttpStatusCode)429, "rate-limited");
        }
    }

    /// <summary>A client whose connections come from <paramref name="address"/> (any 127.x address is the loopback on Linux).</summary>
    private static HttpClient ClientFrom(string address, Uri server) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(IPAddress.Parse(address), 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    }) { BaseAddress = server, Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task CorsIsOffByDefaultAndAllowsOnlyConfiguredOrigins()
    {
        static HttpRequestMessage Preflight(string origin)
        {
            var request = new HttpRequestMessage(HttpMethod.Options, "/classify");
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            request.Headers.Add("Access-Control-Request-Headers", "x-api-key,content-type");
            return request;
        }
        var closed = await bundles.Service.CreateClient().SendAsync(Preflight("https://app.example"));
        Assert.False(closed.Headers.Contains("Access-Control-Allow-Origin"));

        await using var factory = bundles.SmokeService(("Security:CorsOrigins:0", "https://app.example"));
        var client = factory.CreateClient();
        var allowed = await client.SendAsync(Preflight("https://app.example"));
        Assert.Equal("https://app.example", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        // A page may send the classify key and its image's type, and read how long to wait after a 429 or 503.
        Assert.Equal(["Content-Type", "X-Api-Key"],
            allowed.Headers.GetValues("Access-Control-Allow-Headers").SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries)).Order());
        using (var crossOrigin = new HttpRequestMessage(HttpMethod.Get, "/models"))
        {
            crossOrigin.Headers.Add("Origin", "https://app.example");
            var answer = await client.SendAsync(crossOrigin);
            Assert.Equal("https://app.example", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
            Assert.Equal("Retry-After", answer.Headers.GetValues("Access-Control-Expose-Headers").Single());
        }
        var other = await client.SendAsync(Preflight("https://evil.example"));
        Assert.False(other.Headers.Contains("Access-Control-Allow-Origin"));

        // One value listing origins, as an environment variable gives it (Security__CorsOrigins="a, b"), is a list too.
        await using var listed = bundles.SmokeService(("Security:CorsOrigins", "https://app.example, https://admin.example"));
        var second = await listed.CreateClient().SendAsync(Preflight("https://admin.example"));
        Assert.Equal("https://admin.example", second.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    public static TheoryData<string> TraversalValues =>
    [
        "..", "%2e%2e", "%2E%2E", "..%2f..%2fetc", "..%2F..%2F..%2Fetc%2Fpasswd", "%2fetc%2fpasswd", "%2Fetc%2Fpasswd",
        "..%5c..%5cwindows", "%252e%252e%252fetc", ".%2e", "%2e.", "...", ".hidden", "C:%5CWindows", "smoke%2f..%2f..",
        "..;", "~root",
    ];

    [Theory]
    [MemberData(nameof(TraversalValues))]
    public async Task EveryRouteParameterRefusesPathsThatLeaveTheModelRoot(string value)
    {
        var client = bundles.Service.CreateClient();
        var version = Path.GetFileName(bundles.SmokeBundle);
        string[] gets =
        [
            $"/models/{value}", $"/models/smoke/versions/{value}", $"/models/{value}/versions/{version}",
            $"/models/{value}/versions/{version}/prototypes", $"/models/smoke/versions/{value}/prototypes",
            $"/models/smoke/versions/{value}/prototypes/0/patch.png", $"/models/{value}/versions/{version}/prototypes/0/source.png",
            $"/models/smoke/versions/{version}/prototypes/0/{value}.png", $"/models/smoke/versions/{version}/prototypes/{value}/patch.png",
            $"/models/smoke/versions/{value}/examples/0", $"/models/smoke/versions/{version}/examples/{value}",
            $"/v2/models/{value}", $"/v2/models/{value}/ready", $"/v2/models/smoke/versions/{value}", $"/v2/models/smoke/versions/{value}/ready",
        ];
        foreach (var path in gets) await AssertRefusedAsync(await client.GetAsync(path), path);
        string[] posts = [$"/models/{value}/reload", $"/v2/models/{value}/infer", $"/v2/models/smoke/versions/{value}/infer", $"/classify?model={value}",
            $"/classify?model=smoke@{value}", $"/classify/card?model={value}"];
        foreach (var path in posts)
        {
            HttpContent body = path.StartsWith("/v2", StringComparison.Ordinal)
                ? new StringContent("{\"inputs\":[]}", Encoding.UTF8, "application/json")
                : Http.Image(Http.BundleImage(bundles.SmokeBundle, 0));
            await AssertRefusedAsync(await client.PostAsync(path, body), path);
        }
    }

    [Fact]
    public async Task AManifestPicturePathOutsideTheBundleIsNotServed()
    {
        var root = bundles.NewRoot((bundles.SmokeBundle, "smoke", bundle => TrainerBundles.EditManifest(bundle, manifest =>
        {
            manifest["prototypes"]![0]!["images"]!["patch"] = "../../../../../../etc/passwd";
            manifest["prototypes"]![1]!["images"]!["patch"] = "/etc/passwd";
            // A NUL names no file (the path functions throw on one: these answered 500).
            manifest["prototypes"]![2]!["images"]!["patch"] = "prototypes/2/patch.png\0";
            manifest["examples"]![0]!["file"] = "examples/0.png\0";
        })));
        await using var factory = ServiceFactory.ForRoot(root);
        var client = factory.CreateClient();
        var version = Path.GetFileName(bundles.SmokeBundle);
        foreach (var index in (int[])[0, 1, 2])
        {
            var response = await client.GetAsync($"/models/smoke/versions/{version}/prototypes/{index}/patch.png");
            await Http.ProblemAsync(response, HttpStatusCode.NotFound, "prototype-not-found");
        }
        await Http.ProblemAsync(await client.GetAsync($"/models/smoke/versions/{version}/examples/0"), HttpStatusCode.NotFound, "example-not-found");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/models/smoke/versions/{version}/prototypes/3/patch.png")).StatusCode);
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, string path)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("root:", text);
        Assert.DoesNotContain("protopnet-bundle", text);
        Assert.NotEqual(HttpStatusCode.InternalServerError, response.StatusCode);
        // A literal or %2e-encoded dot segment is resolved by the URL rules (client and Kestrel alike) before routing:
        // "/models/smoke/versions/.." is "/models/smoke/", the model's description. No route parameter ever holds it,
        // so there is nothing to refuse; the answer is that other, public resource (checked above not to be a file).
        var normalized = response.RequestMessage!.RequestUri!.AbsolutePath;
        if (!normalized.Contains("..", StringComparison.Ordinal) && !path.Split('?')[0].Equals(normalized, StringComparison.Ordinal)
            && !normalized.Contains("%2", StringComparison.OrdinalIgnoreCase) && response.IsSuccessStatusCode)
        {
            return;
        }
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed,
            $"{path}: {(int)response.StatusCode} {text[..Math.Min(200, text.Length)]}");
        Assert.DoesNotContain("root:", text);
    }
}
