using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

public static class ServingExtensions
{
    /// <summary>
    /// Production serving: dynamic batching and bounded queues per model version (and for decoding), hot reload, metrics,
    /// API keys and CORS (rate limiting: <see cref="RateLimitingExtensions"/>; tracing: <see cref="TracingExtensions"/>).
    /// Every option is validated at start.
    /// </summary>
    public static IHostApplicationBuilder AddServing(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;
        services.AddOptions<BatchingOptions>().BindSettings(configuration, BatchingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
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

        services.AddMetrics();
        services.AddSingleton<ServiceMetrics>();
        services.AddSingleton<PreprocessingGate>();
        services.AddSingleton<DrawingTurns>();
        services.AddSingleton(provider => new InferenceRequests(TimeSpan.FromMilliseconds(provider.GetRequiredService<IOptions<BatchingOptions>>().Value.LoneQuietMs)));
        services.AddSingleton<BufferBudget>();
        services.AddSingleton<SpoolBudget>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<PrometheusExposition>();
        services.AddHostedService<ModelWatcherService>();
        services.AddOptions<ShutdownOptions>().BindSettings(configuration, ShutdownOptions.SectionName).ValidateDataAnnotations()
            // The host reads it as a whole number of seconds and passes over anything else without a word (30 s stays).
            .Validate(shutdown => configuration["shutdownTimeoutSeconds"] is not { Length: > 0 } timeout
                    || int.TryParse(timeout, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _),
                $"shutdownTimeoutSeconds (ASPNETCORE_SHUTDOWNTIMEOUTSECONDS) is '{configuration["shutdownTimeoutSeconds"]}': it is a whole number of seconds, 0 or more")
            .Validate<IOptions<HostOptions>>((shutdown, host) => shutdown.DrainSeconds == 0 || shutdown.DrainSeconds < host.Value.ShutdownTimeout.TotalSeconds,
                "Shutdown:DrainSeconds must be shorter than the host's shutdownTimeoutSeconds (ASPNETCORE_SHUTDOWNTIMEOUTSECONDS, 30 by default), which the drain is counted in: raise that too")
            .ValidateOnStart();
        services.AddHostedService<ShutdownReport>();
        // Kestrel's connection buffers in larger blocks: an upload arrives in fewer socket reads.
        services.AddSingleton<ConnectionBufferPoolFactory>();
        services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>(provider => provider.GetRequiredService<ConnectionBufferPoolFactory>());
        // Small /classify requests stay on the socket thread that read them; all others move to the thread pool.
        builder.AddInlineScheduling();

        // CORS from Security:CorsOrigins; with none configured the middleware is not in the pipeline at all.
        services.AddCors();
        services.AddOptions<Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions>().Configure<IOptions<SecurityOptions>>((cors, security) =>
        {
            var origins = security.Value.CorsOrigins;
            if (origins.Length == 0) return;
            cors.AddDefaultPolicy(policy => policy.WithOrigins(origins).AllowAnyMethod()
                .WithHeaders("Content-Type", SecurityOptions.ApiKeyHeader).WithExposedHeaders("Retry-After"));
        });

        return builder;
    }

    /// <summary>
    /// Kestrel trims a header's value, and a header holds no line break or other control character: a key with spaces
    /// at an end or such a character anywhere (a secret made from a file) could never be sent.
    /// </summary>
    private static bool Sendable(string? key) => key is null || (key == key.Trim() && !key.Any(char.IsControl));

    private static string Unsendable(string key) =>
        $"Security:{key} has spaces at its start or end, or a line break or other control character, which no request can send (a secret made from a file with its newline?)";

    /// <summary>
    /// Whether <paramref name="error"/> says the client has gone: a cancellation or failed read or write once the request
    /// is aborted, or, met while reading its body, a reset or the body's end before its declared length
    /// (<see cref="ProblemCatalog.IsBodyCutOff"/>). Those two surface before the request's abort does (a client that gives
    /// up mid-upload, as a killed process or a timed-out proxy does).
    /// </summary>
    public static bool ClientLeft(Exception error, HttpContext context) => error is ConnectionResetException
        || error is BadHttpRequestException cutOff && ProblemCatalog.IsBodyCutOff(cutOff)
        || error is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested;

    public static WebApplication UseServing(this WebApplication app)
    {
        ServiceGauges.Register(app.Services);
        _ = app.Services.GetRequiredService<PrometheusExposition>();
        // Once a shutdown has begun (its drain, Shutdown:DrainSeconds), every answer closes its connection: a client
        // then sends its next request on a new one, which is refused cleanly once the drain is over, rather than on a
        // kept-alive one the server closes under a request already sent (a POST with no answer, which is not safe to retry).
        var stopping = app.Lifetime.ApplicationStopping;
        app.Use((context, next) =>
        {
            if (stopping.IsCancellationRequested) context.Response.Headers.Connection = "close";
            return next(context);
        });
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
            catch (Exception error) when (ClientLeft(error, context))
            {
                if (context.Response.HasStarted) RequestMetrics.SetClientClosed(context);
                else context.Response.StatusCode = StatusCodes.Status499ClientClosedRequest;
            }
        });
        if (app.Services.GetRequiredService<IOptions<SecurityOptions>>().Value.CorsOrigins.Length > 0) app.UseCors();
        return app;
    }
}
