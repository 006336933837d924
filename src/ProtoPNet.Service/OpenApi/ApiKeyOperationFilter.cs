using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using ProtoPNet.Service.Serving;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace ProtoPNet.Service.OpenApi;

/// <summary>
/// The API keys (header <c>X-Api-Key</c>) as the document's security schemes and each endpoint's requirement, so that
/// Swagger UI offers to send a key (its Authorize button) and a generated client takes one. The administrative endpoints
/// always need theirs; the classification endpoints only where <c>Security:ClassifyApiKey</c> is set.
/// </summary>
public sealed class ApiKeyOperationFilter(IOptions<SecurityOptions> security) : IOperationFilter
{
    public const string AdminScheme = "adminApiKey";
    public const string ClassifyScheme = "classifyApiKey";

    public static void AddSchemes(SwaggerGenOptions options)
    {
        options.AddSecurityDefinition(AdminScheme, Scheme(
            "Security:AdminApiKey, for POST /models/reload, POST /models/{name}/reload and every /training endpoint (403 admin-disabled while it is not configured)."));
        options.AddSecurityDefinition(ClassifyScheme, Scheme(
            "Security:ClassifyApiKey, for the classify endpoints and v2 infer, where it is configured (they are open otherwise)."));
    }

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var needs = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<ApiKeyMetadata>().LastOrDefault();
        if (needs is null || (needs.Kind == ApiKeyKind.Classify && string.IsNullOrEmpty(security.Value.ClassifyApiKey))) return;
        var scheme = needs.Kind == ApiKeyKind.Admin ? AdminScheme : ClassifyScheme;
        operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(scheme, context.Document)] = [] }];
    }

    private static OpenApiSecurityScheme Scheme(string description) => new()
    {
        Type = SecuritySchemeType.ApiKey,
        In = ParameterLocation.Header,
        Name = SecurityOptions.ApiKeyHeader,
        Description = description,
    };
}
