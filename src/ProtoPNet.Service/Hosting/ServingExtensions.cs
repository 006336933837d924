using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

public static class ServingExtensions
{
    /// <summary>
    /// Production serving: dynamic batching and bounded queues per model version (and for decoding), hot reload, metrics, optional OTLP
    /// tracing, per-client rate limiting, API keys and CORS. Every option is validated at start.
    /// </summary>
    public static IHostApplicationBuilder AddServing(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        services.AddOptions<BatchingOptions>().BindSettings(configuration, BatchingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<RateLimitOptions>().BindSettings(configuration, RateLimitOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<SecurityOptions>().BindSettings(configuration, SecurityOptions.SectionName)
            // One value (Security__CorsOrigins=https://a.example), as environment variables give it, is a list too.
            .PostConfigure(security =>
            {
                if (security.CorsOrigins.Length == 0 && configuration[$"{SecurityOptions.SectionName}:{nameof(SecurityOptions.CorsOrigins)}"] is { Length: > 0 } listed)
                {
                    security.CorsOrigins = listed.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                }
            })
            .Validate(s => s.CorsOrigins.All(o => Uri.TryCreate(o, UriKind.Absolute, out var origin) && origin.Scheme is "http" or "https"
                                                   && origin.GetLeftPart(UriPartial.Authority) == o),
                "Security:CorsOrigins are origins as a browser sends them: a scheme, a host and a port if not the default, nothing after (https://app.example, not https://app.example/)")
            .Validate(s => Sendable(s.AdminApiKey), Unsendable(nameof(SecurityOptions.AdminApiKey)))
            .Validate(s => Sendable(s.ClassifyApiKey), Unsendable(nameof(SecurityOptions.ClassifyApiKey)))
            .ValidateOnStart();
        services.AddOptions<TelemetryOptions>().BindSettings(configuration, TelemetryOptions.SectionName)
            .Validate(t => string.IsNullOrWhiteSpace(t.OtlpEndpoint)
                           || Uri.TryCreate(t.OtlpEndpoint, UriKind.Absolute, out var endpoint) && endpoint.Scheme is "http" or "https",
                "Telemetry:OtlpEndpoint must be an absolute URI such as http://collector:4317")
            .ValidateOnStart();

        services.AddMetrics();
        services.AddSingleton<ServiceMetrics>();
        services.AddSingleton<PreprocessingGate>();
        services.AddSingleton<InferenceRequests>();
        services.AddSingleton<BufferBudget>();
        services.AddSingleton<SpoolBudget>();
        services.AddSingleton<PrometheusExposition>();
        services.AddHostedService<ModelWatcherService>();
        // Kestrel's connection buffers in larger blocks: an upload arrives in fewer socket reads.
        services.AddSingleton<ConnectionBufferPoolFactory>();
        services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>(provider => provider.GetRequiredService<ConnectionBufferPoolFactory>());
        // Small /classify requests stay on the socket thread that read them; all others move to the thread pool.
        builder.AddInlineScheduling();

        AddRateLimiting(services);
        // CORS from Security:CorsOrigins; with none configured the middleware is not in the pipeline at all.
        services.AddCors();
        services.AddOptions<Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions>().Configure<IOptions<SecurityOptions>>((cors, security) =>
        {
            var origins = security.Value.CorsOrigins;
            if (origins.Length == 0) return;
            cors.AddDefaultPolicy(policy => policy.WithOrigins(origins).AllowAnyMethod()
                .WithHeaders("Content-Type", SecurityOptions.ApiKeyHeader).WithExposedHeaders("Retry-After"));
        });

        // Tracing only when an OTLP endpoint is configured: ASP.NET Core's request spans and the batches' network runs.
        var otlp = configuration[$"{TelemetryOptions.SectionName}:{nameof(TelemetryOptions.OtlpEndpoint)}"];
        if (!string.IsNullOrWhiteSpace(otlp) && Uri.TryCreate(otlp, UriKind.Absolute, out var endpoint))
        {
            services.AddOpenTelemetry()
                .ConfigureResource(resource => resource.AddService(configuration["Telemetry:ServiceName"] is { } name && !string.IsNullOrWhiteSpace(name) ? name.Trim() : "protopnet-service"))
                .WithTracing(tracing => tracing
                    .AddAspNetCoreInstrumentation(options => options.Filter = context =>
                        !context.Request.Path.StartsWithSegments("/metrics") && !context.Request.Path.StartsWithSegments("/health"))
                    .AddSource(ServiceMetrics.MeterName)
                    .AddOtlpExporter(exporter => exporter.Endpoint = endpoint));
        }
        return builder;
    }

    /// <summary>Gauges read at each scrape: queue depth per served version, requests waiting to decode, the request bytes held in memory, Kestrel's connection buffers, the execution provider, the versions served.</summary>
    private static void RegisterGauges(ServiceMetrics metrics, ModelRegistry registry, PreprocessingGate preprocessing, BufferBudget buffers,
        SpoolBudget spool, ConnectionBufferPoolFactory connectionBuffers)
    {
        metrics.ObserveGauge("protopnet.queue.depth", "{image}", "Images waiting for a network run, per model version.", () =>
            registry.Catalog.Served.Values.Select(s => new System.Diagnostics.Metrics.Measurement<long>(s.Batcher.QueueDepth,
                ServiceMetrics.Tag("model", s.Bundle.Name), ServiceMetrics.Tag("version", s.Bundle.Version))));
        metrics.ObserveGauge("protopnet.decode.waiting", "{request}", "Requests waiting for their turn to decode their images.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(preprocessing.Waiting)]);
        metrics.ObserveGauge("protopnet.buffered_bytes", "By", "Request bytes held in memory (uploads until decoded, pixels kept to draw on and the pictures being drawn, v2 bodies), of Images:MaxBufferedBytes.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(buffers.Held)]);
        metrics.ObserveGauge("protopnet.spooled_bytes", "By", "Bytes of multipart image parts being spooled to disk by the uploads in progress, of Images:MaxSpooledBytes (0: no limit).", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(spool.Spooled)]);
        metrics.ObserveGauge("protopnet.connection_buffer_bytes", "By", "Bytes in the blocks Kestrel reads requests into and writes answers from: in use, and kept free for reuse.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(connectionBuffers.BytesHeld)]);
        metrics.ObserveGauge("protopnet.model.ready", "{version}", "1 for each loaded model version, with whether it is the one served by default.", () =>
            registry.Catalog.Families.Values.SelectMany(f => f.Versions.Select(v => new System.Diagnostics.Metrics.Measurement<long>(1,
                ServiceMetrics.Tag("model", v.Name), ServiceMetrics.Tag("version", v.Version),
                ServiceMetrics.Tag("default", ReferenceEquals(v, f.Served) ? "true" : "false")))));
        metrics.ObserveGauge("protopnet.execution_provider.info", "", "1, labelled with the ONNX Runtime execution provider the sessions run on.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(1, ServiceMetrics.Tag("provider", registry.Provider.Provider))]);
        metrics.ObserveGauge("protopnet.models.refused", "{bundle}", "Bundle folders under the model root that failed a load check.", () =>
            [new System.Diagnostics.Metrics.Measurement<long>(registry.Catalog.Refused.Count)]);
    }

    private static void AddRateLimiting(IServiceCollection services)
    {
        services.AddRateLimiter(limiter =>
        {
            // Used only when RateLimiting:PermitLimit is above 0 (UseServing).
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            {
                var options = context.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                var path = context.Request.Path;
                // Probes and scrapes: a model's v2 readiness is a probe too (KServe points one at it).
                if (path.StartsWithSegments("/health") || path.StartsWithSegments("/metrics")
                    || path.StartsWithSegments("/v2/health") || (path.StartsWithSegments("/v2/models") && path.Value!.EndsWith("/ready", StringComparison.Ordinal)))
                {
                    return RateLimitPartition.GetNoLimiter("unlimited");
                }
                var client = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
                return RateLimitPartition.GetFixedWindowLimiter(client, _ => new FixedWindowRateLimiterOptions
                {
                    PermitLimit = options.PermitLimit,
                    Window = TimeSpan.FromSeconds(options.WindowSeconds),
                    QueueLimit = 0,
                });
            });
            limiter.OnRejected = async (context, cancellationToken) =>
            {
                var http = context.HttpContext;
                var options = http.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait)
                    ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : options.WindowSeconds;
                http.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                var detail = $"This client sent more than {options.PermitLimit} requests in {options.WindowSeconds} s (RateLimiting:PermitLimit); retry after {retryAfter} s.";
                await OpenInferenceErrors.Answer(http, ProblemCatalog.RateLimited, detail).ExecuteAsync(http);
            };
        });
    }

    /// <summary>
    /// Kestrel trims a header's value, and a header holds no line break or other control character: a key with spaces
    /// at an end or such a character anywhere (a secret made from a file) could never be sent.
    /// </summary>
    private static bool Sendable(string? key) => key is null || (key == key.Trim() && !key.Any(char.IsControl));

    private static string Unsendable(string key) =>
        $"Security:{key} has spaces at its start or end, or a line break or other control character, which no request can send (a secret made from a file with its newline?)";

    public static WebApplication UseServing(this WebApplication app)
    {
        RegisterGauges(app.Services.GetRequiredService<ServiceMetrics>(), app.Services.GetRequiredService<ModelRegistry>(),
            app.Services.GetRequiredService<PreprocessingGate>(), app.Services.GetRequiredService<BufferBudget>(),
            app.Services.GetRequiredService<SpoolBudget>(), app.Services.GetRequiredService<ConnectionBufferPoolFactory>());
        _ = app.Services.GetRequiredService<PrometheusExposition>();
        app.UseInferenceRequestCount();
        app.UseInlineScheduling();
        app.UseRequestMetrics();
        // A client that left before or during its answer: 499, not an error of ours, and no one to answer. Inside the
        // request log line and the metrics, so both see a 499 rather than the cancellation or failed write that surfaces
        // (Serilog: 500). An answer already under way keeps the status line it sent; the log and the metrics say 499.
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (Exception error) when (error is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
            {
                if (context.Response.HasStarted) RequestMetrics.SetClientClosed(context);
                else context.Response.StatusCode = StatusCodes.Status499ClientClosedRequest;
            }
        });
        if (app.Services.GetRequiredService<IOptions<SecurityOptions>>().Value.CorsOrigins.Length > 0) app.UseCors();
        // Off by default: then no request pays for the limiter's partition lookup.
        if (app.Services.GetRequiredService<IOptions<RateLimitOptions>>().Value.PermitLimit > 0) app.UseRateLimiter();
        return app;
    }
}

/// <summary>Configuration section <c>Telemetry</c>: <c>OtlpEndpoint</c> (e.g. http://collector:4317) turns OpenTelemetry tracing on.</summary>
public sealed class TelemetryOptions
{
    public const string SectionName = "Telemetry";

    /// <summary>OTLP endpoint for traces; empty (default): no tracing.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>service.name of the traces (default, and when empty: protopnet-service).</summary>
    public string? ServiceName { get; set; }
}
