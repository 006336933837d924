using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Apis;

/// <summary>An example image stored in a bundle: its index, true class and link.</summary>
public sealed record ExampleImageResponse(int Index, int? ClassIndex, string? Label, string Url);

/// <summary>GET /models/{name}/versions/{version}/examples/{index}: the example images a bundle lists in model.json.</summary>
public static class ExamplesApi
{
    /// <summary>File types an example may have, by extension, with the content type it is served as.</summary>
    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        [".png"] = "image/png", [".jpg"] = "image/jpeg", [".jpeg"] = "image/jpeg", [".gif"] = "image/gif",
        [".bmp"] = "image/bmp", [".webp"] = "image/webp",
    };

    public static IEndpointRouteBuilder MapExamplesApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/models/{name}/versions/{version}/examples/{index:int}", GetExample)
            .WithTags("Models")
            .WithName("GetExampleImage")
            .WithSummary("Get an example image stored in a bundle")
            .WithDescription("A test image the trainer stored in the bundle (model.json `examples`), for trying the model, e.g. on the " +
                             "web page. The links are listed under `examples` in GET /models. Bundles are immutable, so the images carry " +
                             "long cache headers and an ETag.")
            .WithMetadata(new ProducesResponseTypeAttribute(typeof(Stream), StatusCodes.Status200OK, "image/png", [.. ContentTypes.Values.Distinct().Where(type => type != "image/png")])
            {
                Description = "The example image, as stored in the bundle (usually PNG).",
            })
            .Produces(StatusCodes.Status304NotModified)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ValidateModelRouteValues();
        // An index that is no int (a word, or beyond int's range) would match no route at all: answered as an unknown example.
        app.MapGet("/models/{name}/versions/{version}/examples/{index}", ExampleIndexNotANumber)
            .ExcludeFromDescription()
            .ValidateModelRouteValues();
        return app;
    }

    internal static ProblemHttpResult ExampleIndexNotANumber(string name, string version, string index, ModelRegistry registry)
    {
        return NoSuchExample(registry.Family(name).Find(version), $"'{RequestText.Echo(index)}'");
    }

    private static ProblemHttpResult NoSuchExample(ModelBundle bundle, string index)
    {
        var count = bundle.Manifest.Examples?.Count ?? 0;
        return ProblemCatalog.Problem(ProblemCatalog.ExampleNotFound, count == 0
            ? $"{bundle.Name}@{bundle.Version} has no example images."
            : $"{bundle.Name}@{bundle.Version} has example images 0 to {count - 1}; {index} is not one of them.");
    }

    public static string ExampleUrl(ModelBundle bundle, int index) => $"{ModelsApi.VersionUrl(bundle)}/examples/{index}";

    /// <summary>The bundle's example links, or null when its manifest lists none (the field is then left out of the JSON).</summary>
    public static IReadOnlyList<ExampleImageResponse>? Links(ModelBundle bundle)
    {
        var examples = bundle.Manifest.Examples;
        if (examples is null || examples.Count == 0) return null;
        return examples.Select((example, index) => new ExampleImageResponse(index, example.ClassIndex,
            example.ClassIndex is { } k && k >= 0 && k < bundle.ClassNames.Count ? bundle.ClassNames[k] : null,
            ExampleUrl(bundle, index))).ToArray();
    }

    /// <param name="name">Model name.</param>
    /// <param name="version">Version id.</param>
    /// <param name="index">Example index (its position in model.json's <c>examples</c>).</param>
    internal static Results<PhysicalFileHttpResult, ProblemHttpResult> GetExample(
        string name, string version, int index, ModelRegistry registry, HttpResponse response)
    {
        var bundle = registry.Family(name).Find(version);
        var examples = bundle.Manifest.Examples ?? [];
        if (index < 0 || index >= examples.Count)
        {
            return NoSuchExample(bundle, index.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        // The path comes from the manifest: it must stay inside the bundle folder and be an image file.
        var path = bundle.ResolveFile(examples[index].File);
        if (path is null || !ContentTypes.TryGetValue(Path.GetExtension(path), out var contentType))
        {
            return ProblemCatalog.Problem(ProblemCatalog.ExampleNotFound,
                $"{bundle.Name}@{bundle.Version} lists example {index} as '{examples[index].File}', which is not an image file inside the bundle.");
        }
        return ModelsApi.BundleFile(bundle, path, contentType, $"example-{index}", response);
    }
}
