using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Problems;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace ProtoPNet.Service.OpenApi;

/// <summary>Describes the image upload body (multipart field <c>image</c>, or a raw image body) of the classify endpoints.</summary>
public sealed class ImageUploadOperationFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var upload = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<ImageUploadMetadata>().FirstOrDefault();
        if (upload is null) return;

        var binary = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
        IOpenApiSchema field = upload.Multiple
            ? new OpenApiSchema { Type = JsonSchemaType.Array, Items = binary, Description = "One file field named 'image' per image." }
            : binary;
        var content = new Dictionary<string, IOpenApiMediaType>
        {
            ["multipart/form-data"] = new OpenApiMediaType
            {
                Schema = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Properties = new Dictionary<string, IOpenApiSchema> { ["image"] = field },
                    Required = new HashSet<string> { "image" },
                },
            },
        };
        if (!upload.Multiple)
        {
            foreach (var type in ImageDecoder.AcceptedContentTypes) content[type] = new OpenApiMediaType { Schema = binary };
        }
        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Description = upload.Multiple
                ? "multipart/form-data with several file fields named 'image'."
                : "multipart/form-data with one file field 'image', or the image itself as the body with its image/* content type.",
            Content = content,
        };
    }
}

/// <summary>Adds an example to every success response and one per kind of error to every problem response.</summary>
public sealed class ExamplesOperationFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.Responses is null) return;
        var operationId = operation.OperationId ?? "";
        foreach (var (status, response) in operation.Responses)
        {
            if (response.Content is null) continue;
            if (status is "200" or "202" && ApiExamples.Success.TryGetValue(operationId, out var example))
            {
                foreach (var media in response.Content.Values.OfType<OpenApiMediaType>()) media.Example = ApiExamples.ToNode(example);
                continue;
            }
            if (!int.TryParse(status, out var code) || code < 400) continue;
            if (operationId.StartsWith("V2", StringComparison.Ordinal))
            {
                foreach (var media in response.Content.Values.OfType<OpenApiMediaType>()) media.Example = ApiExamples.ToNode(ApiExamples.V2ErrorFor(code));
                if (code == 429 && response is OpenApiResponse limited)
                {
                    limited.Description = "This client exceeded RateLimiting:PermitLimit. The Retry-After header says when to try again.";
                }
                continue;
            }
            var kinds = KindsFor(operationId, code);
            foreach (var media in response.Content.Values.OfType<OpenApiMediaType>())
            {
                media.Examples ??= new Dictionary<string, IOpenApiExample>();
                foreach (var kind in kinds)
                {
                    media.Examples[kind.Type[(kind.Type.LastIndexOf(':') + 1)..]] = new OpenApiExample
                    {
                        Summary = kind.Title,
                        Value = ProblemExample(kind),
                    };
                }
            }
            if (code == 503 && response is OpenApiResponse concreteResponse)
            {
                concreteResponse.Description = operationId switch
                {
                    _ when ClassifyLike(operationId) =>
                        "No model is loaded, the model's queue is full (overloaded), or the folder uploads are spooled to is full. The Retry-After header says when to try again.",
                    "ListTrainingData" => "Training:DataRoot is gone or is a file (a volume not mounted, a folder renamed). The Retry-After header says when to try again.",
                    _ when operationId.Contains("Training", StringComparison.Ordinal) => "The jobs folder (Training:JobsRoot) cannot be written: the detail names it and says why.",
                    "Ready" => "Not ready: no model is loaded yet, or the service is shutting down. The Retry-After header says when to try again.",
                    _ => "No model is loaded. The Retry-After header says when to try again.",
                };
            }
            if (code == 500 && operationId == "Live" && response is OpenApiResponse stuck)
            {
                stuck.Description = "Not live: every turn to decode images has been held for Batching:DecodeStuckSeconds with none given since; the orchestrator restarts the service.";
            }
            if (code == 429 && response is OpenApiResponse rateLimited)
            {
                rateLimited.Description = "This client exceeded RateLimiting:PermitLimit. The Retry-After header says when to try again.";
            }
        }
    }

    private static bool ClassifyLike(string operationId) => operationId.StartsWith("Classify", StringComparison.Ordinal);

    /// <summary>The problems an operation answers with this status, as its examples show them.</summary>
    internal static ProblemKind[] KindsFor(string operationId, int status)
    {
        var classify = operationId.StartsWith("Classify", StringComparison.Ordinal);
        var training = operationId.Contains("Training", StringComparison.Ordinal);
        return status switch
        {
            400 when operationId == "SubmitTrainingJob" => [ProblemCatalog.InvalidTrainingJob, ProblemCatalog.InvalidParameter, ProblemCatalog.RequestBodyUnreadable],
            500 when operationId == "Live" => [ProblemCatalog.DecodingStuck],
            503 when operationId == "Ready" => [ProblemCatalog.NoModelReady, ProblemCatalog.ShuttingDown],
            413 when training => [ProblemCatalog.RequestTooLarge],
            404 when training && operationId is "SubmitTrainingJob" or "ListTrainingJobs" or "ListTrainingOptions" or "ListTrainingData" => [ProblemCatalog.TrainingNotConfigured],
            404 when training => [ProblemCatalog.TrainingNotConfigured, ProblemCatalog.TrainingJobNotFound],
            409 when operationId == "RemoveTrainingJob" => [ProblemCatalog.TrainingJobNotFinished],
            409 when training => [ProblemCatalog.TrainingJobFinished],
            503 when operationId == "ListTrainingData" => [ProblemCatalog.DataRootUnavailable],
            503 when training => [ProblemCatalog.TrainingFolderUnavailable],
            403 when training => [ProblemCatalog.AdminDisabled, ProblemCatalog.ApiKeyRejected],
            // A batch answers a bad image in its place, inside a 200; only the request itself is a 400.
            400 when classify => operationId == "ClassifyBatch"
                ? [ProblemCatalog.ImageMissing, ProblemCatalog.TooManyImages, ProblemCatalog.InvalidParameter, ProblemCatalog.ImageNotDecodable, ProblemCatalog.RequestBodyUnreadable]
                : [ProblemCatalog.ImageNotDecodable, ProblemCatalog.ImageTruncated, ProblemCatalog.ImageMissing, ProblemCatalog.TooManyImages,
                    ProblemCatalog.InvalidParameter, ProblemCatalog.RequestBodyUnreadable],
            404 when operationId == "GetPrototypePicture" => [ProblemCatalog.ModelNotFound, ProblemCatalog.PrototypeNotFound],
            404 when operationId == "GetExampleImage" => [ProblemCatalog.ModelNotFound, ProblemCatalog.ExampleNotFound],
            408 => [ProblemCatalog.RequestTimeout],
            404 => [ProblemCatalog.ModelNotFound],
            413 => [ProblemCatalog.ImageTooLarge],
            415 => [ProblemCatalog.UnsupportedMediaType],
            422 => [ProblemCatalog.ImageTooManyPixels, ProblemCatalog.ImageSideTooLong, ProblemCatalog.ImageZeroSized],
            400 => [ProblemCatalog.InvalidParameter],
            401 => [ProblemCatalog.ApiKeyMissing],
            403 when operationId is "ReloadModel" or "ReloadModels" => [ProblemCatalog.AdminDisabled, ProblemCatalog.ApiKeyRejected],
            403 => [ProblemCatalog.ApiKeyRejected],
            429 => [ProblemCatalog.RateLimited],
            503 when classify => [ProblemCatalog.NoModelReady, ProblemCatalog.Overloaded, ProblemCatalog.UploadSpoolFull],
            503 => [ProblemCatalog.NoModelReady],
            _ => [ProblemCatalog.Unexpected],
        };
    }

    private static JsonNode ProblemExample(ProblemKind kind) => new JsonObject
    {
        ["type"] = kind.Type,
        ["title"] = kind.Title,
        ["status"] = kind.Status,
        ["detail"] = kind.ExampleDetail,
        ["traceId"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
}

/// <summary>
/// The Open Inference Protocol's request bodies as the protocol defines them: the members it requires are required and
/// not nullable, and other members are allowed (the protocol may add some, and the service skips what it does not
/// know), where the generator's default would forbid them.
/// </summary>
public sealed class OpenInferenceRequestSchemaFilter : ISchemaFilter
{
    private static readonly Dictionary<Type, string[]> RequiredMembers = new()
    {
        [typeof(V2InferenceRequest)] = ["inputs"],
        [typeof(V2RequestInput)] = ["name", "shape", "datatype"],   // no data: binary tensor data follow the JSON instead
        [typeof(V2RequestOutput)] = ["name"],
    };

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is not OpenApiSchema concrete || !RequiredMembers.TryGetValue(context.Type, out var required)) return;
        concrete.AdditionalPropertiesAllowed = true;
        concrete.Required = new HashSet<string>(required);
        foreach (var name in required)
        {
            if (concrete.Properties?.TryGetValue(name, out var property) == true && property is OpenApiSchema member && member.Type is { } type)
            {
                member.Type = type & ~JsonSchemaType.Null;
            }
        }
    }
}

/// <summary>
/// The headers the answers carry: a picture's cache validators (ETag, Last-Modified, Cache-Control) and the seconds to
/// wait (Retry-After) on a 429 or 503.
/// </summary>
public sealed class ResponseHeadersOperationFilter : IOperationFilter
{
    private static readonly string[] Pictures = ["GetPrototypePicture", "GetExampleImage"];

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.Responses is null) return;
        foreach (var (status, response) in operation.Responses)
        {
            if (response is not OpenApiResponse concrete) continue;
            if (status is "200" or "304" && Pictures.Contains(operation.OperationId))
            {
                concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
                concrete.Headers["ETag"] = Header(JsonSchemaType.String, "The picture's version; send it as If-None-Match to get 304 while it is unchanged.");
                concrete.Headers["Last-Modified"] = Header(JsonSchemaType.String, "When the bundle's file was written.");
                concrete.Headers["Cache-Control"] = Header(JsonSchemaType.String, "public, max-age=31536000, immutable: a version's files never change.");
            }
            if (status is "202" && operation.OperationId is "SubmitTrainingJob" or "CancelTrainingJob")
            {
                concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
                concrete.Headers["Location"] = Header(JsonSchemaType.String, "The job's URL (/training/jobs/{id}).");
            }
            // When to try again, where the problems of that status say it (not for a jobs folder that cannot be written).
            if (status is "429" or "503" && ExamplesOperationFilter.KindsFor(operation.OperationId ?? "", int.Parse(status, System.Globalization.CultureInfo.InvariantCulture))
                    .Any(kind => ProblemCatalog.RetryAfterFor(kind.Type) is not null))
            {
                concrete.Headers ??= new Dictionary<string, IOpenApiHeader>();
                concrete.Headers["Retry-After"] = Header(JsonSchemaType.Integer, "Seconds to wait before trying again.");
            }
        }
    }

    private static OpenApiHeader Header(JsonSchemaType type, string description) =>
        new() { Description = description, Schema = new OpenApiSchema { Type = type } };
}

/// <summary>
/// The parameters with the values they take and their defaults (the binder sees only strings and integers), and their
/// descriptions on one line each.
/// </summary>
public sealed partial class ParametersOperationFilter(Microsoft.Extensions.Options.IOptions<Classifying.ClassifyOptions> options) : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var limits = options.Value;
        foreach (var parameter in operation.Parameters?.OfType<OpenApiParameter>() ?? [])
        {
            if (parameter.Description is { } description) parameter.Description = OneLine().Replace(description.Trim(), " ");
            if (parameter.Schema is not OpenApiSchema schema) continue;
            switch (parameter.Name)
            {
                case "topClasses":
                    schema.Minimum = "0";
                    schema.Default = JsonValue.Create(Classifying.ClassifyOptions.DefaultTopClasses);
                    break;
                case "explainClass":
                    schema.Minimum = "0";
                    break;
                case "topPrototypes":
                    var most = operation.OperationId == "ClassifyCard" ? Math.Min(limits.MaxTopPrototypes, Inference.Rendering.ExplanationCard.MaxRows) : limits.MaxTopPrototypes;
                    schema.Minimum = "0";
                    schema.Maximum = most.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    schema.Default = JsonValue.Create(Math.Min(Classifying.ClassifyOptions.DefaultTopPrototypes, most));
                    parameter.Description += operation.OperationId == "ClassifyCard"
                        ? $" At most {most}; with verify=true at most {limits.MaxVerifiedPrototypes}."
                        : $" At most {most}; with heatmaps=png at most {limits.MaxHeatmapPrototypes}, with verify=true at most {limits.MaxVerifiedPrototypes} (the default is held to them).";
                    break;
                case "heatmaps":
                    schema.Enum = [JsonValue.Create("none"), JsonValue.Create("png")];
                    schema.Default = JsonValue.Create("none");
                    if (operation.OperationId == "ClassifyCard") parameter.Description = "Checked as on /classify (none or png; another value is a 400), but a card always draws its heatmaps.";
                    break;
                case "verify":
                    schema.Enum = [JsonValue.Create("false"), JsonValue.Create("true")];
                    schema.Default = JsonValue.Create("false");
                    break;
                case "limit" when parameter.In == ParameterLocation.Query:
                    // Bound as text so that a bad one is answered in the service's own words (400 invalid-parameter).
                    schema.Type = JsonSchemaType.Integer;
                    schema.Minimum = "1";
                    break;
                case "kind" when parameter.In == ParameterLocation.Path:
                    schema.Enum = [.. ModelsApi.PictureKinds.Select(kind => (JsonNode)JsonValue.Create(kind))];
                    break;
            }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"\s*\n\s*")]
    private static partial System.Text.RegularExpressions.Regex OneLine();
}

/// <summary>
/// The Open Inference Protocol's binary tensor data on the infer routes: a body of JSON followed by the inputs' bytes,
/// the JSON's length in <c>Inference-Header-Content-Length</c>, and an answer of the same form when binary outputs are asked for.
/// </summary>
public sealed class OpenInferenceBinaryOperationFilter : IOperationFilter
{
    private const string HeaderName = V2RequestReader.JsonLengthHeader;

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.OperationId is not ("V2Infer" or "V2InferVersion")) return;
        var binary = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
        operation.Parameters ??= [];
        operation.Parameters.Add(new OpenApiParameter
        {
            Name = HeaderName,
            In = ParameterLocation.Header,
            Description = "With binary input data: the length in bytes of the JSON that begins the body; the inputs' bytes follow it.",
            Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "0" },
        });
        if (operation.RequestBody is OpenApiRequestBody body && body.Content is { } content)
        {
            content["application/octet-stream"] = new OpenApiMediaType { Schema = binary };
            body.Description = $"The request as JSON; or, with {HeaderName}, that JSON followed by the inputs' binary data (any Content-Type: the protocol names none).";
        }
        if (operation.Responses?.TryGetValue("200", out var ok) == true && ok is OpenApiResponse answer)
        {
            answer.Content ??= new Dictionary<string, IOpenApiMediaType>();
            answer.Content["application/octet-stream"] = new OpenApiMediaType { Schema = binary };
            answer.Headers ??= new Dictionary<string, IOpenApiHeader>();
            answer.Headers[HeaderName] = new OpenApiHeader
            {
                Description = "Only on an answer with binary outputs (application/octet-stream): the length of the JSON that begins it; the outputs' bytes follow.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.Integer },
            };
        }
    }
}
