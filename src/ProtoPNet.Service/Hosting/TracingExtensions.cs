using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

public static class TracingExtensions
{
    /// <summary>OpenTelemetry tracing to <c>Telemetry:OtlpEndpoint</c>, when one is configured (validated at start).</summary>
    public static IHostApplicationBuilder AddTracing(this IHostApplicationBuilder builder)
    {
        var (services, configuration) = (builder.Services, builder.Configuration);
        services.AddOptions<TelemetryOptions>().BindSettings(configuration, TelemetryOptions.SectionName)
            .Validate(t => string.IsNullOrWhiteSpace(t.OtlpEndpoint)
                           || Uri.TryCreate(t.OtlpEndpoint, UriKind.Absolute, out var endpoint) && endpoint.Scheme is "http" or "https",
                "Telemetry:OtlpEndpoint must be an http or https URL such as http://collector:4317")
            .ValidateOnStart();

        var telemetry = configuration.GetSection(TelemetryOptions.SectionName).Get<TelemetryOptions>() ?? new TelemetryOptions();
        // Tracing only when an OTLP endpoint is configured: ASP.NET Core's request spans and the batches' network runs.
        if (!string.IsNullOrWhiteSpace(telemetry.OtlpEndpoint) && Uri.TryCreate(telemetry.OtlpEndpoint, UriKind.Absolute, out var endpoint))
        {
            services.AddOpenTelemetry()
                .ConfigureResource(resource => resource.AddService(string.IsNullOrWhiteSpace(telemetry.ServiceName) ? "protopnet-service" : telemetry.ServiceName.Trim()))
                .WithTracing(tracing => tracing
                    .AddAspNetCoreInstrumentation(options => options.Filter = context =>
                        !context.Request.Path.StartsWithSegments("/metrics") && !context.Request.Path.StartsWithSegments("/health"))
                    .AddSource(ServiceMetrics.MeterName)
                    .AddOtlpExporter(exporter => exporter.Endpoint = endpoint));
        }
        return builder;
    }
}
