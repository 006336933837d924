using Microsoft.AspNetCore.Http.HttpResults;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

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
            .WithDescription($"""
                Upload one image as multipart/form-data (file field `image`) or as a raw body with an image content type
                (image/png, image/jpeg, image/gif, image/bmp, image/webp, image/tiff). The answer holds the predicted class,
                the top classes, and the explanation: the explained class's logit split into the contributions
                (`weight x similarity`) of its top prototypes plus `otherPrototypesContribution`, which add up to the logit.
                Each prototype comes with its 95th-percentile high-activation box in pixels of the uploaded image and, with
                `heatmaps=png`, a heatmap PNG of the decoded image's size (`preprocessing.decoded`; scaled down to at most {Classifier.MaxDrawingPixels / 1_000_000} megapixels) as a data URI. `unfamiliar` is true when the image looks
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
            .ProducesClassifyProblems()
            .TakesOnlyQueryOf<ClassifyQuery>();

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
            .ProducesClassifyProblems(imageProblems: false)
            .TakesOnlyQueryOf<ClassifyQuery>();
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
        [AsParameters] ClassifyQuery query, HttpRequest request, ClassificationService classification, DrawingTurns drawing,
        CancellationToken cancellationToken)
    {
        // The answer's heatmaps are drawn as it is written: its pixels are kept until then, the model version not.
        var classifyRequest = query.ToRequest(batch: false);
        var answer = await classification.ClassifyAsync(request, classifyRequest, cancellationToken);
        var response = ClassifyResponses.Of(answer.Model, answer.Single());
        answer.ReleaseModel();
        return await AnswerAsync(response, classifyRequest, Entries(response), Draws(response), request.HttpContext, drawing, cancellationToken);
    }

    internal static async Task<JsonAnswer<BatchClassifyResponse>> ClassifyBatchAsync(
        [AsParameters] ClassifyQuery query, HttpRequest request, ClassificationService classification, DrawingTurns drawing,
        CancellationToken cancellationToken)
    {
        var classifyRequest = query.ToRequest(batch: true);
        var answer = await classification.ClassifyAsync(request, classifyRequest, cancellationToken);
        var results = answer.Items.Select(item => item.Classification is not null
            ? (object)ClassifyResponses.Of(answer.Model, item)
            : ProblemCatalog.Details(item.Problem!, item.ProblemDetail!, request.HttpContext)).ToArray();
        answer.ReleaseModel();
        var classified = results.OfType<ClassifyResponse>().ToArray();
        return await AnswerAsync(new BatchClassifyResponse(results), classifyRequest, classified.Sum(Entries), classified.Any(Draws),
            request.HttpContext, drawing, cancellationToken);
    }

    /// <summary>
    /// Answers listing at most this many prototypes and classes in all are sent whole: at 128, about 50 KB of JSON,
    /// below the large object heap (85 KB), so serializing one first costs an ordinary short-lived array. One image with
    /// the defaults lists 8; with topPrototypes=100, 103 (42 KB).
    /// </summary>
    internal const int WholeAnswerMaxEntries = 128;

    private static int Entries(ClassifyResponse response) => response.Explanation.Prototypes.Count + response.TopClasses.Count;

    /// <summary>Whether the answer holds a heatmap to draw (topPrototypes=0, or a batch whose every image failed, holds none).</summary>
    private static bool Draws(ClassifyResponse response) => response.Explanation.Prototypes.Any(p => p.Heatmap is not null);

    /// <summary>
    /// A small answer without heatmaps is sent whole, with a Content-Length; a larger one, and any with heatmaps (drawn
    /// as the answer is written, one at a time), streams out. One with heatmaps first waits for its turn to draw
    /// (<see cref="DrawingTurns"/>): refused "overloaded" if it waits too long, before anything of it is sent.
    /// </summary>
    private static async ValueTask<JsonAnswer<T>> AnswerAsync<T>(T response, ClassifyRequest request, int entries, bool draws,
        HttpContext httpContext, DrawingTurns drawing, CancellationToken cancellationToken)
    {
        if (request.Heatmaps == HeatmapUse.None && entries <= WholeAnswerMaxEntries) return JsonAnswer.Whole(response);
        if (!draws) return JsonAnswer.Streamed(response);
        var turn = await drawing.TakeAsync(cancellationToken);
        // Given back once the response ends, sent or not (the client may leave first).
        httpContext.Response.RegisterForDispose(turn);
        return JsonAnswer.Streamed(response, turn);
    }
}
