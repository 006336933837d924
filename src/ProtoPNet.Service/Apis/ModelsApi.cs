using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Apis;

/// <summary>GET /models and its children: metadata, prototypes and prototype pictures.</summary>
public static class ModelsApi
{
    public static readonly string[] PictureKinds = ["patch", "source", "activation"];

    public static IEndpointRouteBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/models").WithTags("Models").ValidateModelRouteValues();

        group.MapGet("", GetModels)
            .WithName("ListModels")
            .WithSummary("List the loaded models")
            .WithDescription("Each loaded model with its versions, default version, classes, input size, prototype count, training metrics, load time and execution provider; also the default model and any refused bundle with the reason.")
            .Produces<ModelsResponse>();

        group.MapGet("/{name}", GetModel)
            .WithName("GetModel")
            .WithSummary("Describe one model")
            .WithDescription("The model's loaded versions and the version served by default (the highest, unless pinned by Models:Pinned).")
            .Produces<ModelResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        group.MapGet("/{name}/versions/{version}", GetVersion)
            .WithName("GetModelVersion")
            .WithSummary("Describe one model version")
            .WithDescription("Classes, input, feature map size, prototype count, training record, graph sha256, load time and execution provider of one loaded version, and its interpretability scorecard (per prototype: consistency, noise and JPEG stability, background) when the bundle has one.")
            .Produces<ModelVersionResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        group.MapGet("/{name}/versions/{version}/prototypes", GetPrototypes)
            .WithName("ListPrototypes")
            .WithSummary("List a version's prototypes")
            .WithDescription("Every prototype: its class, the training image it was projected onto (split, item, feature cell, box in pixels of the model's input) and links to its pictures.")
            .Produces<PrototypesResponse>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        group.MapGet("/{name}/versions/{version}/prototypes/{index:int}/{kind}.png", GetPrototypePicture)
            .WithName("GetPrototypePicture")
            .WithSummary("Get a prototype picture")
            .WithDescription("`patch`: the 95th-percentile crop of the source training image (the \"that\"); `source`: the whole source image; `activation`: the source image with the prototype's self-activation heatmap. Bundles are immutable, so the pictures carry long cache headers and an ETag (If-None-Match gives 304).")
            .WithMetadata(new ProducesResponseTypeAttribute(typeof(Stream), StatusCodes.Status200OK, "image/png")
            {
                Description = "The picture, a PNG.",
            })
            .Produces(StatusCodes.Status304NotModified)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        // An index that is no int (a word, or beyond int's range) would match no route at all: answered as an unknown prototype.
        group.MapGet("/{name}/versions/{version}/prototypes/{index}/{kind}.png", PrototypeIndexNotANumber)
            .ExcludeFromDescription();
        return app;
    }

    public static string VersionUrl(ModelBundle bundle) =>
        $"/models/{Uri.EscapeDataString(bundle.Name)}/versions/{Uri.EscapeDataString(bundle.Version)}";

    public static string PrototypePictureUrl(ModelBundle bundle, int index, string kind) => $"{VersionUrl(bundle)}/prototypes/{index}/{kind}.png";

    internal static Ok<ModelsResponse> GetModels(ModelRegistry registry)
    {
        var catalog = registry.Catalog;
        var provider = registry.Provider;
        return TypedResults.Ok(new ModelsResponse(
            catalog.DefaultModel, provider.Provider, provider.FallbackReason,
            catalog.Families.Values.Select(f => ToModel(f, catalog)).ToArray(),
            catalog.Refused.Select(r => RefusedBundleResponse.Of(r, registry.Root)).ToArray(), catalog.IsLoading));
    }

    /// <param name="name">Model name, e.g. <c>fashion-mnist</c>.</param>
    internal static Ok<ModelResponse> GetModel(string name, ModelRegistry registry)
    {
        var catalog = registry.Catalog;   // read once: a reload may swap it meanwhile
        return TypedResults.Ok(ToModel(catalog.Family(name), catalog));
    }

    /// <param name="name">Model name.</param>
    /// <param name="version">Version id, e.g. <c>20261129T010203Z</c>.</param>
    internal static Ok<ModelVersionResponse> GetVersion(string name, string version, ModelRegistry registry)
    {
        var catalog = registry.Catalog;   // read once: a reload may swap it meanwhile
        var family = catalog.Family(name);
        var bundle = family.Find(version);
        var manifest = bundle.Manifest;
        return TypedResults.Ok(new ModelVersionResponse(
            bundle.Name, bundle.Version, ReferenceEquals(family.Served, bundle), manifest.CreatedUtc, Classes(bundle), Input(bundle),
            bundle.PrototypeCount, new FeatureCellResponse(manifest.FeatureMap.Height, manifest.FeatureMap.Width), TrainingOf(manifest),
            bundle.LoadedUtc, Math.Round(bundle.LoadMilliseconds, 1), bundle.Provider.Provider, manifest.Onnx.Sha256,
            VersionUrl(bundle) + "/prototypes")
        {
            Examples = ExamplesApi.Links(bundle),
            ExecutionStrategy = Strategy(catalog.Served[bundle].Strategy),
            Interpretability = manifest.Interpretability,
        });
    }

    private static ExecutionStrategyResponse Strategy(ExecutionStrategy strategy)
    {
        static StrategyMeasurementResponse[] Of(IEnumerable<StrategyMeasurement> measurements) => measurements
            .Select(m => new StrategyMeasurementResponse(m.BatchSize, m.ConcurrentRuns, m.IntraOpThreads, m.ImagesPerSecond, m.CpuMsPerImage)).ToArray();
        return new(strategy.MaxBatchSize, strategy.ConcurrentRuns, strategy.IntraOpThreads, strategy.LoneIntraOpThreads, strategy.Source,
            Of(strategy.Measurements), strategy.LoneMeasurements.Select(m => new LoneMeasurementResponse(m.IntraOpThreads, m.P50Ms, m.Runs)).ToArray(),
            strategy.PaddedBatches);
    }

    /// <param name="name">Model name.</param>
    /// <param name="version">Version id.</param>
    internal static Ok<PrototypesResponse> GetPrototypes(string name, string version, ModelRegistry registry)
    {
        var bundle = registry.Family(name).Find(version);
        var prototypes = bundle.Manifest.Prototypes.Select(p => new PrototypeResponse(
            p.Index, p.ClassIndex, bundle.ClassNames[p.ClassIndex], p.Source,
            new PrototypePicturesResponse(PrototypePictureUrl(bundle, p.Index, "patch"), PrototypePictureUrl(bundle, p.Index, "source"),
                PrototypePictureUrl(bundle, p.Index, "activation")))).ToArray();
        return TypedResults.Ok(new PrototypesResponse(bundle.Name, bundle.Version, prototypes));
    }

    internal static ProblemHttpResult PrototypeIndexNotANumber(string name, string version, string index, ModelRegistry registry)
    {
        var bundle = registry.Family(name).Find(version);
        return NoSuchPrototype(bundle, $"'{RequestText.Echo(index)}'");
    }

    private static ProblemHttpResult NoSuchPrototype(ModelBundle bundle, string index) => ProblemCatalog.Problem(ProblemCatalog.PrototypeNotFound,
        $"{bundle.Name}@{bundle.Version} has prototypes 0 to {bundle.PrototypeCount - 1}; {index} is not one of them.");

    /// <param name="name">Model name.</param>
    /// <param name="version">Version id.</param>
    /// <param name="index">Prototype index (0 to prototype count - 1).</param>
    /// <param name="kind"><c>patch</c>, <c>source</c> or <c>activation</c>.</param>
    internal static Results<PhysicalFileHttpResult, ProblemHttpResult> GetPrototypePicture(
        string name, string version, int index, string kind, ModelRegistry registry, HttpResponse response, ILoggerFactory loggers)
    {
        var bundle = registry.Family(name).Find(version);
        if (index < 0 || index >= bundle.PrototypeCount)
        {
            return NoSuchPrototype(bundle, index.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (!PictureKinds.Contains(kind))
        {
            return ProblemCatalog.Problem(ProblemCatalog.PrototypeNotFound, $"'{kind}.png' is not a prototype picture: use patch.png, source.png or activation.png.");
        }
        var images = bundle.Manifest.Prototypes[index].Images;
        var declared = kind switch { "patch" => images?.Patch, "source" => images?.Source, _ => images?.Activation };
        var relative = declared ?? $"prototypes/{index}/{kind}.png";
        var path = bundle.ResolveFile(relative);
        if (path is null)
        {
            if (declared is not null)
            {
                // The bundle says it has the picture: the folder changed since the load, which only the operator can mend.
                loggers.CreateLogger(typeof(ModelsApi)).LogWarning(
                    "{Model}@{Version} declares {File} (the {Kind} picture of prototype {Index}) but it cannot be served: missing, empty, a link, not a regular file or unreadable; clients get 404",
                    bundle.Name, bundle.Version, declared, kind, index);
            }
            return ProblemCatalog.Problem(ProblemCatalog.PrototypeNotFound, $"{bundle.Name}@{bundle.Version} has no {kind} picture for prototype {index}.");
        }
        return BundleFile(bundle, path, "image/png", $"{index}-{kind}", response);
    }

    /// <summary>
    /// A file of a published bundle, which never changes: cacheable for a year, its ETag the graph's digest and
    /// <paramref name="tag"/> (which file of the bundle it is).
    /// </summary>
    internal static PhysicalFileHttpResult BundleFile(ModelBundle bundle, string path, string contentType, string tag, HttpResponse response)
    {
        response.Headers.CacheControl = "public, max-age=31536000, immutable";
        var sha = bundle.Manifest.Onnx.Sha256;
        var etag = new EntityTagHeaderValue($"\"{sha[..Math.Min(16, sha.Length)]}-{tag}\"");
        return TypedResults.PhysicalFile(path, contentType, lastModified: File.GetLastWriteTimeUtc(path), entityTag: etag);
    }

    private static ModelResponse ToModel(ModelFamily family, ModelCatalog catalog)
    {
        var served = family.Served;
        return new ModelResponse(family.Name, family.Versions.Select(v => v.Version).ToArray(), served.Version,
            family.Name == catalog.DefaultModel, Classes(served), Input(served), served.PrototypeCount, TrainingOf(served.Manifest),
            served.LoadedUtc, served.Provider.Provider) { Examples = ExamplesApi.Links(served) };
    }

    /// <summary>The settings of <c>training</c> (and of its <c>config</c>) that may name a file or folder on the training machine.</summary>
    private static readonly string[] PathSettings = ["trunkWeights", "data", "trunk_weights"];

    /// <summary>A bundle's <c>training</c> as answered, made once per loaded bundle: its manifest does not change.</summary>
    private static readonly ConditionalWeakTable<BundleManifest, StrongBox<JsonElement?>> AnsweredTraining = new();

    internal static JsonElement? TrainingOf(BundleManifest manifest) =>
        AnsweredTraining.GetValue(manifest, m => new StrongBox<JsonElement?>(TrainingAsAnswered(m.Training))).Value;

    /// <summary>
    /// The bundle's <c>training</c> as answered: the paths on the training machine it records (the data folder, a trunk
    /// weights file) by their last part only, as refusals name folders relative to the model root: an answer does not
    /// show where the training machine keeps its files (a worker's data root, say). Everything else is written as it
    /// is, a key given twice too (a model.json may hold one; it is served).
    /// </summary>
    internal static JsonElement? TrainingAsAnswered(JsonElement? training)
    {
        if (training is not { ValueKind: JsonValueKind.Object } written || !HoldsPath(written)) return training;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteWithoutPaths(writer, written);
        }
        return JsonDocument.Parse(buffer.WrittenMemory).RootElement.Clone();

        static bool HoldsPath(JsonElement section) => section.EnumerateObject().Any(member =>
            PathSettings.Contains(member.Name) && IsPath(member.Value)
            || member.Name == "config" && member.Value.ValueKind == JsonValueKind.Object && HoldsPath(member.Value));

        static void WriteWithoutPaths(Utf8JsonWriter writer, JsonElement section)
        {
            writer.WriteStartObject();
            foreach (var member in section.EnumerateObject())
            {
                writer.WritePropertyName(member.Name);
                if (PathSettings.Contains(member.Name) && IsPath(member.Value))
                {
                    writer.WriteStringValue(Path.GetFileName(Path.TrimEndingDirectorySeparator(member.Value.GetString()!.Replace('\\', '/'))));
                }
                else if (member.Name == "config" && member.Value.ValueKind == JsonValueKind.Object) WriteWithoutPaths(writer, member.Value);
                else member.Value.WriteTo(writer);
            }
            writer.WriteEndObject();
        }

        static bool IsPath(JsonElement value) =>
            value.ValueKind == JsonValueKind.String && value.GetString() is { } text && (text.Contains('/') || text.Contains('\\'));
    }

    private static ClassResponse[] Classes(ModelBundle bundle) =>
        bundle.Manifest.Classes.Select(c => new ClassResponse(c.Index, c.Name)).ToArray();

    private static InputResponse Input(ModelBundle bundle)
    {
        var input = bundle.Manifest.Input;
        return new InputResponse(input.Channels, input.Height, input.Width, input.ColorSpace, input.Resize.ToLowerInvariant(),
            Resamplers.CanonicalName(input.Interpolation), input.Contrast ?? ContrastNormalizer.None, input.JpegDraft);
    }
}
