using Serilog;

namespace ProtoPNet.Service.Problems;

/// <summary>The problem a request was answered with, for its request log line.</summary>
public static class ProblemLogging
{
    /// <summary>
    /// Records the problem's type (its last part: <c>overloaded</c>, <c>no-model-ready</c>; routing's 404 and 405, whose
    /// type is an RFC 9110 section, by their status's name: <c>not-found</c>, <c>method-not-allowed</c>) in the request's
    /// log line, which then names no predicted class: a problem answer carries none (a request refused while it waited
    /// to draw its heatmaps had been classified).
    /// </summary>
    public static void Record(HttpContext http, string? type)
    {
        if (string.IsNullOrEmpty(type)) return;
        var slug = type.StartsWith(ProblemCatalog.Prefix, StringComparison.Ordinal) ? type[ProblemCatalog.Prefix.Length..]
            : type.StartsWith("https://tools.ietf.org/html/rfc9110#", StringComparison.Ordinal) ? StatusName(http.Response.StatusCode) ?? type
            : type;
        if (http.RequestServices.GetService<IDiagnosticContext>() is not { } diagnostics) return;
        diagnostics.Set("Problem", slug);
        diagnostics.Set("PredictedClass", "-");
    }

    /// <summary>A status's name as a slug (404: <c>not-found</c>), or null for a status without one.</summary>
    private static string? StatusName(int status) =>
        Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } name ? name.ToLowerInvariant().Replace(' ', '-') : null;
}
