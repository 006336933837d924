using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.OpenApi;
using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Training;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace ProtoPNet.Service.OpenApi;

/// <summary>
/// The answers' schemas as a client generator should read them: every member the service always writes is required
/// (null where its type allows it; the few written "only when ..." are not), and members a later version adds are
/// allowed, so a strict client built from this document keeps working when the answer grows. Request bodies keep
/// their own rules (<see cref="OpenInferenceRequestSchemaFilter"/>).
/// </summary>
public sealed class ResponseSchemaFilter : ISchemaFilter
{
    /// <summary>The request bodies' types, which this filter leaves alone.</summary>
    public static readonly IReadOnlySet<Type> RequestTypes = new HashSet<Type>
    {
        typeof(V2InferenceRequest), typeof(V2RequestInput), typeof(V2RequestOutput), typeof(TrainingJobRequest),
    };

    private static readonly Assembly[] Ours = [typeof(ResponseSchemaFilter).Assembly, typeof(Inference.Bundles.ModelBundle).Assembly];

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is not OpenApiSchema { Properties.Count: > 0 } concrete || RequestTypes.Contains(context.Type)
            || !Ours.Contains(context.Type.Assembly)) return;
        concrete.AdditionalPropertiesAllowed = true;
        concrete.AdditionalProperties = null;
        concrete.Required = new HashSet<string>(context.Type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(property => property.GetCustomAttribute<JsonIgnoreAttribute>() is null)
            .Select(JsonName)
            .Where(concrete.Properties.ContainsKey));
    }

    private static string JsonName(PropertyInfo property) =>
        property.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonNamingPolicy.CamelCase.ConvertName(property.Name);
}

/// <summary>
/// A problem as the service writes it (RFC 9457): <c>type</c>, <c>title</c>, <c>status</c>, <c>detail</c> and the
/// request's <c>traceId</c> always (an image's problem inside a batch's 200 too); <c>instance</c> never; other members with some kinds (<c>field</c> of a bad training job, <c>executionProvider</c> of readiness).
/// </summary>
public sealed class ProblemDetailsSchemaFilter : ISchemaFilter
{
    private static readonly string[] Always = ["type", "title", "status", "detail", "traceId"];

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (context.Type != typeof(ProblemDetails) || schema is not OpenApiSchema { Properties: { } properties } concrete) return;
        properties.Remove("instance");
        foreach (var name in Always)
        {
            if (properties.TryGetValue(name, out var member) && member is OpenApiSchema { Type: { } type } typed) typed.Type = type & ~JsonSchemaType.Null;
        }
        properties["traceId"] = new OpenApiSchema
        {
            Type = JsonSchemaType.String,
            Description = "The request's W3C traceparent (00-<trace id>-<span id>-<flags>), also in its log line; on every problem, an image's inside a batch's answer too.",
        };
        concrete.Required = new HashSet<string>(Always);
        concrete.Description = "A problem (RFC 9457). Some kinds add members: `field` (invalid-training-job), `executionProvider` (no-model-ready from /health/ready).";
    }
}

/// <summary>A batch's results: each is an image's classification, or the problem of that image, in upload order.</summary>
public sealed class BatchResultsSchemaFilter : ISchemaFilter
{
    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (context.Type != typeof(BatchClassifyResponse) || schema is not OpenApiSchema { Properties: { } properties }
            || !properties.TryGetValue("results", out var results) || results is not OpenApiSchema array) return;
        array.Items = new OpenApiSchema
        {
            OneOf =
            [
                context.SchemaGenerator.GenerateSchema(typeof(ClassifyResponse), context.SchemaRepository),
                context.SchemaGenerator.GenerateSchema(typeof(ProblemDetails), context.SchemaRepository),
            ],
        };
    }
}

/// <summary>
/// A member that refers to another schema and may be null is written <c>allOf: [$ref], nullable: true</c>, which strict
/// OpenAPI 3.0 validators read as "never null" (<c>nullable</c> has no effect without a <c>type</c> beside it, and the
/// schema referred to is not nullable): they refused the nulls the service sends (a job's <c>progress</c> before it
/// starts, a bundle's <c>interpretability</c> without a scorecard). Such a member is written as one of the schema or
/// null: <c>oneOf: [$ref, {type: object, nullable: true, enum: [null]}]</c>, which client generators read as the
/// schema's type, nullable (with anyOf, NSwag made a new class of its own for each such member). The null branch has a
/// <c>type</c> because since OpenAPI 3.0.3 <c>nullable</c> means nothing without one (linters refused the bare form, and
/// then checked no example that holds such a member); its enum leaves null alone of that type.
/// </summary>
public sealed class NullableReferenceDocumentFilter : IDocumentFilter
{
    public void Apply(OpenApiDocument document, DocumentFilterContext context)
    {
        foreach (var schema in document.Components?.Schemas?.Values ?? [])
        {
            foreach (var member in (schema.Properties?.Values ?? []).OfType<OpenApiSchema>())
            {
                if (member.AllOf is not { Count: 1 } allOf || member.Type != JsonSchemaType.Null) continue;
                member.OneOf = [allOf[0], new OpenApiSchema { Type = JsonSchemaType.Object | JsonSchemaType.Null, Enum = [null!] }];
                member.AllOf = null;
                member.Type = null;
            }
        }
    }
}
