using Serilog;

namespace ProtoPNet.Service.Problems;

/// <summary>The problem a request was answered with, for its request log line.</summary>
public static class ProblemLogging
{
    /// <summary>Records the problem's type (its last part: <c>overloaded</c>, <c>no-model-ready</c>) in the request's log line.</summary>
    public static void Record(HttpContext http, string? type)
    {
        if (string.IsNullOrEmpty(type)) return;
        var slug = type.StartsWith(ProblemCatalog.Prefix, StringComparison.Ordinal) ? type[ProblemCatalog.Prefix.Length..] : type;
        http.RequestServices.GetService<IDiagnosticContext>()?.Set("Problem", slug);
    }
}
