using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// Copies of a trained bundle, each with a field of its model.json set to an odd value: every value (outside the
/// training record) once as a number no double holds or a string with a NUL, then 60 copies with one to three fields
/// set to another JSON type, null, a path out of the bundle, a number past 32 bits... or removed. Each copy loads or is
/// refused with a reason, and no endpoint of a copy that loads answers 5xx. (A scorecard holding 1e400 made its
/// version's page a 500, a calibration holding it every /classify, a NUL in a picture's path that picture.) Seeded, so
/// a failure replays.
/// </summary>
[Collection(BundlesCollection.Name)]
public class ManifestFuzzTests(TrainerBundles bundles)
{
    private const int Seed = 20261205;
    private const int Copies = 60;

    /// <summary>Written into model.json as they are (so 1e400 stays 1e400, which no JsonNode can hold).</summary>
    private static readonly string[] OddValues =
    [
        "null", "-1", "0", "2147483648", "1e400", "-1e400", "1.5", "\"\"", "\"NaN\"", "\"Infinity\"", "[]", "{}",
        "[null]", "true", "\"../../../../etc/passwd\"", "\"/etc/passwd\"", "\"a\\u0000b\"", "4097",
        "\"" + new string('x', 5000) + "\"",
    ];

    [Fact]
    public async Task OddManifestValuesAreRefusedOrServedWithoutA5xx()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(bundles.SmokeBundle, "model.json")))!;
        var paths = Paths(manifest, []).ToArray();
        // Every value outside the free-form training record once, as the odd value of its own kind most likely to get
        // through: a number no double holds, a string with a NUL. Then random edits.
        var leaves = paths.Where(path => path[0] is not "training" && Node(manifest, path) is JsonValue).ToArray();
        var copies = leaves.Select<object[], (string, string, Action<string>?)>((path, k) => (bundles.SmokeBundle, $"e{k}", dir => Edit(dir, path, EdgeValue(Node(manifest, path)!))))
            .Concat(Enumerable.Range(0, Copies).Select<int, (string, string, Action<string>?)>(i => (bundles.SmokeBundle, $"m{i}", dir => Mutate(dir, paths, new Random(Seed + i)))))
            .ToArray();
        var root = bundles.NewRoot(copies);
        await using var factory = ServiceFactory.ForRoot(root);
        var client = factory.CreateClient();

        var catalog = await Http.JsonAsync(await client.GetAsync("/models"));
        var loaded = catalog.GetProperty("models").EnumerateArray()
            .Select(m => (Name: m.GetProperty("name").GetString()!, Version: m.GetProperty("defaultVersion").GetString()!)).ToArray();
        var refused = catalog.GetProperty("refused").EnumerateArray().ToArray();
        Assert.All(refused, r => Assert.False(string.IsNullOrWhiteSpace(r.GetProperty("reason").GetString())));
        Assert.Equal(copies.Length, loaded.Length + refused.Length);
        // Both sides are exercised: odd values the service sets aside, and those it refuses.
        Assert.InRange(loaded.Length, 10, copies.Length - 10);

        var image = Http.BundleImage(bundles.SmokeBundle, 0);
        foreach (var (name, version) in loaded)
        {
            var model = $"/models/{name}/versions/{version}";
            var gets = new List<string> { $"/models/{name}", model, $"{model}/prototypes", $"{model}/examples/0", $"/v2/models/{name}", $"/v2/models/{name}/ready" };
            foreach (var index in (int[])[0, 1, 2])
            {
                gets.AddRange(from kind in (string[])["patch", "source", "activation"] select $"{model}/prototypes/{index}/{kind}.png");
            }
            foreach (var path in gets) await AssertNo5xxAsync(await client.GetAsync(path), $"GET {path}");
            foreach (var query in (string[])["", "&heatmaps=png&topPrototypes=3", "&verify=true"])
            {
                await AssertNo5xxAsync(await client.PostAsync($"/classify?model={name}{query}", Http.Image(image)), $"/classify {name}{query}");
            }
            await AssertNo5xxAsync(await client.PostAsync($"/classify/card?model={name}", Http.Image(image)), $"/classify/card {name}");
            await AssertNo5xxAsync(await client.PostAsync($"/v2/models/{name}/infer", await InferBodyAsync(client, name)), $"v2 infer {name}");
        }
    }

    /// <summary>Every member and element of the manifest (the first three of each array), by its path from the top.</summary>
    private static IEnumerable<object[]> Paths(JsonNode node, object[] path)
    {
        if (path.Length > 0) yield return path;
        IEnumerable<(object Key, JsonNode? Child)> children = node switch
        {
            JsonObject members => members.Select(m => ((object)m.Key, m.Value)),
            JsonArray items => items.Take(3).Select((item, index) => ((object)index, item)),
            _ => [],
        };
        foreach (var (key, child) in children)
        {
            if (child is null) yield return [.. path, key];
            else foreach (var inner in Paths(child, [.. path, key])) yield return inner;
        }
    }

    private static string EdgeValue(JsonNode leaf) => leaf.GetValueKind() switch
    {
        JsonValueKind.Number => "1e400",
        JsonValueKind.String => "\"a\\u0000b\"",
        _ => "\"odd\"",
    };

    /// <summary>Writes <paramref name="rawJson"/> as it is in place of the value at <paramref name="path"/>.</summary>
    private static void Edit(string bundle, object[] path, string rawJson) =>
        TrainerBundles.EditManifest(bundle, manifest => Set(manifest, path, TrainerBundles.RawJson), rawJson);

    /// <summary>Sets one to three of the paths to odd values, or removes them.</summary>
    private static void Mutate(string bundle, object[][] paths, Random random) =>
        TrainerBundles.EditManifestWithRawJson(bundle, manifest =>
        {
            var written = new List<(string Mark, string Json)>();
            for (var edit = random.Next(1, 4); edit > 0; edit--)
            {
                var path = paths[random.Next(paths.Length)];
                var mark = $"odd-value-{written.Count}";
                if (random.Next(8) == 0) Set(manifest, path, null, remove: true);
                else if (Set(manifest, path, mark)) written.Add((mark, OddValues[random.Next(OddValues.Length)]));
            }
            return written;
        });

    /// <summary>The node at the end of <paramref name="keys"/> (member names and element indexes), or null when there is none.</summary>
    private static JsonNode? Node(JsonNode manifest, IEnumerable<object> keys) => keys.Aggregate((JsonNode?)manifest, (node, key) => (node, key) switch
    {
        (JsonObject members, string name) => members[name],
        (JsonArray items, int index) when index < items.Count => items[index],
        _ => null,
    });

    /// <summary>
    /// Sets (or removes) the value at <paramref name="path"/>; false where its parent is gone or of another kind (an
    /// earlier edit replaced a member above it).
    /// </summary>
    private static bool Set(JsonNode manifest, object[] path, string? value, bool remove = false)
    {
        switch (Node(manifest, path[..^1]), path[^1])
        {
            case (JsonObject members, string name):
                if (remove) members.Remove(name);
                else members[name] = value;
                return true;
            case (JsonArray items, int index) when index < items.Count:
                if (remove) items.RemoveAt(index);
                else items[index] = value;
                return true;
            default:
                return false;
        }
    }

    /// <summary>A v2 request of one mid-grey image of the shape the model's metadata gives.</summary>
    private static async Task<StringContent> InferBodyAsync(HttpClient client, string name)
    {
        var metadata = await Http.JsonAsync(await client.GetAsync($"/v2/models/{name}"));
        var shape = metadata.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(d => Math.Max(1, d.GetInt32())).ToArray();
        var data = Enumerable.Repeat(0.5, shape.Aggregate(1, (product, d) => product * d));
        var body = JsonSerializer.Serialize(new { inputs = new[] { new { name = "image", shape, datatype = "FP32", data } } });
        return new StringContent(body, Encoding.UTF8, "application/json");
    }

    private static async Task AssertNo5xxAsync(HttpResponseMessage response, string request)
    {
        using (response)
        {
            var status = (int)response.StatusCode;
            Assert.True(status < 500, $"{request}: {status} {await response.Content.ReadAsStringAsync()}");
        }
    }
}
