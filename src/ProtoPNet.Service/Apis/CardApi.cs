using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Rendering;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>POST /classify/card: the explanation of POST /classify drawn as one PNG image.</summary>
public static class CardApi
{
    public static IEndpointRouteBuilder MapCardApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/classify/card", RenderCardAsync)
            .CountedAsInference()
            .WithTags("Classify")
            .WithName("ClassifyCard")
            .WithSummary("Classify one image and get the explanation as a PNG card")
            .WithDescription($"""
                The same input, parameters and errors as POST /classify, but the answer is one PNG picture (the "explanation
                card") for callers and chat tools that want an image rather than JSON. The card is {ExplanationCard.Width} pixels
                wide; it shows the predicted label and probability, the top classes, the uploaded image with the boxes of the top
                prototypes (numbered, one colour each), and one row per prototype: the uploaded image with that prototype's heatmap
                and box ("this"; an image decoded to over {Classifier.MaxDrawingPixels / 1_000_000} megapixels is drawn on scaled down to {Classifier.MaxDrawingPixels / 1_000_000}), the prototype's patch ("looks like that"), the training image it comes from with its box, and
                `similarity x weight = points`; the last line adds the other prototypes' points to reach the class's logit.
                Its height is {ExplanationCard.HeightFor(0)} + {ExplanationCard.HeightFor(1) - ExplanationCard.HeightFor(0)} x (number of prototype rows) pixels; at most {ExplanationCard.MaxRows} rows. When the image is
                unfamiliar (POST /classify's `unfamiliar` is true), a band of {ExplanationCard.NoticeHeight} more pixels under the title says
                "{ExplanationCard.UnfamiliarNotice}" With `verify=true` (one more network run, as for POST /classify) each
                prototype row also says what its box is worth: "without box: p=0.12, drop 0.71".

                Example: `curl -F image=@boot.png -o card.png "http://localhost:8080/classify/card?topPrototypes=3"`
                """)
            .WithMetadata(new ImageUploadMetadata(Multiple: false))
            .WithMetadata(new ProducesResponseTypeAttribute(typeof(Stream), StatusCodes.Status200OK, "image/png")
            {
                Description = $"The explanation card: a PNG image {ExplanationCard.Width} pixels wide.",
            })
            .ProducesClassifyProblems()
            .RequireClassifyKeyWithProblems()
            // The classify endpoints' parameters, heatmaps among them (a card always draws them): one query string serves all three.
            .TakesOnlyQueryOf<ClassifyQuery>();
        return app;
    }

    internal static async Task<FileContentHttpResult> RenderCardAsync(
        [AsParameters] ClassifyQuery query, HttpRequest request, ClassificationService classification, DrawingTurns drawing,
        CancellationToken cancellationToken)
    {
        if (query.TopPrototypes is > ExplanationCard.MaxRows)
        {
            throw new ProblemException(ProblemCatalog.InvalidParameter,
                $"topPrototypes is {query.TopPrototypes}; a card has room for at most {ExplanationCard.MaxRows} prototype rows.");
        }
        // A card always draws its heatmaps, but a value /classify would refuse is refused here too.
        ClassifyQuery.HeatmapsAsked(query.Heatmaps);
        var card = query.ToRequest(HeatmapUse.Drawn);
        using var answer = await classification.ClassifyAsync(request, card, cancellationToken);
        var image = answer.Single();
        // The model version stays leased while the card waits for its turn: it draws the prototypes' pictures from it.
        using var turn = await drawing.TakeAsync(cancellationToken);
        return TypedResults.File(ExplanationCard.RenderPng(answer.Model, image.Drawing!, image.Classification!), "image/png");
    }
}
