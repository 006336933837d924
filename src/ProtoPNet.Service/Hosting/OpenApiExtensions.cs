using Microsoft.OpenApi;
using ProtoPNet.Service.OpenApi;

namespace ProtoPNet.Service.Hosting;

public static class OpenApiExtensions
{
    public static IHostApplicationBuilder AddApiDocumentation(this IHostApplicationBuilder builder)
    {
        builder.Services.AddEndpointsApiExplorer();
        builder.Services.AddSwaggerGen(options =>
        {
            options.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "ProtoPNet Service",
                Version = "v1",
                Description = "Interpretable image recognition (\"This Looks Like That\", NeurIPS 2019): every prediction comes with the " +
                              "prototypes it looked at, where in the image it saw them, and how many points each contributed. " +
                              "Every error is application/problem+json with a type, a detail and the request's trace id, but on " +
                              "the Open Inference Protocol's /v2 endpoints, which answer {\"error\": \"...\"} as that protocol says.",
            });
            options.IncludeXmlComments(typeof(OpenApiExtensions).Assembly);
            // Every GET also answers HEAD (HeadRequests.cs); the document lists the GET only.
            options.DocInclusionPredicate((_, description) => description.HttpMethod != HttpMethods.Head);
            // Query parameters are bound from [AsParameters] records, whose properties are PascalCase; the API's are camelCase.
            options.DescribeAllParametersInCamelCase();
            // A heatmap is drawn as the answer is written; in JSON it is a string, a PNG data URI.
            options.MapType<Apis.HeatmapPng>(() => new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Description = $"A PNG data URI ({Inference.Rendering.HeatmapRenderer.PngDataUriPrefix}...): the heatmap over the decoded image, scaled down to at most {Inference.Explanation.Classifier.MaxDrawingPixels / 1_000_000} megapixels.",
            });
            // A training job's options are whatever JSON object the trainer takes, not System.Text.Json's node classes.
            options.MapType<System.Text.Json.Nodes.JsonObject>(() => new OpenApiSchema
            {
                Type = JsonSchemaType.Object,
                AdditionalPropertiesAllowed = true,
                Description = "A JSON object.",
            });
            // What may be null says so (string? is nullable, string is not), also where a property refers to a schema.
            options.SupportNonNullableReferenceTypes();
            options.UseAllOfToExtendReferenceSchemas();
            ApiKeyOperationFilter.AddSchemes(options);
            options.OperationFilter<ApiKeyOperationFilter>();
            options.OperationFilter<ImageUploadOperationFilter>();
            options.OperationFilter<CommonResponsesOperationFilter>();
            options.OperationFilter<ExamplesOperationFilter>();
            options.OperationFilter<ResponseHeadersOperationFilter>();
            options.OperationFilter<ParametersOperationFilter>();
            options.OperationFilter<OpenInferenceBinaryOperationFilter>();
            options.SchemaFilter<OpenInferenceRequestSchemaFilter>();
            options.SchemaFilter<ResponseSchemaFilter>();
            options.SchemaFilter<ProblemDetailsSchemaFilter>();
            options.SchemaFilter<BatchResultsSchemaFilter>();
            options.DocumentFilter<NullableReferenceDocumentFilter>();
        });
        return builder;
    }

    /// <summary>The OpenAPI document at /swagger/v1/swagger.json and Swagger UI at /swagger.</summary>
    public static WebApplication UseApiDocumentation(this WebApplication app)
    {
        app.UseSwagger();
        app.UseSwaggerUI(options =>
        {
            options.SwaggerEndpoint("/swagger/v1/swagger.json", "ProtoPNet Service v1");
            options.RoutePrefix = "swagger";
            options.DocumentTitle = "ProtoPNet Service";
        });
        return app;
    }
}
