using System.Diagnostics;
using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Counts every request and times it, labelled by model, version, endpoint (the route's name) and status. The endpoints
/// name the model version they used with <see cref="SetModel"/>; other requests are labelled "-".
/// </summary>
public static class RequestMetrics
{
    private const string ModelKey = "protopnet.model";

    public static void SetModel(HttpContext context, ModelBundle bundle) => context.Items[ModelKey] = bundle;

    public static WebApplication UseRequestMetrics(this WebApplication app)
    {
        var metrics = app.Services.GetRequiredService<ServiceMetrics>();
        app.Use(async (context, next) =>
        {
            var started = Stopwatch.GetTimestamp();
            var failed = false;
            try
            {
                await next(context);
            }
            catch
            {
                failed = true;
                throw;
            }
            finally
            {
                var endpoint = context.GetEndpoint()?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName
                               ?? (context.GetEndpoint() is null ? "unmatched" : "other");
                var bundle = context.Items.TryGetValue(ModelKey, out var value) ? value as ModelBundle : null;
                var status = failed ? 500 : context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode;
                var model = ServiceMetrics.Tag("model", bundle?.Name ?? "-");
                var version = ServiceMetrics.Tag("version", bundle?.Version ?? "-");
                var name = ServiceMetrics.Tag("endpoint", endpoint);
                metrics.Requests.Add(1, model, version, name, ServiceMetrics.Tag("status", status));
                metrics.RequestDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, model, version, name);
            }
        });
        return app;
    }
}
