using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;

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

    /// <summary>The use case's request for these parameters.</summary>
    public ClassifyRequest ToRequest(HeatmapUse heatmaps, bool batch = false) =>
        new(ModelSelector.Parse(Model), TopClasses, TopPrototypes, ExplainClass, heatmaps, batch, VerifyRequested());

    /// <summary>Whether <see cref="Verify"/> asks for the check; anything but true or false is an invalid parameter.</summary>
    private bool VerifyRequested() => Verify?.Trim().ToLowerInvariant() switch
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

    public ClassifyRequest ToRequest(bool batch) => ToRequest(HeatmapsAsked(Heatmaps), batch);

    /// <summary>What a <c>heatmaps</c> value asks for; anything but none or png is an invalid parameter (on the card too,
    /// which takes the classify endpoints' query string and draws its heatmaps whatever it says).</summary>
    public static HeatmapUse HeatmapsAsked(string? heatmaps) => heatmaps?.Trim().ToLowerInvariant() switch
    {
        null or "" or "none" => HeatmapUse.None,
        "png" => HeatmapUse.Sent,
        _ => throw new ProblemException(ProblemCatalog.InvalidParameter, $"heatmaps must be 'none' or 'png'; it is '{heatmaps}'."),
    };
}
