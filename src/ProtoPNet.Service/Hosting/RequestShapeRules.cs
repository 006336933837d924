using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Hosting;

/// <summary>
/// Requests refused for their shape before any endpoint reads them, the same way on every endpoint (under /v2 in the
/// protocol's error body): a body in a content coding or a transfer coding other than chunked, and a query parameter
/// given more than once. Health probes are
/// never refused for their shape: a 4xx from one reads as "not live" or "not ready" to Kubernetes and to the protocol.
/// </summary>
public static class RequestShapeRules
{
    public static WebApplication UseRequestShapeRules(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            var request = context.Request;
            if (IsHealthProbe(request)) return next(context);
            if ((HasContentCoding(request) || HasTransferCoding(request)) && CanHaveBody(context) && TakesBody(context))
            {
                // Not decoded: 415 saying so, with Accept-Encoding naming what is taken (RFC 9110, 15.5.16), rather than
                // reading the body as a broken image or broken JSON (Kestrel takes the chunks of "gzip, chunked" and
                // passes the gzip over). The status code pages write the answer.
                context.Response.Headers.AcceptEncoding = "identity";
                context.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
                return Task.CompletedTask;
            }
            if (RepeatedQueryParameter(request) is var (name, count))
            {
                // Which value would count is nowhere written down (the binder joins strings with commas and refuses
                // integers): refused in so many words.
                return OpenInferenceErrors.Answer(context, ProblemCatalog.InvalidParameter,
                    $"The query parameter '{name}' is given {count} times; give it once.").ExecuteAsync(context);
            }
            return next(context);
        });
        return app;
    }

    /// <summary>Whether the request's body is in a content coding other than identity.</summary>
    public static bool HasContentCoding(HttpRequest request) => Codings(request.Headers.ContentEncoding).Any(coding => !coding.Equals("identity", StringComparison.OrdinalIgnoreCase));

    /// <summary>Whether the request's body is in a transfer coding other than chunked (e.g. "gzip, chunked").</summary>
    public static bool HasTransferCoding(HttpRequest request) => Codings(request.Headers.TransferEncoding)
        .Any(coding => !coding.Equals("chunked", StringComparison.OrdinalIgnoreCase) && !coding.Equals("identity", StringComparison.OrdinalIgnoreCase));

    /// <summary>The codings a header lists, its empty list elements left out (RFC 9110, 5.6.1: "identity," names identity alone).</summary>
    private static IEnumerable<string> Codings(Microsoft.Extensions.Primitives.StringValues header) =>
        header.SelectMany(value => (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));

    /// <summary>/health/live, /health/ready and the protocol's /v2/health/live and /v2/health/ready (GET or HEAD).</summary>
    private static bool IsHealthProbe(HttpRequest request) =>
        (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && Serving.ProbePaths.IsHealthProbe(request.Path);

    /// <summary>Whether a body comes (a Content-Length above 0, or chunked): a coding named for no body codes nothing.</summary>
    private static bool CanHaveBody(HttpContext context) =>
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody
        ?? context.Request.ContentLength > 0;

    /// <summary>
    /// Whether the endpoint reads a body (an image upload, a training job, v2 infer): one that takes none ignores a body
    /// sent anyway, in whatever coding (API.md, Conventions). A request no endpoint matches is answered 404 or 405.
    /// </summary>
    private static bool TakesBody(HttpContext context) =>
        context.GetEndpoint()?.Metadata is { } metadata
        && (metadata.GetMetadata<Apis.ImageUploadMetadata>() is not null || metadata.GetMetadata<Microsoft.AspNetCore.Http.Metadata.IAcceptsMetadata>() is not null);

    /// <summary>The first query parameter given more than once, and how many times; null when there is none.</summary>
    private static (string Name, int Count)? RepeatedQueryParameter(HttpRequest request)
    {
        if (!request.QueryString.HasValue) return null;
        foreach (var (name, values) in request.Query)
        {
            if (values.Count > 1) return (name, values.Count);
        }
        return null;
    }
}
