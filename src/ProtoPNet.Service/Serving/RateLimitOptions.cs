using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Configuration section <c>RateLimiting</c>: a per-client (remote address) fixed-window limit on every endpoint except
/// health and metrics. Off by default (<see cref="PermitLimit"/> 0): the bounded model queues already protect the
/// service, and a limit per client is a deployment's policy (e.g. 100 per second behind a gateway).
/// </summary>
public sealed class RateLimitOptions
{
    public const string SectionName = "RateLimiting";

    /// <summary>Requests one client may send per window; 0 (default) turns the limit off.</summary>
    [Range(0, 1_000_000)]
    public int PermitLimit { get; set; }

    /// <summary>Length of the window in seconds (default 1).</summary>
    [Range(1, 3600)]
    public int WindowSeconds { get; set; } = 1;
}
