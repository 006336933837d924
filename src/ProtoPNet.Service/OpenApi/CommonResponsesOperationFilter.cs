using Microsoft.AspNetCore.Mvc;
using Microsoft.OpenApi;
using ProtoPNet.Service.Problems;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace ProtoPNet.Service.OpenApi;

/// <summary>
/// The answers any endpoint may give whatever it does, declared on each (docs/API.md, Conventions): 400 for a query
/// parameter given twice (<see cref="Hosting.RequestShapeRules"/>; never on a health probe), 415 for a body in a content
/// coding, and 429 over the rate limit (<see cref="Hosting.RateLimitingExtensions"/>; not on probes and scrapes).
/// Under /v2 in the protocol's error body.
/// </summary>
public sealed class CommonResponsesOperationFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var path = "/" + (context.ApiDescription.RelativePath ?? "").Split('?')[0];
        if (IsHealthProbe(path)) return;
        operation.Responses ??= [];
        var v2 = path.StartsWith("/v2", StringComparison.Ordinal);
        Add(operation, context, v2, StatusCodes.Status400BadRequest, "A query parameter is given twice, or one is out of range or unknown.");
        if (operation.RequestBody is not null)
        {
            Add(operation, context, v2, StatusCodes.Status415UnsupportedMediaType, "The body is in a content coding (Content-Encoding), or of a type this endpoint does not take.");
        }
        if (!IsExemptFromRateLimit(path))
        {
            Add(operation, context, v2, StatusCodes.Status429TooManyRequests, "This client exceeded RateLimiting:PermitLimit. The Retry-After header says when to try again.");
        }
    }

    /// <summary>As the rate limiter exempts them: probes, scrapes and the protocol's model readiness.</summary>
    private static bool IsExemptFromRateLimit(string path) =>
        IsHealthProbe(path) || path == "/metrics" || (path.StartsWith("/v2/models/", StringComparison.Ordinal) && path.EndsWith("/ready", StringComparison.Ordinal));

    private static bool IsHealthProbe(string path) => path.StartsWith("/health/", StringComparison.Ordinal) || path.StartsWith("/v2/health/", StringComparison.Ordinal);

    private static void Add(OpenApiOperation operation, OperationFilterContext context, bool v2, int status, string description)
    {
        var key = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (operation.Responses!.ContainsKey(key)) return;
        var (type, media) = v2 ? (typeof(V2Error), "application/json") : (typeof(ProblemDetails), "application/problem+json");
        operation.Responses[key] = new OpenApiResponse
        {
            Description = description,
            Content = new Dictionary<string, IOpenApiMediaType>
            {
                [media] = new OpenApiMediaType { Schema = context.SchemaGenerator.GenerateSchema(type, context.SchemaRepository) },
            },
        };
    }
}
