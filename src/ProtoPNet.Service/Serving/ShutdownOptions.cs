using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Service.Serving;

/// <summary>Configuration section <c>Shutdown</c>: how a shutdown (SIGTERM) lets a load balancer notice it first.</summary>
public sealed class ShutdownOptions
{
    public const string SectionName = "Shutdown";

    /// <summary>
    /// Seconds from SIGTERM during which the service still accepts and serves requests while <c>/health/ready</c> answers
    /// 503 shutting-down, so a load balancer that probes it stops sending before connections are refused. 0 (the
    /// default): the server stops accepting at once (Kubernetes takes a pod out of its Service by itself, and the
    /// manifests pause in preStop). Counted within the host's shutdownTimeoutSeconds, which must be longer.
    /// </summary>
    [Range(0, 600)]
    public int DrainSeconds { get; set; }
}
