namespace ProtoPNet.Service.Serving;

/// <summary>
/// The paths probes and scrapes use, which the service answers whatever the request looks like or how often it comes:
/// the request shape rules never refuse a health probe, and the rate limit applies to none of them. The OpenAPI document
/// declares those refusals on every other path from the same two rules.
/// </summary>
public static class ProbePaths
{
    /// <summary>/health/live, /health/ready and the protocol's /v2/health/live and /v2/health/ready.</summary>
    public static bool IsHealthProbe(PathString path) => path.StartsWithSegments("/health") || path.StartsWithSegments("/v2/health");

    /// <summary>Probes and scrapes: the health probes, /metrics, and a model's v2 readiness (KServe points a probe at it).</summary>
    public static bool IsExemptFromRateLimit(PathString path) =>
        IsHealthProbe(path) || path.StartsWithSegments("/metrics")
        || (path.StartsWithSegments("/v2/models") && path.Value!.EndsWith("/ready", StringComparison.Ordinal));
}
