using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.OpenApi;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;
using Serilog;

namespace ProtoPNet.Service.Apis;

/// <summary>Configuration section <c>Classify</c>.</summary>
public sealed class ClassifyOptions
{
    public const string SectionName = "Classify";

    /// <summary>Most images in one <c>/classify/batch</c> request (default 32).</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 1024)]
    public int MaxBatchImages { get; set; } = 32;

    /// <summary>Most prototypes one answer may explain (<c>topPrototypes</c>, default limit 100).</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 100000)]
    public int MaxTopPrototypes { get; set; } = 100;

    /// <summary>Most prototypes that get a heatmap, each as large as the upload (<c>topPrototypes</c> with <c>heatmaps=png</c>, default 10).</summary>
    [System.ComponentModel.DataAnnotations.Range(1, 1000)]
    public int MaxHeatmapPrototypes { get; set; } = 10;
}

/// <summary>POST /classify and /classify/batch.</summary>
public static class ClassifyApi
{
    public static IEndpointRouteBuilder MapClassifyApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/classify").WithTags("Classify").RequireClassifyKey();

        group.MapPost("", ClassifyAsync)
            .WithName("Classify")
            .WithSummary("Classify one image and explain the prediction")
            .WithDescription("""
                Upload one image as multipart/form-data (file field `image`) or as a raw body with an image content type
                (image/png, image/jpeg, image/gif, image/bmp, image/webp, image/tiff). The answer holds the predicted class,
                the top classes, and the explanation: the explained class's logit split into the contributions
                (`weight x similarity`) of its top prototypes plus `otherPrototypesContribution`, which add up to the logit.
                Each prototype comes with its 95th-percentile high-activation box in pixels of the uploaded image and, with
                `heatmaps=png`, a heatmap PNG of the uploaded image's size as a data URI.
                """)
            .WithMetadata(new ImageUploadMetadata(Multiple: false))
            .Produces<ClassifyResponse>(StatusCodes.Status200OK)
            .ProducesClassifyProblems();

        group.MapPost("/batch", ClassifyBatchAsync)
            .WithName("ClassifyBatch")
            .WithSummary("Classify several images in one request")
            .WithDescription("""
                Upload several images as multipart/form-data, each in a file field named `image` (at most
                `Classify:MaxBatchImages`, default 32). The network runs once for all of them. `results` holds one entry
                per image in upload order: a result as from POST /classify, or a problem object (type, title, status,
                detail) for an image that could not be classified. The query parameters apply to every image.
                """)
            .WithMetadata(new ImageUploadMetadata(Multiple: true))
            .Produces<BatchClassifyResponse>(StatusCodes.Status200OK)
            .ProducesClassifyProblems();
        return app;
    }

    private static RouteHandlerBuilder ProducesClassifyProblems(this RouteHandlerBuilder builder) => builder
        .ProducesProblem(StatusCodes.Status400BadRequest)
        .ProducesProblem(StatusCodes.Status404NotFound)
        .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
        .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
        .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
        .ProducesProblem(StatusCodes.Status429TooManyRequests)
        .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

    /// <param name="model">Model name, or <c>name@version</c>; the default model when absent.</param>
    /// <param name="topClasses">How many classes to list in <c>topClasses</c> (default 3).</param>
    /// <param name="topPrototypes">How many prototypes to explain (default 5), ranked by contribution.</param>
    /// <param name="explainClass">Class index to explain; default: the predicted class.</param>
    /// <param name="heatmaps"><c>none</c> (default) or <c>png</c>: a heatmap PNG per explained prototype.</param>
    internal static async Task<Results<Ok<ClassifyResponse>, ProblemHttpResult>> ClassifyAsync(
        HttpRequest request,
        [FromQuery] string? model, [FromQuery] int? topClasses, [FromQuery] int? topPrototypes,
        [FromQuery] int? explainClass, [FromQuery] string? heatmaps,
        ModelRegistry registry, InferencePipeline pipeline, IOptions<ClassifyOptions> classifyOptions, IDiagnosticContext diagnostics,
        CancellationToken cancellationToken)
    {
        try
        {
            using var lease = AcquireModel(registry, model, diagnostics, request.HttpContext);
            var bundle = lease.Bundle;
            var options = ParseOptions(bundle, topClasses, topPrototypes, explainClass, heatmaps);
            CheckLimits(topPrototypes, options, classifyOptions.Value);
            var images = await UploadReader.ReadAsync(request, pipeline.Classifier.Decoder.Limits, maxImages: 1, cancellationToken);
            var outcome = (await pipeline.ClassifyAsync(lease, images, options, cancellationToken))[0];
            if (outcome.Rejection is not null) throw outcome.Rejection;
            var classification = outcome.Classification!;
            diagnostics.Set("PredictedClass", classification.Prediction.Label);
            return TypedResults.Ok(ToResponse(bundle, classification));
        }
        catch (ProblemException problem)
        {
            return ProblemCatalog.Problem(problem.Kind, problem.Message);
        }
        catch (ImageRejectedException rejection)
        {
            return ProblemCatalog.Problem(ProblemCatalog.ForRejection(rejection.Rejection), rejection.Message);
        }
    }

    /// <param name="model">Model name, or <c>name@version</c>; the default model when absent.</param>
    /// <param name="topClasses">How many classes to list in <c>topClasses</c> (default 3).</param>
    /// <param name="topPrototypes">How many prototypes to explain (default 5), ranked by contribution.</param>
    /// <param name="explainClass">Class index to explain; default: each image's predicted class.</param>
    /// <param name="heatmaps"><c>none</c> (default) or <c>png</c>: a heatmap PNG per explained prototype.</param>
    internal static async Task<Results<Ok<BatchClassifyResponse>, ProblemHttpResult>> ClassifyBatchAsync(
        HttpRequest request,
        [FromQuery] string? model, [FromQuery] int? topClasses, [FromQuery] int? topPrototypes,
        [FromQuery] int? explainClass, [FromQuery] string? heatmaps,
        ModelRegistry registry, InferencePipeline pipeline, IOptions<ClassifyOptions> classifyOptions, IDiagnosticContext diagnostics,
        CancellationToken cancellationToken)
    {
        try
        {
            using var lease = AcquireModel(registry, model, diagnostics, request.HttpContext);
            var bundle = lease.Bundle;
            var options = ParseOptions(bundle, topClasses, topPrototypes, explainClass, heatmaps);
            CheckLimits(topPrototypes, options, classifyOptions.Value);
            if (!request.HasFormContentType)
            {
                throw new ProblemException(ProblemCatalog.UnsupportedMediaType,
                    $"Content-Type '{request.ContentType}' is not accepted here: send multipart/form-data with one file field 'image' per image.");
            }
            var images = await UploadReader.ReadAsync(request, pipeline.Classifier.Decoder.Limits, classifyOptions.Value.MaxBatchImages, cancellationToken);
            var outcomes = await pipeline.ClassifyAsync(lease, images, options, cancellationToken);
            var results = outcomes.Select(outcome => outcome.Classification is { } classification
                ? (object)ToResponse(bundle, classification)
                : ProblemCatalog.Details(ProblemCatalog.ForRejection(outcome.Rejection!.Rejection), outcome.Rejection.Message)).ToArray();
            diagnostics.Set("PredictedClass", string.Join(",", outcomes.Select(o => o.Classification?.Prediction.Label ?? "-")));
            return TypedResults.Ok(new BatchClassifyResponse(results));
        }
        catch (ProblemException problem)
        {
            return ProblemCatalog.Problem(problem.Kind, problem.Message);
        }
    }

    /// <summary>
    /// Resolves the request's <c>model</c> parameter and leases that version for the request (a hot reload cannot dispose
    /// it meanwhile); names it in the request log line and the request metrics.
    /// </summary>
    internal static ModelLease AcquireModel(ModelRegistry registry, string? model, IDiagnosticContext diagnostics, HttpContext context)
    {
        switch (registry.TryAcquire(model, out var lease))
        {
            case ModelLookup.Found:
                var bundle = lease!.Bundle;
                diagnostics.Set("Model", $"{bundle.Name}@{bundle.Version}");
                RequestMetrics.SetModel(context, bundle);
                return lease;
            case ModelLookup.NoModelLoaded:
                throw new ProblemException(ProblemCatalog.NoModelReady,
                    $"No model is loaded yet: the model root {registry.Root} holds no valid bundle. Retry later.");
            case ModelLookup.UnknownVersion:
                var name = (model ?? "").Split('@', 2)[0].Trim();
                var versions = registry.FindFamily(name)?.Versions.Select(v => v.Version) ?? [];
                throw new ProblemException(ProblemCatalog.ModelNotFound,
                    $"Model '{model}' has no such version loaded. Loaded versions of {name}: {string.Join(", ", versions)}.");
            default:
                throw new ProblemException(ProblemCatalog.ModelNotFound,
                    $"No model named '{model}' is loaded. Loaded: {string.Join(", ", registry.Catalog.Families.Keys)}.");
        }
    }

    internal static ExplainOptions ParseOptions(ModelBundle bundle, int? topClasses, int? topPrototypes, int? explainClass, string? heatmaps)
    {
        if (topClasses is < 0) throw new ProblemException(ProblemCatalog.InvalidParameter, $"topClasses must be 0 or more; it is {topClasses}.");
        if (topPrototypes is < 0) throw new ProblemException(ProblemCatalog.InvalidParameter, $"topPrototypes must be 0 or more; it is {topPrototypes}.");
        if (explainClass is { } k && (k < 0 || k >= bundle.ClassCount))
        {
            throw new ProblemException(ProblemCatalog.InvalidParameter,
                $"explainClass {k} is not a class of {bundle.Name}@{bundle.Version} (0 to {bundle.ClassCount - 1}).");
        }
        var wantHeatmaps = heatmaps?.Trim().ToLowerInvariant() switch
        {
            null or "" or "none" => false,
            "png" => true,
            _ => throw new ProblemException(ProblemCatalog.InvalidParameter, $"heatmaps must be 'none' or 'png'; it is '{heatmaps}'."),
        };
        return new ExplainOptions(
            Math.Min(topClasses ?? 3, bundle.ClassCount), Math.Min(topPrototypes ?? 5, bundle.PrototypeCount), explainClass, wantHeatmaps);
    }

    /// <summary>Bounds the work one request can ask for: every explained prototype costs an upsampled map, every heatmap a full-size PNG.</summary>
    private static void CheckLimits(int? topPrototypes, ExplainOptions options, ClassifyOptions limits)
    {
        if (topPrototypes > limits.MaxTopPrototypes)
        {
            throw new ProblemException(ProblemCatalog.InvalidParameter,
                $"topPrototypes is {topPrototypes}; at most {limits.MaxTopPrototypes} prototypes are explained per image (Classify:MaxTopPrototypes).");
        }
        if (options.Heatmaps && options.TopPrototypes > limits.MaxHeatmapPrototypes)
        {
            throw new ProblemException(ProblemCatalog.InvalidParameter,
                $"heatmaps=png with topPrototypes {options.TopPrototypes}: at most {limits.MaxHeatmapPrototypes} heatmaps per image (Classify:MaxHeatmapPrototypes); ask for fewer prototypes or heatmaps=none.");
        }
    }

    internal static ClassifyResponse ToResponse(ModelBundle bundle, Classification classification)
    {
        static ClassScoreResponse Score(ClassScore score) => new(score.ClassIndex, score.Label, score.Probability, score.Logit);
        var explanation = classification.Explanation;
        var prototypes = explanation.Prototypes.Select(p => new PrototypeContributionResponse(
            p.PrototypeIndex, p.ClassIndex, p.Label, p.Similarity, p.Weight, p.Contribution, p.Box,
            new FeatureCellResponse(p.FeatureCell.Row, p.FeatureCell.Column),
            p.HeatmapPng is null ? null : "data:image/png;base64," + Convert.ToBase64String(p.HeatmapPng),
            ModelsApi.PrototypePictureUrl(bundle, p.PrototypeIndex, "patch"),
            ModelsApi.PrototypePictureUrl(bundle, p.PrototypeIndex, "source"))).ToArray();
        var timings = classification.Timings;
        return new ClassifyResponse(
            new ModelReference(bundle.Name, bundle.Version),
            new ImageSize(classification.ImageWidth, classification.ImageHeight),
            Score(classification.Prediction),
            classification.TopClasses.Select(Score).ToArray(),
            new ExplanationResponse(explanation.ClassIndex, explanation.Label, explanation.Logit, prototypes, explanation.OtherPrototypesContribution),
            new TimingsResponse(Round(timings.DecodeMs), Round(timings.InferenceMs), Round(timings.ExplainMs), Round(timings.TotalMs)));
    }

    private static double Round(double milliseconds) => Math.Round(milliseconds, 3);
}
