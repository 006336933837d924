using Microsoft.AspNetCore.Mvc;
using Microsoft.OpenApi;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace ProtoPNet.Service.OpenApi;

/// <summary>
/// The answers any endpoint may give whatever it does, declared on each (docs/API.md, Conventions): 400 for a query
/// parameter given twice (<see cref="Hosting.RequestShapeRules"/>), 415 for a body in a content coding (or a transfer coding other than chunked), and 429 over
/// the rate limit (<see cref="Hosting.RateLimitingExtensions"/>); on a probe's path neither the first two nor the limit
/// (<see cref="ProbePaths"/>).
/// Under /v2 in the protocol's error body.
/// </summary>
public sealed class CommonResponsesOperationFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var path = new PathString("/" + (context.ApiDescription.RelativePath ?? "").Split('?')[0]);
        if (ProbePaths.IsHealthProbe(path)) return;
        operation.Responses ??= [];
        var v2 = path.StartsWithSegments("/v2");
        Add(operation, context, v2, StatusCodes.Status400BadRequest, "A query parameter is given twice, or the value of one this endpoint takes cannot be read.");
        if (operation.RequestBody is not null)
        {
            Add(operation, context, v2, StatusCodes.Status415UnsupportedMediaType, "The body is in a content coding (Content-Encoding) or a transfer coding other than chunked, or of a type this endpoint does not take.");
        }
        if (!ProbePaths.IsExemptFromRateLimit(path))
        {
            Add(operation, context, v2, StatusCodes.Status429TooManyRequests, "This client exceeded RateLimiting:PermitLimit. The Retry-After header says when to try again.");
        }
    }

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
