namespace ProtoPNet.Service.Hosting;

/// <summary>Configuration section <c>Telemetry</c>: <c>OtlpEndpoint</c> (e.g. http://collector:4317) turns OpenTelemetry tracing on.</summary>
public sealed class TelemetryOptions
{
    public const string SectionName = "Telemetry";

    /// <summary>OTLP endpoint for traces; empty (default): no tracing.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>service.name of the traces (default, and when empty: protopnet-service).</summary>
    public string? ServiceName { get; set; }
}
