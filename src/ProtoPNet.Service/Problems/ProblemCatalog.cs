using Microsoft.AspNetCore.Http.HttpResults;
using ProtoPNet.Inference.Preprocessing;

namespace ProtoPNet.Service.Problems;

/// <summary>One kind of error: its RFC 7807 type, title and HTTP status (API.md's error table).</summary>
public sealed record ProblemKind(string Type, string Title, int Status, string ExampleDetail);

/// <summary>Every error this service answers with, in one place: the endpoints, the OpenAPI examples and the tests use these.</summary>
public static class ProblemCatalog
{
    internal const string Prefix = "urn:protopnet:problem:";

    public static readonly ProblemKind ImageNotDecodable = new(Prefix + "image-not-decodable", "The image cannot be decoded", 400,
        "The PNG image cannot be decoded: PNG Image does not contain a data chunk.");
    public static readonly ProblemKind ImageTruncated = new(Prefix + "image-truncated", "The image is truncated", 400,
        "The JPEG image is truncated: the JPEG scan data ends after 5120 bytes, before the scan and the image are complete.");
    public static readonly ProblemKind ImageMissing = new(Prefix + "image-missing", "No image in the request", 400,
        "The multipart body has no file field named 'image'.");
    public static readonly ProblemKind InvalidParameter = new(Prefix + "invalid-parameter", "A parameter is not valid", 400,
        "explainClass 12 is not a class of fashion-mnist@20261129T010203Z (0 to 9).");
    public static readonly ProblemKind TooManyImages = new(Prefix + "too-many-images", "Too many images in one batch", 400,
        "The batch holds 40 images; the limit is 32.");
    public static readonly ProblemKind RequestBodyUnreadable = new(Prefix + "request-body-unreadable", "The request body cannot be read", 400,
        "The request body cannot be read: Bad chunk size data.");
    public static readonly ProblemKind ModelNotFound = new(Prefix + "model-not-found", "Unknown model or version", 404,
        "No model named 'cub200' is loaded. Loaded: fashion-mnist.");
    public static readonly ProblemKind PrototypeNotFound = new(Prefix + "prototype-not-found", "Unknown prototype", 404,
        "fashion-mnist@20261129T010203Z has prototypes 0 to 99; 150 is not one of them.");
    public static readonly ProblemKind ExampleNotFound = new(Prefix + "example-not-found", "Unknown example image", 404,
        "fashion-mnist@20261129T010203Z has example images 0 to 9; 12 is not one of them.");
    public static readonly ProblemKind RequestTimeout = new(Prefix + "request-timeout", "The request body arrived too slowly", 408,
        "The request body arrived too slowly: the server stops reading a body that sends less than 240 bytes a second after its first 5 seconds.");
    public static readonly ProblemKind ImageTooLarge = new(Prefix + "image-too-large", "The image is larger than the byte limit", 413,
        "The image has 25165824 bytes; the limit is 20971520 bytes.");
    public static readonly ProblemKind RequestTooLarge = new(Prefix + "request-too-large", "The request body is larger than the limit", 413,
        "The request body is larger than this endpoint accepts: Request body too large. The max request body size is 1048576 bytes.");
    public static readonly ProblemKind UnsupportedMediaType = new(Prefix + "unsupported-media-type", "The content type is not accepted", 415,
        "Content-Type 'text/plain' is not accepted: send multipart/form-data with a file field 'image', or a raw body of type image/png, image/jpeg, image/gif, image/bmp, image/webp or image/tiff.");
    public static readonly ProblemKind ImageTooManyPixels = new(Prefix + "image-too-many-pixels", "The image has more pixels than the limit", 422,
        "The PNG image is 100000x100000 = 10000000000 pixels; the limit is 40000000 pixels.");
    public static readonly ProblemKind ImageZeroSized = new(Prefix + "image-zero-sized", "The image has no pixels", 422,
        "The BMP image is 0x10 pixels: it has no pixels.");
    public static readonly ProblemKind ImageSideTooLong = new(Prefix + "image-side-too-long", "A side of the image is longer than the limit", 422,
        "The PNG image is 1x40000000 pixels; no side may be longer than 65535 pixels. Crop it nearer to the part to classify.");
    public static readonly ProblemKind NoModelReady = new(Prefix + "no-model-ready", "No model is ready", 503,
        "No model is loaded: the model root holds no valid bundle (2 refused; GET /models lists them and why).");
    /// <summary>The detail of <see cref="NoModelReady"/> while the service loads its models at start.</summary>
    public const string ModelsLoadingDetail =
        "The service is loading its models (at start, before the first is ready; a large bundle's execution strategy is measured as it loads). Retry shortly.";

    public static readonly ProblemKind ShuttingDown = new(Prefix + "shutting-down", "The service is shutting down", 503,
        "The service is shutting down: it finishes the requests in progress and takes no more. Send requests to another instance.");
    public static readonly ProblemKind DecodingStuck = new(Prefix + "decoding-stuck", "Decoding has stopped", 500,
        "All 2 turns to decode images have been held for 125 s with none given since (Batching:DecodeStuckSeconds 120): decodes that never return hold them, and every request that sends an image is refused. Restart the service.");
    public static readonly ProblemKind Overloaded = new(Prefix + "overloaded", "The model is overloaded", 503,
        "fashion-mnist@20261129T010203Z is overloaded: 256 images are queued (limit 256). Retry shortly.");
    public static readonly ProblemKind UploadSpoolFull = new(Prefix + "upload-spool-full", "The server has no room for the upload now", 503,
        "The folder uploads are spooled to (/tmp) is full: this upload cannot be held now. Retry shortly.");
    public static readonly ProblemKind RateLimited = new(Prefix + "rate-limited", "Too many requests", 429,
        "This client sent more than 100 requests in 1 second; retry after the time in Retry-After.");
    public static readonly ProblemKind ApiKeyMissing = new(Prefix + "api-key-missing", "An API key is required", 401,
        "This endpoint needs the header X-Api-Key.");
    public static readonly ProblemKind ApiKeyRejected = new(Prefix + "api-key-rejected", "The API key is not accepted", 403,
        "The X-Api-Key header does not hold the key this endpoint needs.");
    public static readonly ProblemKind AdminDisabled = new(Prefix + "admin-disabled", "Administrative endpoints are disabled", 403,
        "Security:AdminApiKey is not configured, so administrative endpoints are disabled.");
    public static readonly ProblemKind InvalidTrainingJob = new(Prefix + "invalid-training-job", "The training job is not valid", 400,
        "options.epochs: 0 is below the minimum 1.");
    public static readonly ProblemKind TrainingNotConfigured = new(Prefix + "training-not-configured", "Training is not configured", 404,
        "Training:JobsRoot (environment Training__JobsRoot) is not configured, so this service takes no training jobs.");
    public static readonly ProblemKind TrainingJobNotFound = new(Prefix + "training-job-not-found", "Unknown training job", 404,
        "There is no training job '20261130T080000123Z-1a2b3c4d'.");
    public static readonly ProblemKind TrainingJobFinished = new(Prefix + "training-job-finished", "The training job has already finished", 409,
        "Training job 20261130T080000123Z-1a2b3c4d has already succeeded; there is nothing to cancel.");
    public static readonly ProblemKind TrainingJobNotFinished = new(Prefix + "training-job-not-finished", "The training job has not finished", 409,
        "Training job 20261130T080000123Z-1a2b3c4d is running: cancel it first (DELETE /training/jobs/20261130T080000123Z-1a2b3c4d), then remove it once it is cancelled.");
    public static readonly ProblemKind TrainingFolderUnavailable = new(Prefix + "training-folder-unavailable", "The jobs folder cannot be written", 503,
        "The jobs folder /jobs cannot be written (Access to the path '/jobs/.staging-20261130T080000123Z-1a2b3c4d' is denied.).");
    public static readonly ProblemKind DataRootUnavailable = new(Prefix + "data-root-unavailable", "The data root cannot be read", 503,
        "Training:DataRoot (/data) is not a folder: it does not exist, or is a file; its data sets cannot be listed.");
    public static readonly ProblemKind Unexpected = new(Prefix + "internal-error", "Unexpected server error", 500,
        "An unexpected error happened; the trace id identifies it in the logs.");

    /// <summary>Seconds a caller should wait before retrying a 503.</summary>
    public const int RetryAfterSeconds = 5;

    /// <summary>Seconds to wait after an overloaded queue: it drains within a few batches.</summary>
    public const int OverloadedRetryAfterSeconds = 1;

    /// <summary>The Retry-After seconds for a 503 or 429 problem of this type; null for one that retrying does not mend.</summary>
    public static int? RetryAfterFor(string? type) => type == Overloaded.Type ? OverloadedRetryAfterSeconds
        : type == TrainingFolderUnavailable.Type ? null   // permissions or a full volume: waiting does not mend it
        : RetryAfterSeconds;

    public static ProblemKind ForRejection(ImageRejection rejection) => rejection switch
    {
        ImageRejection.NotDecodable => ImageNotDecodable,
        ImageRejection.Truncated => ImageTruncated,
        ImageRejection.TooManyBytes => ImageTooLarge,
        ImageRejection.UnsupportedType => UnsupportedMediaType,
        ImageRejection.TooManyPixels => ImageTooManyPixels,
        ImageRejection.ZeroSized => ImageZeroSized,
        ImageRejection.SideTooLong => ImageSideTooLong,
        _ => ImageNotDecodable,
    };

    /// <summary>A request refused by a CPU queue (decoding, drawing) that the stopping host has closed.</summary>
    public static ProblemException OverloadedByShutdown() => new(Overloaded, "The service is shutting down. Retry shortly.");

    /// <summary>
    /// Kestrel's refusal of a request body while an endpoint read it: it arrived too slowly (408, and Kestrel closes the
    /// connection), went over the endpoint's body limit (413), or broke HTTP/1.1's framing (400: a malformed chunk).
    /// </summary>
    public static ProblemException ForUnreadableBody(BadHttpRequestException exception) => exception.StatusCode switch
    {
        StatusCodes.Status408RequestTimeout => new ProblemException(RequestTimeout, RequestTimeout.ExampleDetail),
        StatusCodes.Status413PayloadTooLarge => new ProblemException(RequestTooLarge, $"The request body is larger than this endpoint accepts: {exception.Message}"),
        _ => new ProblemException(RequestBodyUnreadable, $"The request body cannot be read: {exception.Message}"),
    };

    /// <summary>
    /// Whether Kestrel met the end of the body before its declared length: the client closed its side mid-upload. Kestrel
    /// closes the connection before it throws this, so no answer can reach the client, who has left (499); but it cancels
    /// the request's abort token from the thread pool, so that token may not yet say so when the read fails, and the
    /// request was then logged 400 or 499 by timing. Kestrel's reason is internal: its message names it.
    /// </summary>
    public static bool IsBodyCutOff(BadHttpRequestException exception) => exception.StatusCode == StatusCodes.Status400BadRequest
        && exception.Message.StartsWith("Unexpected end of request content", StringComparison.Ordinal);

    /// <summary>A Content-Type that cannot be read as a media type (an unterminated quote): a 400, with what to <paramref name="send"/> instead.</summary>
    public static ProblemException UnreadableContentType(string contentType, string send) =>
        new(RequestBodyUnreadable, $"Content-Type '{RequestText.Printable(contentType)}' cannot be read as a media type (an unterminated quote, a stray character?): send {send}.");

    /// <summary>
    /// Kestrel reports one framing error differently: a chunk size beyond 32 bits is an IOException around an
    /// OverflowException ("Bad chunk size data"), not a <see cref="BadHttpRequestException"/>.
    /// </summary>
    public static bool IsBrokenFraming(IOException exception) => exception is not BadHttpRequestException && exception.InnerException is OverflowException;

    public static ProblemException ForBrokenFraming(IOException exception) =>
        new(RequestBodyUnreadable, $"The request body cannot be read: {exception.Message.TrimEnd('.')} (a chunk size too large for its framing).");

    public static ProblemHttpResult Problem(ProblemKind kind, string detail, IEnumerable<KeyValuePair<string, object?>>? extensions = null) =>
        TypedResults.Problem(detail: detail, statusCode: kind.Status, title: kind.Title, type: kind.Type, extensions: extensions);

    /// <summary>A problem as a plain object, for the per-item errors of a batch.</summary>
    public static Microsoft.AspNetCore.Mvc.ProblemDetails Details(ProblemKind kind, string detail) =>
        new() { Type = kind.Type, Title = kind.Title, Status = kind.Status, Detail = detail };

    /// <summary>The problem of one image in a batch's answer: as <see cref="Details(ProblemKind, string)"/>, with the request's trace id, as every problem has.</summary>
    public static Microsoft.AspNetCore.Mvc.ProblemDetails Details(ProblemKind kind, string detail, HttpContext http)
    {
        var problem = Details(kind, detail);
        problem.Extensions["traceId"] = TraceId(http);
        return problem;
    }

    /// <summary>The request's trace id, as every problem carries it: the W3C traceparent of the request, as its log line names it.</summary>
    public static string TraceId(HttpContext http) => System.Diagnostics.Activity.Current?.Id ?? http.TraceIdentifier;
}

/// <summary>A request that cannot be served, carrying the problem to answer with (and any extension members, e.g. <c>field</c>).</summary>
public sealed class ProblemException(ProblemKind kind, string detail, IReadOnlyDictionary<string, object?>? extensions = null) : Exception(detail)
{
    public ProblemKind Kind { get; } = kind;

    public IReadOnlyDictionary<string, object?>? Extensions { get; } = extensions;
}
