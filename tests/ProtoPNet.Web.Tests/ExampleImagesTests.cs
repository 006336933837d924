using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Web.Tests;

/// <summary>The bundle's example images (model.json <c>examples</c>): listed in /models and served like prototype pictures.</summary>
[Collection(WebCollection.Name)]
public sealed class ExampleImagesTests(WebFixture fixture)
{
    [Fact]
    public async Task Models_list_the_examples_and_each_link_serves_the_file()
    {
        using var models = JsonDocument.Parse(await fixture.Http.GetStringAsync("models"));
        var model = models.RootElement.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("name").GetString() == fixture.ModelName);
        var examples = model.GetProperty("examples").EnumerateArray().ToArray();
        Assert.NotEmpty(examples);
        Assert.Equal(fixture.ExampleCount, examples.Length);

        var manifest = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(fixture.BundleDirectory, "model.json")))!;
        var classes = manifest["classes"]!.AsArray();
        for (var i = 0; i < examples.Length; i++)
        {
            var listed = manifest["examples"]![i]!;
            var classIndex = listed["classIndex"]!.GetValue<int>();
            Assert.Equal(classIndex, examples[i].GetProperty("classIndex").GetInt32());
            Assert.Equal(classes.Single(c => c!["index"]!.GetValue<int>() == classIndex)!["name"]!.GetValue<string>(),
                examples[i].GetProperty("label").GetString());

            var url = examples[i].GetProperty("url").GetString()!;
            Assert.Equal($"/models/{fixture.ModelName}/versions/{model.GetProperty("defaultVersion").GetString()}/examples/{i}", url);
            using var response = await fixture.Http.GetAsync(url.TrimStart('/'));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
            var expected = await File.ReadAllBytesAsync(Path.Combine(fixture.BundleDirectory, listed["file"]!.GetValue<string>()));
            Assert.Equal(expected, await response.Content.ReadAsByteArrayAsync());
            Assert.Contains("immutable", response.Headers.CacheControl?.ToString());

            // Cached copies are revalidated with the ETag.
            using var again = new HttpRequestMessage(HttpMethod.Get, url.TrimStart('/'));
            again.Headers.IfNoneMatch.Add(response.Headers.ETag!);
            using var notModified = await fixture.Http.SendAsync(again);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        }

        var version = model.GetProperty("defaultVersion").GetString();
        using var versionInfo = JsonDocument.Parse(await fixture.Http.GetStringAsync($"models/{fixture.ModelName}/versions/{version}"));
        Assert.Equal(examples.Length, versionInfo.RootElement.GetProperty("examples").GetArrayLength());
    }

    [Fact]
    public async Task Unknown_examples_are_a_404_problem()
    {
        using var models = JsonDocument.Parse(await fixture.Http.GetStringAsync($"models/{fixture.ModelName}"));
        var version = models.RootElement.GetProperty("defaultVersion").GetString();
        foreach (var path in new[] { $"models/{fixture.ModelName}/versions/{version}/examples/{fixture.ExampleCount}", $"models/{fixture.ModelName}/versions/{version}/examples/-1",
                     $"models/{fixture.ModelName}/versions/nope/examples/0", "models/nope/versions/1/examples/0" })
        {
            using var response = await fixture.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.False(string.IsNullOrWhiteSpace(problem.RootElement.GetProperty("detail").GetString()), path);
        }
    }

    [Fact]
    public async Task Example_paths_outside_the_bundle_or_not_images_are_never_served_and_bundles_without_examples_list_none()
    {
        var root = Path.Combine(fixture.WorkDirectory, "root-" + Guid.NewGuid().ToString("N")[..8]);
        var version = Path.GetFileName(fixture.SmokeSource);
        // One bundle whose manifest points outside itself and at a non-image; another bundle name with no examples at all.
        var tricky = Path.Combine(root, "smoke", version);
        Trainer.CopyDirectory(fixture.SmokeSource, tricky);
        var manifestPath = Path.Combine(tricky, "model.json");
        var manifest = JsonNode.Parse(await File.ReadAllTextAsync(manifestPath))!.AsObject();
        await File.WriteAllTextAsync(Path.Combine(root, "secret.png"), "outside the bundle");
        manifest["examples"] = new JsonArray(
            new JsonObject { ["file"] = "../../secret.png", ["classIndex"] = 0 },
            new JsonObject { ["file"] = "model.json", ["classIndex"] = 0 },
            new JsonObject { ["file"] = "/etc/hostname.png", ["classIndex"] = 0 });
        await File.WriteAllTextAsync(manifestPath, manifest.ToJsonString());
        var plain = Path.Combine(root, "plain", version);
        Trainer.CopyDirectory(fixture.SmokeSource, plain);
        var plainManifest = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(plain, "model.json")))!.AsObject();
        plainManifest.Remove("examples");
        plainManifest["name"] = "plain";
        await File.WriteAllTextAsync(Path.Combine(plain, "model.json"), plainManifest.ToJsonString());

        await using var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(builder =>
        {
            builder.UseSetting("Models:Root", root);
            builder.UseSetting("Inference:ExecutionProvider", "cpu");
        });
        using var client = factory.CreateClient();
        using var models = JsonDocument.Parse(await client.GetStringAsync("/models"));
        var byName = models.RootElement.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.Equal(2, byName.Count);
        Assert.False(byName["plain"].TryGetProperty("examples", out _), "a bundle without examples lists none");

        for (var i = 0; i < 3; i++)
        {
            using var response = await client.GetAsync($"/models/smoke/versions/{version}/examples/{i}");
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Contains("not an image file inside the bundle", body);
            Assert.DoesNotContain("outside the bundle\"", body);
        }
    }
}
