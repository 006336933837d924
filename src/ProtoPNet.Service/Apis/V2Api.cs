using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Explanation;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>The model a v2 route names: <c>{name}</c> and, on the versioned routes, <c>{version}</c>.</summary>
public sealed record V2ModelRoute
{
    /// <summary>Model name.</summary>
    public string Name { get; init; } = "";

    /// <summary>Version id: in the path on the versioned routes; on the others a query parameter, the version served by default when absent.</summary>
    public string? Version { get; init; }

    /// <summary>The request, for a query's <c>version</c> beside the path's on a versioned route.</summary>
    public HttpRequest? Request { get; init; }

    /// <summary>
    /// The model asked for; a name or version that could not be a folder name is a bad request, and so is a query's
    /// version that is not the one the path names (it would be passed over unseen).
    /// </summary>
    public ModelSelector Selector()
    {
        if (Request is { } request && request.RouteValues.ContainsKey("version") && request.Query.TryGetValue("version", out var asked) && asked != Version)
        {
            throw new ProblemException(ProblemCatalog.InvalidParameter,
                $"The path names version '{RequestText.Echo(Version)}' and the query version '{RequestText.Echo(asked.ToString())}': name the version once, in the path.");
        }
        if (!ModelSelector.IsValidName(Name)) throw new ProblemException(ProblemCatalog.InvalidParameter, $"The model name '{Name}' is not valid: {ModelSelector.NameRule}.");
        if (Version is not null && !ModelSelector.IsValidName(Version))
        {
            throw new ProblemException(ProblemCatalog.InvalidParameter, $"The version '{Version}' is not valid: {ModelSelector.NameRule}.");
        }
        return new ModelSelector(Name, Version);
    }

    /// <summary>Every loaded version of the named model; throws the problem when there is none.</summary>
    public ModelFamily Family(ModelRegistry registry) => registry.Family(Selector().Name!);
}

/// <summary>
/// The Open Inference Protocol (KServe v2) REST API for tensor-level callers: health, server and model metadata, model
/// readiness and <c>infer</c> (the graph's input tensor in, its outputs out, through the same batcher as /classify).
/// Errors are <c>{"error": "..."}</c> as the protocol specifies.
/// </summary>
public static class V2Api
{
    public const string Datatype = "FP32";

    /// <summary>The largest v2 request body for any model (each model's is smaller when its largest request needs less: <see cref="V2RequestReader.MaxBodyBytes"/>).</summary>
    public const long MaxRequestBytes = 256L * 1024 * 1024;

    private static readonly string[] GraphOutputNames = [BundleSession.LogitsName, BundleSession.SimilaritiesName, BundleSession.SimilarityMapsName];

    /// <summary>The unfamiliarity score of each image [N] (FP32), computed from its similarities as /classify does.</summary>
    public const string UnfamiliarityName = "unfamiliarity";

    /// <summary>Whether each image is unfamiliar [N] (BOOL): only for a bundle with a calibrated threshold.</summary>
    public const string UnfamiliarName = "unfamiliar";

    /// <summary>The binary tensor data extension's name in the server metadata (Triton's name for it).</summary>
    public const string BinaryTensorDataExtension = "binary_tensor_data";

    /// <summary>The outputs a model answers: the graph's, the unfamiliarity score, and the flag when its bundle is calibrated.</summary>
    private static string[] OutputNames(ModelBundle bundle) => bundle.Manifest.Unfamiliarity is null
        ? [.. GraphOutputNames, UnfamiliarityName]
        : [.. GraphOutputNames, UnfamiliarityName, UnfamiliarName];

    public static IEndpointRouteBuilder MapV2Api(this IEndpointRouteBuilder app)
    {
        // The protocol's own error body, {"error": "..."}, for every problem its endpoints meet.
        var v2 = app.MapGroup("/v2").WithTags("Open Inference Protocol (v2)").AnswerProblems(OpenInferenceErrors.Answer);

        v2.MapGet("", () => TypedResults.Ok(new V2ServerMetadata("protopnet-service", ServerVersion, [BinaryTensorDataExtension])))
            .WithName("V2ServerMetadata")
            .WithSummary("Server metadata")
            .WithDescription("The server's name, version and supported protocol extensions (binary_tensor_data: inputs and outputs as binary data after the JSON).");

        // The same answers as /health/live and /health/ready, in the protocol's terms (false is a 4xx), so that probes
        // of either restart a service whose decoding is stuck and stop sending to one that is shutting down.
        v2.MapGet("/health/live", Results<Ok<V2ServerLive>, JsonHttpResult<V2Error>> (PreprocessingGate preprocessing, IOptions<BatchingOptions> batching) =>
                HealthApi.DecodingStuck(preprocessing, batching.Value) is { } stuck
                    ? Error(StatusCodes.Status400BadRequest, stuck)
                    : TypedResults.Ok(new V2ServerLive(true)))
            .RunsInline()
            .WithName("V2ServerLive")
            .WithSummary("Server liveness")
            .WithDescription("200 with {\"live\": true} whenever the process serves HTTP; 400 (a 4xx, as the protocol says) when decoding is stuck, as /health/live's 500 decoding-stuck.")
            .Produces<V2Error>(StatusCodes.Status400BadRequest);

        v2.MapGet("/health/ready", Results<Ok<V2ServerReady>, JsonHttpResult<V2Error>> (ModelRegistry registry, IHostApplicationLifetime lifetime) =>
                HealthApi.NotReady(registry.Catalog, lifetime) is { } notReady
                    ? Error(StatusCodes.Status400BadRequest, notReady.Detail)
                    : TypedResults.Ok(new V2ServerReady(true)))
            .RunsInline()
            .WithName("V2ServerReady")
            .WithSummary("Server readiness")
            .WithDescription("200 with {\"ready\": true} once at least one model is loaded, verified and warmed up; 400 (a 4xx, as the protocol says) before, and once a shutdown has begun (as /health/ready's 503 shutting-down).")
            .Produces<V2Error>(StatusCodes.Status400BadRequest);

        MapModelRoutes(v2, "/models/{name}", versioned: false);
        MapModelRoutes(v2, "/models/{name}/versions/{version}", versioned: true);
        return app;
    }

    private static void MapModelRoutes(RouteGroupBuilder v2, string prefix, bool versioned)
    {
        var suffix = versioned ? "Version" : "";
        v2.MapGet(prefix, GetModelMetadata)
            .WithName("V2ModelMetadata" + suffix)
            .WithSummary(versioned ? "Model version metadata" : "Model metadata")
            .WithDescription("The model's loaded versions, platform (onnxruntime_onnx) and the graph's input and outputs with datatype and shape; -1 is the batch dimension. 503 while the service loads its models at start.")
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);

        v2.MapGet(prefix + "/ready", GetModelReady)
            .WithName("V2ModelReady" + suffix)
            .WithSummary(versioned ? "Model version readiness" : "Model readiness")
            .WithDescription("200 with {\"name\": ..., \"ready\": true} when the model (version) is loaded and warmed up; 404 when it is not loaded; 400 (a 4xx, as the protocol says) while the service loads its models at start.")
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status404NotFound);

        v2.MapPost(prefix + "/infer", InferAsync)
            .CountedAsInference()
            .WithName("V2Infer" + suffix)
            .WithSummary(versioned ? "Run a model version on tensors" : "Run a model on tensors")
            .WithDescription("""
                The input tensor `image` (datatype FP32, shape [N, C, H, W] as the model metadata says, pixel values in [0, 1],
                RGB or grey; `data` flat in row-major order or nested) goes through the model's batcher like /classify; the answer
                holds the graph's outputs `logits` [N, K], `similarities` [N, M] and `similarity_maps` [N, M, h, w], and the
                service's `unfamiliarity` [N] (and `unfamiliar` [N], BOOL, for a bundle with a calibrated threshold), or only those
                named in `outputs`; as binary data after the JSON (Inference-Header-Content-Length, application/octet-stream) those whose
                `parameters.binary_data` is true, or all with the request's `parameters.binary_data_output`. Errors are `{"error": "..."}`: 400 for a malformed request, 404 for an unknown model or version,
                413 for a body larger than the model's largest request needs (64 bytes per value of `Classify:MaxBatchImages` images,
                plus 64 KiB, at most 256 MiB), 408 for a body that did not arrive within `Classify:UploadReadTimeout`, 503 (with Retry-After)
                when the model is overloaded or the service is still loading its models at start.
                """)
            // Any Content-Type, as the protocol asks for none (curl -d sends a form's): the body is read as JSON, or as
            // JSON and binary data with Inference-Header-Content-Length.
            .Accepts<V2InferenceRequest>("application/json", "application/octet-stream", "*/*")
            .Produces<V2InferenceResponse>()
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status408RequestTimeout)
            .Produces<V2Error>(StatusCodes.Status413PayloadTooLarge)
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable)
            // The API key check and the rate limiter answer before the protocol's endpoint does, in its error body too.
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status403Forbidden)
            .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
            .RequireClassifyKey();
    }

    private static string ServerVersion => typeof(V2Api).Assembly.GetName().Version?.ToString(3) ?? "1.0.0";

    internal static Ok<V2ModelMetadata> GetModelMetadata([AsParameters] V2ModelRoute route, ModelRegistry registry)
    {
        var family = route.Family(registry);
        var bundle = family.Find(route.Version);
        var input = bundle.Manifest.Input;
        var session = bundle.Session;
        return TypedResults.Ok(new V2ModelMetadata(bundle.Name, family.Versions.Select(v => v.Version).ToArray(), "onnxruntime_onnx",
            [new V2TensorMetadata(BundleSession.InputName, Datatype, [-1, input.Channels, input.Height, input.Width])],
            [
                new V2TensorMetadata(BundleSession.LogitsName, Datatype, [-1, session.ClassCount]),
                new V2TensorMetadata(BundleSession.SimilaritiesName, Datatype, [-1, session.PrototypeCount]),
                new V2TensorMetadata(BundleSession.SimilarityMapsName, Datatype, [-1, session.PrototypeCount, session.MapHeight, session.MapWidth]),
                new V2TensorMetadata(UnfamiliarityName, Datatype, [-1]),
                .. bundle.Manifest.Unfamiliarity is null ? Array.Empty<V2TensorMetadata>() : [new V2TensorMetadata(UnfamiliarName, "BOOL", [-1])],
            ]));
    }

    /// <summary>
    /// The protocol answers a model that is not ready with a 4xx: while the service loads its models at start, 400 saying
    /// so, as /v2/health/ready answers then (a model that is not loaded once they have loaded is 404).
    /// </summary>
    internal static Results<Ok<V2ModelReady>, JsonHttpResult<V2Error>> GetModelReady([AsParameters] V2ModelRoute route, ModelRegistry registry)
    {
        try
        {
            var bundle = route.Family(registry).Find(route.Version);
            return TypedResults.Ok(new V2ModelReady(bundle.Name, true));
        }
        catch (ProblemException loading) when (loading.Kind == ProblemCatalog.NoModelReady)
        {
            return Error(StatusCodes.Status400BadRequest, loading.Message);
        }
    }

    /// <summary>
    /// Answers with at most this many values (about 50 KB of JSON) are sent whole with a Content-Length, in one write;
    /// larger ones (similarity maps of a batch) stream out rather than wait in memory as JSON too.
    /// </summary>
    internal const int WholeAnswerMaxValues = 4096;

    internal static async Task<Results<JsonAnswer<V2InferenceResponse>, V2BinaryAnswer>> InferAsync(
        [AsParameters] V2ModelRoute route, HttpRequest request, ClassificationService classification, ModelRegistry registry,
        BufferBudget buffers, IOptions<ClassifyOptions> classifyOptions, CancellationToken cancellationToken)
    {
        // The body is read before the version is leased (a slow client holds no version), bounded by the input size of
        // the version it names now; it is checked against the leased one.
        var session = registry.Find(route.Selector()).Session;
        using var body = await BodyDeadline.ReadAsync(request, deadline => V2RequestReader.ReadBodyAsync(request, session, classifyOptions.Value.MaxBatchImages,
            buffers, deadline), classifyOptions.Value.UploadReadTimeout, cancellationToken);
        var header = V2RequestReader.ReadHeader(body.Json.Span, JsonLength(request));
        string[] requested = [];
        using var run = await classification.RunTensorAsync(request.HttpContext, route.Selector(), (bundle, maxRows) =>
        {
            // Checked against the leased version: whether it answers `unfamiliar` depends on its bundle.
            var known = OutputNames(bundle);
            requested = header.Outputs?.ToArray() ?? known;
            var unknown = requested.Where(o => !known.Contains(o)).ToArray();
            if (unknown.Length > 0 || requested.Length == 0)
            {
                var hint = unknown.Contains(UnfamiliarName) ? $" ('{UnfamiliarName}' needs a bundle with a calibrated unfamiliarity threshold)" : "";
                throw BadRequest($"Unknown output(s) [{RequestText.EchoList(unknown)}]; the model's outputs are [{string.Join(", ", known)}]{hint}.");
            }
            var (input, rows) = V2RequestReader.WriteInput(body.Json.Span, header, bundle.Session, maxRows);
            body.Dispose();   // the tensor is written: the JSON's bytes are no longer needed
            return new TensorInput(input, rows, WithMaps: requested.Contains(BundleSession.SimilarityMapsName));
        }, cancellationToken);
        // Measured once for both outputs that come from it (the score and the flag).
        var measured = requested.Any(o => o is UnfamiliarityName or UnfamiliarName)
            ? Enumerable.Range(run.FirstRow, run.Rows).Select(item => Unfamiliarity.Of(run.Model, run.Outputs.SimilaritiesOf(item))).ToArray()
            : [];
        var outputs = requested.Distinct().Select(o => Output(o, run, measured)).ToArray();
        var binary = outputs.Select(o => o.Name).Where(header.IsBinaryOutput).ToHashSet();
        // Before the answer starts: JSON has no infinity (binary data carry it), and a 200 cut short mid-stream is worse than an error.
        if (outputs.FirstOrDefault(o => !binary.Contains(o.Name) && o.Data is float[] values && !AllFinite(values)) is { } overflowed)
        {
            throw NotFinite(overflowed.Name);
        }
        // The flag of a score that is not a number would read "familiar": refused as the score itself is.
        if (requested.Contains(UnfamiliarName) && measured.Any(u => !double.IsFinite(u.Score)))
        {
            throw BadRequest($"Output '{UnfamiliarName}' cannot be told for this input: the unfamiliarity score it comes from is not finite, "
                + "as the input's values overflow the network. Pixel values belong in [0, 1].");
        }
        var response = new V2InferenceResponse(run.Model.Name, run.Model.Version, outputs) { Id = header.Id };
        if (binary.Count > 0) return V2BinaryAnswer.Of(response, binary);
        return outputs.Sum(o => o.Data!.Length) <= WholeAnswerMaxValues ? JsonAnswer.Whole(response) : JsonAnswer.Streamed(response);
    }

    private static ProblemException BadRequest(string detail) => new(ProblemCatalog.InvalidParameter, detail);

    private static ProblemException NotFinite(string output) =>
        BadRequest($"Output '{output}' is not finite for this input: its values overflow the network. Pixel values belong in [0, 1].");

    /// <summary>The binary tensor data extension's length of the body's JSON part, if the request has that header.</summary>
    private static long? JsonLength(HttpRequest request)
    {
        var header = request.Headers[V2RequestReader.JsonLengthHeader];
        if (header.Count == 0) return null;
        return long.TryParse(header.ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var length)
            ? length
            : throw BadRequest($"{V2RequestReader.JsonLengthHeader} must be the byte length of the body's JSON part; it is '{header}'.");
    }

    private static bool AllFinite(float[] values)
    {
        foreach (var value in values)
        {
            if (!float.IsFinite(value)) return false;
        }
        return true;
    }

    /// <param name="measured">Each row's unfamiliarity, when <paramref name="name"/> is an output made from it.</param>
    private static V2ResponseOutput Output(string name, TensorRun run, Unfamiliarity[] measured)
    {
        var outputs = run.Outputs;
        var rows = run.Rows;
        if (name is UnfamiliarityName or UnfamiliarName)
        {
            return name == UnfamiliarityName
                ? new V2ResponseOutput(name, [rows], Datatype, measured.Select(u => (float)u.Score).ToArray())
                : new V2ResponseOutput(name, [rows], "BOOL", measured.Select(u => u.Unfamiliar == true).ToArray());
        }
        var mapSize = outputs.MapHeight * outputs.MapWidth;
        var (perRow, shape) = name switch
        {
            BundleSession.LogitsName => (outputs.ClassCount, new long[] { rows, outputs.ClassCount }),
            BundleSession.SimilaritiesName => (outputs.PrototypeCount, new long[] { rows, outputs.PrototypeCount }),
            _ => (outputs.PrototypeCount * mapSize, new long[] { rows, outputs.PrototypeCount, outputs.MapHeight, outputs.MapWidth }),
        };
        var data = new float[rows * perRow];
        for (var row = 0; row < rows; row++)
        {
            var item = run.FirstRow + row;
            var target = data.AsSpan(row * perRow, perRow);
            switch (name)
            {
                case BundleSession.LogitsName:
                    outputs.LogitsOf(item).CopyTo(target);
                    break;
                case BundleSession.SimilaritiesName:
                    outputs.SimilaritiesOf(item).CopyTo(target);
                    break;
                default:
                    for (var j = 0; j < outputs.PrototypeCount; j++) outputs.MapOf(item, j).CopyTo(target.Slice(j * mapSize, mapSize));
                    break;
            }
        }
        return new V2ResponseOutput(name, shape, Datatype, data);
    }

    private static JsonHttpResult<V2Error> Error(int status, string message) => OpenInferenceErrors.Error(status, message);

    /// <summary>
    /// Every answer under /v2 is sent as <see cref="OpenInferenceErrors.ContentType"/>: the framework's JSON answers say
    /// <c>application/json; charset=utf-8</c>, which a client comparing the type whole does not take for JSON.
    /// </summary>
    public static WebApplication UseOpenInferenceContentType(this WebApplication app)
    {
        app.Use((context, next) =>
        {
            if (OpenInferenceErrors.Serves(context.Request.Path))
            {
                context.Response.OnStarting(static state =>
                {
                    var response = (HttpResponse)state;
                    if (response.ContentType?.StartsWith(OpenInferenceErrors.ContentType, StringComparison.OrdinalIgnoreCase) == true)
                    {
                        response.ContentType = OpenInferenceErrors.ContentType;
                    }
                    return Task.CompletedTask;
                }, context.Response);
            }
            return next(context);
        });
        return app;
    }
}
