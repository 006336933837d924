using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

/// <summary>Per-client rate limiting (RateLimiting:PermitLimit requests per RateLimiting:WindowSeconds and client address); off by default.</summary>
public static class RateLimitingExtensions
{
    public static IHostApplicationBuilder AddRateLimiting(this IHostApplicationBuilder builder)
    {
        var (services, configuration) = (builder.Services, builder.Configuration);
        services.AddOptions<RateLimitOptions>().BindSettings(configuration, RateLimitOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddRateLimiter(limiter =>
        {
            // Used only when RateLimiting:PermitLimit is above 0 (UseRateLimiting).
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            {
                var options = context.RequestServices.GetRequiredService<IOptions<RateLimitOptions>>().Value;
                if (Serving.ProbePaths.IsExemptFromRateLimit(context.Request.Path)) return RateLimitPartition.GetNoLimiter("unlimited");
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
        return builder;
    }

    public static WebApplication UseRateLimiting(this WebApplication app)
    {
        // Off by default: then no request pays for the limiter's partition lookup.
        if (app.Services.GetRequiredService<IOptions<RateLimitOptions>>().Value.PermitLimit > 0) app.UseRateLimiter();
        return app;
    }
}
