using System.Diagnostics;
using System.Globalization;
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
            problem.Extensions["traceId"] = Activity.Current?.Id ?? http.TraceIdentifier;
            problem.Detail ??= problem.Status switch
            {
                StatusCodes.Status400BadRequest => "The request cannot be read: check the query parameters (topClasses, topPrototypes and explainClass are integers) and the body.",
                StatusCodes.Status404NotFound => $"No endpoint matches {http.Request.Method} {http.Request.Path}. The API is described at /swagger.",
                StatusCodes.Status405MethodNotAllowed => $"{http.Request.Method} is not allowed on {http.Request.Path}. The API is described at /swagger.",
                StatusCodes.Status413PayloadTooLarge => "The request body is larger than the server accepts.",
                StatusCodes.Status500InternalServerError => ProblemCatalog.Unexpected.ExampleDetail,
                _ => null,
            };
            if (problem.Status is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests
                && !http.Response.Headers.ContainsKey("Retry-After"))
            {
                http.Response.Headers.RetryAfter = ProblemCatalog.RetryAfterFor(problem.Type).ToString(CultureInfo.InvariantCulture);
            }
        });
        return builder;
    }

    public static WebApplication UseProblemResponses(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        return app;
    }
}
