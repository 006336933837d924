using Microsoft.AspNetCore.Http.HttpResults;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>The query parameters of every classify endpoint: the model and what to explain.</summary>
public record ExplainQuery
{
    /// <summary>Model name, or <c>name@version</c>; the default model when absent.</summary>
    public string? Model { get; init; }

    /// <summary>How many classes to list in <c>topClasses</c> (default 3; a card shows at most 6).</summary>
    public int? TopClasses { get; init; }

    /// <summary>How many prototypes to explain (default 5), ranked by contribution; a card has a row for each, at most 10.</summary>
    public int? TopPrototypes { get; init; }

    /// <summary>Class index to explain; default: the predicted class (of each image, in a batch).</summary>
    public int? ExplainClass { get; init; }

    /// <summary>
    /// <c>true</c>: check each explained prototype's box: the image is run again with the box filled with the model's
    /// mean colour (one more network run per request) and the prototype gets <c>probabilityWithoutBox</c> and <c>drop</c>.
    /// Default <c>false</c>.
    /// </summary>
    public string? Verify { get; init; }

    /// <summary>Whether <see cref="Verify"/> asks for the check; anything but true or false is an invalid parameter.</summary>
    public bool VerifyRequested() => Verify?.Trim().ToLowerInvariant() switch
    {
        null or "" or "false" => false,
        "true" => true,
        _ => throw new ProblemException(ProblemCatalog.InvalidParameter, $"verify must be 'true' or 'false'; it is '{Verify}'."),
    };
}

/// <summary>The query parameters of POST /classify and /classify/batch.</summary>
public sealed record ClassifyQuery : ExplainQuery
{
    /// <summary><c>none</c> (default) or <c>png</c>: a heatmap PNG per explained prototype.</summary>
    public string? Heatmaps { get; init; }

    public ClassifyRequest ToRequest(bool batch) => new(ModelSelector.Parse(Model), TopClasses, TopPrototypes, ExplainClass,
        Heatmaps?.Trim().ToLowerInvariant() switch
        {
            null or "" or "none" => HeatmapUse.None,
            "png" => HeatmapUse.Sent,
            _ => throw new ProblemException(ProblemCatalog.InvalidParameter, $"heatmaps must be 'none' or 'png'; it is '{Heatmaps}'."),
        }, batch, VerifyRequested());
}

/// <summary>POST /classify and /classify/batch.</summary>
public static class ClassifyApi
{
    public static IEndpointRouteBuilder MapClassifyApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/classify").WithTags("Classify").RequireClassifyKeyWithProblems().CountedAsInference();

        group.MapPost("", ClassifyAsync)
            .MayRunInline()
            .WithName("Classify")
            .WithSummary("Classify one image and explain the prediction")
            .WithDescription("""
                Upload one image as multipart/form-data (file field `image`) or as a raw body with an image content type
                (image/png, image/jpeg, image/gif, image/bmp, image/webp, image/tiff). The answer holds the predicted class,
                the top classes, and the explanation: the explained class's logit split into the contributions
                (`weight x similarity`) of its top prototypes plus `otherPrototypesContribution`, which add up to the logit.
                Each prototype comes with its 95th-percentile high-activation box in pixels of the uploaded image and, with
                `heatmaps=png`, a heatmap PNG of the decoded image's size (`preprocessing.decoded`; scaled down to at most 4 megapixels) as a data URI. `unfamiliar` is true when the image looks
                like nothing the model has learned (its `unfamiliarity.score`, minus the best prototype similarity, is above the
                bundle's calibrated threshold) and null for a bundle without a threshold; `preprocessing` says what the upload
                became before the network saw it.

                With `verify=true` the answer tests its own evidence: the image is run again once per explained prototype
                with that prototype's box (in the model's input) filled with the model's mean colour, all copies in one
                extra batched network run, and each prototype gets `probabilityWithoutBox` (the explained class's
                probability without the box) and `drop` (its probability on the image minus that). The extra run costs
                about as much as classifying `topPrototypes` more images (at most `Classify:MaxVerifiedPrototypes`, default 10).
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
                detail) for an image that could not be classified. The query parameters apply to every image; with
                `verify=true` the masked copies of all images go through one extra network run.
                """)
            .WithMetadata(new ImageUploadMetadata(Multiple: true))
            .Produces<BatchClassifyResponse>(StatusCodes.Status200OK)
            .ProducesClassifyProblems(imageProblems: false);
        return app;
    }

    /// <summary>
    /// The problems of an upload endpoint (/classify, /classify/batch, /classify/card). With <paramref name="imageProblems"/>
    /// an image that cannot be classified refuses the request (422); a batch answers it in the image's own entry instead.
    /// </summary>
    internal static RouteHandlerBuilder ProducesClassifyProblems(this RouteHandlerBuilder builder, bool imageProblems = true)
    {
        builder.ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status408RequestTimeout)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        if (imageProblems) builder.ProducesProblem(StatusCodes.Status422UnprocessableEntity);
        return builder.ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
    }

    internal static async Task<JsonAnswer<ClassifyResponse>> ClassifyAsync(
        [AsParameters] ClassifyQuery query, HttpRequest request, ClassificationService classification, CancellationToken cancellationToken)
    {
        // The answer's heatmaps are drawn as it is written: its pixels are kept until then, the model version not.
        var classifyRequest = query.ToRequest(batch: false);
        var answer = await classification.ClassifyAsync(request, classifyRequest, cancellationToken);
        var response = ToResponse(answer.Model, answer.Single());
        answer.ReleaseModel();
        return Answer(response, classifyRequest, Entries(response));
    }

    internal static async Task<JsonAnswer<BatchClassifyResponse>> ClassifyBatchAsync(
        [AsParameters] ClassifyQuery query, HttpRequest request, ClassificationService classification, CancellationToken cancellationToken)
    {
        var classifyRequest = query.ToRequest(batch: true);
        var answer = await classification.ClassifyAsync(request, classifyRequest, cancellationToken);
        var results = answer.Items.Select(item => item.Classification is not null
            ? (object)ToResponse(answer.Model, item)
            : ProblemCatalog.Details(item.Problem!, item.ProblemDetail!)).ToArray();
        answer.ReleaseModel();
        return Answer(new BatchClassifyResponse(results), classifyRequest, results.OfType<ClassifyResponse>().Sum(Entries));
    }

    /// <summary>
    /// Answers listing at most this many prototypes and classes in all are sent whole: at 128, about 50 KB of JSON,
    /// below the large object heap (85 KB), so serializing one first costs an ordinary short-lived array. One image with
    /// the defaults lists 8; with topPrototypes=100, 103 (42 KB).
    /// </summary>
    internal const int WholeAnswerMaxEntries = 128;

    private static int Entries(ClassifyResponse response) => response.Explanation.Prototypes.Count + response.TopClasses.Count;

    /// <summary>
    /// A small answer without heatmaps is sent whole, with a Content-Length; a larger one, and any with heatmaps (drawn
    /// as the answer is written, one at a time), streams out.
    /// </summary>
    private static JsonAnswer<T> Answer<T>(T response, ClassifyRequest request, int entries) =>
        request.Heatmaps == HeatmapUse.None && entries <= WholeAnswerMaxEntries ? JsonAnswer.Whole(response) : JsonAnswer.Streamed(response);

    internal static ClassifyResponse ToResponse(ModelBundle bundle, ClassifiedImage image)
    {
        static ClassScoreResponse Score(ClassScore score) => new(score.ClassIndex, score.Label, score.Probability, score.Logit);
        var classification = image.Classification!;
        var explanation = classification.Explanation;
        var prototypes = explanation.Prototypes.Select(p => new PrototypeContributionResponse(
            p.PrototypeIndex, p.ClassIndex, p.Label, p.Similarity, p.Weight, p.Contribution, p.Box,
            new FeatureCellResponse(p.FeatureCell.Row, p.FeatureCell.Column),
            p.Heatmap is null ? null : new HeatmapPng(image.Drawing!, p.Heatmap),
            ModelsApi.PrototypePictureUrl(bundle, p.PrototypeIndex, "patch"),
            ModelsApi.PrototypePictureUrl(bundle, p.PrototypeIndex, "source"))
        {
            ProbabilityWithoutBox = p.WithoutBox?.ProbabilityWithoutBox,
            Drop = p.WithoutBox?.Drop,
        }).ToArray();
        var timings = classification.Timings;
        var unfamiliarity = classification.Unfamiliarity;
        var calibration = bundle.Manifest.Unfamiliarity;
        return new ClassifyResponse(
            new ModelReference(bundle.Name, bundle.Version),
            new ImageSize(classification.ImageWidth, classification.ImageHeight),
            Preprocessing(bundle, classification),
            unfamiliarity.Unfamiliar,
            new UnfamiliarityResponse(unfamiliarity.Measure, unfamiliarity.Score, unfamiliarity.Threshold, calibration is null ? null
                : new UnfamiliarityCalibrationResponse(calibration.TargetShare, calibration.Calibration?.Split, calibration.Calibration?.Size)),
            Score(classification.Prediction),
            classification.TopClasses.Select(Score).ToArray(),
            new ExplanationResponse(explanation.ClassIndex, explanation.Label, explanation.Logit, prototypes, explanation.OtherPrototypesContribution),
            new TimingsResponse(Round(timings.DecodeMs), Round(timings.InferenceMs), Round(timings.ExplainMs), Round(timings.TotalMs))
            {
                Verify = timings.VerifyMs is { } verifyMs ? Round(verifyMs) : null,
            });
    }

    /// <summary>What this upload got for this model (InputTensorWriter), named as model.json names it.</summary>
    internal static PreprocessingResponse Preprocessing(ModelBundle bundle, Classification classification)
    {
        var input = bundle.Manifest.Input;
        ColorSpaces.TryParse(input.ColorSpace, out var colorSpace);
        var contrast = input.Contrast ?? ContrastNormalizer.None;
        return new PreprocessingResponse(new ImageSize(classification.Decoded.Width, classification.Decoded.Height),
            colorSpace == ColorSpace.Gray ? "gray" : "rgb", input.Width, input.Height,
            input.Resize.ToLowerInvariant(), Resamplers.CanonicalName(input.Interpolation),
            contrast, contrast == ContrastNormalizer.Auto ? classification.Inverted : null);
    }

    private static double Round(double milliseconds) => Math.Round(milliseconds, 3);
}
