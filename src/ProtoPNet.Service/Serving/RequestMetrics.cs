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
    private const string ClientClosedKey = "protopnet.client-closed";
    private const string AnswerCutOffKey = "protopnet.answer-cut-off";

    public static void SetModel(HttpContext context, ModelBundle bundle) => context.Items[ModelKey] = bundle;

    /// <summary>The client left during the answer: counted (and logged) as 499, though the status line said otherwise.</summary>
    public static void SetClientClosed(HttpContext context) => context.Items[ClientClosedKey] = true;

    /// <summary>The service cut off an answer that the client read too slowly (Classify:AnswerReadTimeout): counted (and logged) as 408.</summary>
    public static void SetAnswerCutOff(HttpContext context) => context.Items[AnswerCutOffKey] = true;

    /// <summary>
    /// Whether the request's connection went once the server had stopped accepting in a shutdown: the shutdown's time
    /// ran out and the server closed it (or, rarely, its client left then). Counted (and logged) as 503, not as a
    /// client that left. A client that leaves during the drain before it (Shutdown:DrainSeconds) left.
    /// </summary>
    public static bool CutOffByShutdown(HttpContext context, InferenceRequests requests) =>
        context.RequestAborted.IsCancellationRequested && requests.ServerClosing;

    /// <summary>
    /// The status a request ended with, as the request log line and the metrics give it: 408 for an answer cut off
    /// because its client read it too slowly, 503 for one cut off by a shutdown. The client left (499) when its
    /// connection went before the answer started, or during a chunked answer: Kestrel drops the writes of a reset
    /// connection without an error, and a chunked answer's last chunk is only sent after this pipeline, so it cannot
    /// have been complete. (An answer with a Content-Length may have arrived whole before the client closed.)
    /// </summary>
    /// An exception is not seen here: the metrics and the log line count it as 500 themselves.
    public static int FinalStatus(HttpContext context) =>
        context.Items.ContainsKey(AnswerCutOffKey) ? StatusCodes.Status408RequestTimeout
        : context.RequestAborted.IsCancellationRequested   // looked at first: the service is looked up only for an aborted request
          && CutOffByShutdown(context, context.RequestServices.GetRequiredService<InferenceRequests>()) ? StatusCodes.Status503ServiceUnavailable
        : context.Items.ContainsKey(ClientClosedKey)
          || context.RequestAborted.IsCancellationRequested && (!context.Response.HasStarted || context.Response.ContentLength is null)
            ? StatusCodes.Status499ClientClosedRequest
        : context.Response.StatusCode;

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
                var status = failed ? StatusCodes.Status500InternalServerError : FinalStatus(context);   // failed: thrown out here
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
