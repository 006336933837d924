using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;

namespace ProtoPNet.Service.Problems;

/// <summary>A v2 error: <c>{"error": "..."}</c>.</summary>
public sealed record V2Error([property: JsonPropertyName("error")] string Error);

/// <summary>
/// Under /v2 the Open Inference Protocol's error body, <c>{"error": "..."}</c>, takes the place of a problem: for the
/// protocol's endpoints, and for what answers before them or around them (the API key check, the rate limiter, routing,
/// the exception handler).
/// </summary>
public static class OpenInferenceErrors
{
    /// <summary>The content type of every v2 answer: JSON with no charset parameter, as the protocol's clients compare it.</summary>
    public const string ContentType = "application/json";

    /// <summary>Whether a path is the Open Inference Protocol's.</summary>
    public static bool Serves(PathString path) => path.StartsWithSegments("/v2");

    public static JsonHttpResult<V2Error> Error(int status, string message) =>
        TypedResults.Json(new V2Error(message), contentType: ContentType, statusCode: status);

    /// <summary>The problem, or under /v2 the protocol's error with the problem's status and detail.</summary>
    public static IResult Answer(HttpContext http, ProblemKind kind, string detail)
    {
        if (!Serves(http.Request.Path)) return ProblemCatalog.Problem(kind, detail);
        ProblemLogging.Record(http, kind.Type);   // a problem answer records itself; the protocol's error does not
        return Error(kind.Status, detail);
    }
}
