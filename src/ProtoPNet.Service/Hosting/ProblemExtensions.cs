using System.Globalization;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Hosting;

public static class ProblemExtensions
{
    /// <summary>Every error, including routing and binding errors, as application/problem+json with a type, a detail and the trace id.</summary>
    public static IHostApplicationBuilder AddProblemResponses(this IHostApplicationBuilder builder)
    {
        builder.Services.AddProblemDetails(options => options.CustomizeProblemDetails = context =>
        {
            var problem = context.ProblemDetails;
            var http = context.HttpContext;
            problem.Extensions["traceId"] = ProblemCatalog.TraceId(http);
            if (problem.Status == StatusCodes.Status400BadRequest && problem.Type == DefaultBadRequestType)
            {
                // The framework's 400: a parameter its binder could not read (a word, or nothing, for an integer).
                problem.Type = ProblemCatalog.InvalidParameter.Type;
                problem.Title = ProblemCatalog.InvalidParameter.Title;
            }
            if (problem.Status == StatusCodes.Status415UnsupportedMediaType)
            {
                // Routing's answer to a content type an endpoint does not take: the same kind as the endpoints' own 415s.
                problem.Type = ProblemCatalog.UnsupportedMediaType.Type;
                problem.Title = ProblemCatalog.UnsupportedMediaType.Title;
            }
            if (problem.Status == StatusCodes.Status500InternalServerError && problem.Type == DefaultServerErrorType)
            {
                // An unhandled exception, answered by the exception handler: the service's own kind, as every problem it raises.
                problem.Type = ProblemCatalog.Unexpected.Type;
                problem.Title = ProblemCatalog.Unexpected.Title;
            }
            problem.Detail ??= FrameworkDetail(http, problem.Status);
            ProblemLogging.Record(http, problem.Type);
            if (problem.Status is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests
                && !http.Response.Headers.ContainsKey("Retry-After") && ProblemCatalog.RetryAfterFor(problem.Type) is { } seconds)
            {
                http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            }
        });
        builder.Services.AddExceptionHandler<OpenInferenceExceptionHandler>();
        return builder;
    }

    public static WebApplication UseProblemResponses(this WebApplication app)
    {
        // ASP.NET Core's problem writer writes only for a client whose Accept admits JSON: for any other (an image/png
        // client of /classify/card) the framework's 4xx became an empty 500, and the endpoints' own problems lost their
        // trace id. The service answers in one form whatever Accept says (API.md), so such an Accept is set aside.
        app.Use((context, next) =>
        {
            if (!AdmitsProblemJson(context.Request.Headers.Accept)) context.Request.Headers.Remove(HeaderNames.Accept);
            return next(context);
        });
        app.UseExceptionHandler();
        return app;
    }

    /// <summary>
    /// The framework's own error answers (no endpoint, wrong method, a content type an endpoint does not take): problems,
    /// or the Open Inference Protocol's {"error": "..."} under /v2. Inside the request log's scope (after
    /// <see cref="LoggingExtensions.UseServiceRequestLogging"/>), so that the log line names the problem written.
    /// </summary>
    public static WebApplication UseFrameworkProblems(this WebApplication app)
    {
        app.UseStatusCodePages(async context =>
        {
            var http = context.HttpContext;
            var status = http.Response.StatusCode;
            if (OpenInferenceErrors.Serves(http.Request.Path))
            {
                await OpenInferenceErrors.Error(status, FrameworkDetail(http, status) ?? $"The request was answered {status}.").ExecuteAsync(http);
                return;
            }
            await http.RequestServices.GetRequiredService<IProblemDetailsService>()
                .WriteAsync(new ProblemDetailsContext { HttpContext = http, ProblemDetails = { Status = status } });
        });
        return app;
    }

    private static readonly MediaTypeHeaderValue ProblemJson = new("application/problem+json");
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    /// <summary>Whether ASP.NET Core's problem writer would write for this Accept: none, or one that admits (problem+)JSON.</summary>
    private static bool AdmitsProblemJson(StringValues accept) =>
        accept.Count == 0 || !MediaTypeHeaderValue.TryParseList(accept, out var values) || values.Count == 0
        || values.Any(value => Json.IsSubsetOf(value) || ProblemJson.IsSubsetOf(value));

    /// <summary>The type ASP.NET Core gives a 400 of its own.</summary>
    private const string DefaultBadRequestType = "https://tools.ietf.org/html/rfc9110#section-15.5.1";

    /// <summary>The type ASP.NET Core gives a 500 of its own (an unhandled exception).</summary>
    private const string DefaultServerErrorType = "https://tools.ietf.org/html/rfc9110#section-15.6.1";

    /// <summary>What a framework answer of this status means, for people.</summary>
    private static string? FrameworkDetail(HttpContext http, int? status) => status switch
    {
        StatusCodes.Status400BadRequest => UnreadableIntegers(http.Request) switch
        {
            [var (name, value)] => $"The query parameter {name} is '{RequestText.Echo(value)}', which is not an integer from 0 to {int.MaxValue} ({IntegerRule}; an empty value is not one either: leave it out for its default).",
            [.. var first, var last] => $"The query parameters {string.Join(", ", first.Select(WithValue))} and {WithValue(last)} are not integers from 0 to {int.MaxValue} ({IntegerRule}; an empty value is not one either: leave them out for their defaults).",
            _ => $"A parameter cannot be read as its type: {IntegerRule} (an empty value is not one: leave a query parameter out for its default).",
        },
        StatusCodes.Status404NotFound => $"No endpoint matches {http.Request.Method} {RequestTarget.PathOf(http)}. The API is described at /swagger.",
        StatusCodes.Status405MethodNotAllowed => $"{http.Request.Method} is not allowed on {RequestTarget.PathOf(http)}. The API is described at /swagger.",
        StatusCodes.Status413PayloadTooLarge => "The request body is larger than the server accepts.",
        StatusCodes.Status415UnsupportedMediaType when RequestShapeRules.HasTransferCoding(http.Request) =>
            $"Transfer-Encoding '{RequestText.Printable(http.Request.Headers.TransferEncoding.ToString())}' is not accepted: send the body as it is, with a Content-Length or chunked alone.",
        StatusCodes.Status415UnsupportedMediaType when RequestShapeRules.HasContentCoding(http.Request) =>
            $"Content-Encoding '{http.Request.Headers.ContentEncoding}' is not accepted: send the body as it is (image files are compressed already).",
        StatusCodes.Status415UnsupportedMediaType => string.IsNullOrEmpty(http.Request.ContentType)
            ? $"{http.Request.Method} {RequestTarget.PathOf(http)} needs a body with a Content-Type. The API is described at /swagger."
            : $"Content-Type '{http.Request.ContentType}' is not accepted by {http.Request.Method} {RequestTarget.PathOf(http)}{WhatToSend(http.Request)}. The API is described at /swagger.",
        StatusCodes.Status500InternalServerError => ProblemCatalog.Unexpected.ExampleDetail,
        _ => null,
    };

    /// <summary>
    /// What the endpoint takes, where routing refused the content type before it (so its own word is not said): a job
    /// sent with curl's <c>-d</c> (a URL-encoded form) is told to send JSON, as one of another JSON type is by the endpoint.
    /// </summary>
    private static string WhatToSend(HttpRequest request) =>
        HttpMethods.IsPost(request.Method) && request.Path.Equals("/training/jobs", StringComparison.OrdinalIgnoreCase)
            ? ": send the job as application/json"
            : "";

    /// <summary>The integer query parameters of the classify endpoints (ClassifyQueries.ExplainQuery), which the framework binds.</summary>
    private static readonly string[] IntegerParameters = ["topClasses", "topPrototypes", "explainClass"];

    private static string WithValue((string Name, string Value) parameter) => $"{parameter.Name} ('{RequestText.Echo(parameter.Value)}')";

    private const string IntegerRule = "topClasses and topPrototypes take a count from 0, explainClass a class index from 0";

    /// <summary>The integer query parameters whose value the binder could not read (a word, nothing, or out of range), in the order sent.</summary>
    private static List<(string Name, string Value)> UnreadableIntegers(HttpRequest request)
    {
        var unreadable = new List<(string Name, string Value)>();
        foreach (var (key, values) in request.Query)
        {
            var name = IntegerParameters.FirstOrDefault(p => p.Equals(key, StringComparison.OrdinalIgnoreCase));
            if (name is not null && values.Count == 1 && !int.TryParse(values[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
            {
                unreadable.Add((name, values[0] ?? ""));
            }
        }
        return unreadable;
    }

    /// <summary>
    /// A fault inside a /v2 endpoint is answered as that protocol's <c>{"error": "..."}</c> (with the trace id that finds
    /// it in the log) instead of a problem; elsewhere the problem details service answers it.
    /// </summary>
    private sealed class OpenInferenceExceptionHandler(ILogger<OpenInferenceExceptionHandler> logger) : IExceptionHandler
    {
        public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken cancellationToken)
        {
            if (!OpenInferenceErrors.Serves(http.Request.Path)) return false;
            var traceId = ProblemCatalog.TraceId(http);
            logger.LogError(exception, "Unhandled exception in {Method} {Path} (trace {TraceId})", http.Request.Method, http.Request.Path, traceId);
            await OpenInferenceErrors.Error(StatusCodes.Status500InternalServerError, $"{ProblemCatalog.Unexpected.ExampleDetail} Trace id: {traceId}.").ExecuteAsync(http);
            return true;
        }
    }
}
