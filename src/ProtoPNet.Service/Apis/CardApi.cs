using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.OpenApi;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;
using Serilog;

namespace ProtoPNet.Service.Apis;

/// <summary>POST /classify/card: the explanation of POST /classify drawn as one PNG image.</summary>
public static class CardApi
{
    /// <summary>Most prototype rows on one card; each adds a fixed strip, so the card's size stays bounded.</summary>
    public const int MaxCardPrototypes = 10;

    /// <summary>Uploads up to this many pixels get heatmaps on their card.</summary>
    public const long MaxHeatmapPixels = 4_000_000;

    public static IEndpointRouteBuilder MapCardApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/classify/card", RenderCardAsync)
            .WithTags("Classify")
            .WithName("ClassifyCard")
            .WithSummary("Classify one image and get the explanation as a PNG card")
            .WithDescription($"""
                The same input, parameters and errors as POST /classify, but the answer is one PNG picture (the "explanation
                card") for callers and chat tools that want an image rather than JSON. The card is {ExplanationCard.Width} pixels
                wide; it shows the predicted label and probability, the top classes, the uploaded image with the boxes of the top
                prototypes (numbered, one colour each), and one row per prototype: the uploaded image with that prototype's heatmap
                and box ("this"; images over 4 megapixels show no heatmap), the prototype's patch ("looks like that"), the training image it comes from with its box, and
                `similarity x weight = points`; the last line adds the other prototypes' points to reach the class's logit.
                Its height is 344 + 140 x (number of prototype rows) + 60 pixels; at most {MaxCardPrototypes} rows.

                Example: `curl -F image=@boot.png -o card.png "http://localhost:8080/classify/card?topPrototypes=3"`
                """)
            .WithMetadata(new ImageUploadMetadata(Multiple: false))
            .WithMetadata(new ProducesResponseTypeAttribute(typeof(Stream), StatusCodes.Status200OK, "image/png")
            {
                Description = $"The explanation card: a PNG image {ExplanationCard.Width} pixels wide.",
            })
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .RequireClassifyKey();
        return app;
    }

    /// <param name="model">Model name, or <c>name@version</c>; the default model when absent.</param>
    /// <param name="topClasses">How many classes to list (default 3; the card shows at most 6).</param>
    /// <param name="topPrototypes">How many prototypes get a row (default 5, at most 10), ranked by contribution.</param>
    /// <param name="explainClass">Class index to explain; default: the predicted class.</param>
    internal static async Task<Results<FileContentHttpResult, ProblemHttpResult>> RenderCardAsync(
        HttpRequest request,
        [FromQuery] string? model, [FromQuery] int? topClasses, [FromQuery] int? topPrototypes, [FromQuery] int? explainClass,
        ModelRegistry registry, InferencePipeline pipeline, IDiagnosticContext diagnostics, CancellationToken cancellationToken)
    {
        try
        {
            using var lease = ClassifyApi.AcquireModel(registry, model, diagnostics, request.HttpContext);
            var bundle = lease.Bundle;
            if (topPrototypes is > MaxCardPrototypes)
            {
                throw new ProblemException(ProblemCatalog.InvalidParameter,
                    $"topPrototypes is {topPrototypes}; a card has room for at most {MaxCardPrototypes} prototype rows.");
            }
            var options = ClassifyApi.ParseOptions(bundle, topClasses, topPrototypes, explainClass, heatmaps: "png");
            var images = await UploadReader.ReadAsync(request, pipeline.Classifier.Decoder.Limits, maxImages: 1, cancellationToken);
            var total = System.Diagnostics.Stopwatch.StartNew();
            // The card draws the decoded upload itself, so it is decoded once for both the network and the drawing.
            using var prepared = pipeline.Classifier.Prepare(bundle, images);
            if (prepared.Rejections[0] is { } rejected) throw rejected;
            var decoded = prepared.DecodedAt(0);
            // Heatmaps come at the upload's full size and are shrunk to thumbnails on the card: above a size they would
            // cost more than they show, and the card's rows then show the plain image with the box.
            var withHeatmaps = options with { Heatmaps = (long)decoded.Width * decoded.Height <= MaxHeatmapPixels };
            var classification = (await pipeline.ExplainAsync(lease, prepared, withHeatmaps, total, cancellationToken))[0].Classification!;
            var png = ExplanationCard.RenderPng(bundle, decoded.Pixels, classification);
            diagnostics.Set("PredictedClass", classification.Prediction.Label);
            return TypedResults.File(png, "image/png");
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
}
