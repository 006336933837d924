using Serilog;

namespace ProtoPNet.Service.Problems;

/// <summary>The problem a request was answered with, for its request log line.</summary>
public static class ProblemLogging
{
    /// <summary>
    /// Records the problem's type (its last part: <c>overloaded</c>, <c>no-model-ready</c>) in the request's log line,
    /// which then names no predicted class: a problem answer carries none (a request refused while it waited to draw
    /// its heatmaps had been classified).
    /// </summary>
    public static void Record(HttpContext http, string? type)
    {
        if (string.IsNullOrEmpty(type)) return;
        var slug = type.StartsWith(ProblemCatalog.Prefix, StringComparison.Ordinal) ? type[ProblemCatalog.Prefix.Length..] : type;
        if (http.RequestServices.GetService<IDiagnosticContext>() is not { } diagnostics) return;
        diagnostics.Set("Problem", slug);
        diagnostics.Set("PredictedClass", "-");
    }
}
