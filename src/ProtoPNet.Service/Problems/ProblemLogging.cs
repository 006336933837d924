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
        var statusName = Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(http.Response.StatusCode);
        var slug = type.StartsWith(ProblemCatalog.Prefix, StringComparison.Ordinal) ? type[ProblemCatalog.Prefix.Length..]
            : type.StartsWith("https://tools.ietf.org/html/rfc9110#", StringComparison.Ordinal) && statusName.Length > 0
                ? statusName.ToLowerInvariant().Replace(' ', '-')
                : type;
        if (http.RequestServices.GetService<IDiagnosticContext>() is not { } diagnostics) return;
        diagnostics.Set("Problem", slug);
        diagnostics.Set("PredictedClass", "-");
    }
}
