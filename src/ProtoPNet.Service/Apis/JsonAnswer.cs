using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// A 200 answer in JSON, sent whole or streamed.
/// <list type="bullet">
/// <item><b>Whole</b>, for an answer known to be small (no heatmaps, short lists): serialized first, then sent with a
/// Content-Length in one write to the socket.</item>
/// <item><b>Streamed</b>, as <see cref="Microsoft.AspNetCore.Http.HttpResults.Ok{TValue}"/> does, for one that may be
/// large (heatmaps are drawn as the answer is written). It goes out chunked: Kestrel sends the body, then, when the
/// endpoint has returned, the last chunk's marker in a second write, which the client must wait for too.</item>
/// </list>
/// For the default model at concurrency 32, the second write was one system call in nine per request.
/// </summary>
public sealed class JsonAnswer<T> : IResult, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<T>, IContentTypeHttpResult
{
    private readonly DrawingTurn? _drawingTurn;

    internal JsonAnswer(T value, bool whole, DrawingTurn? drawingTurn = null)
    {
        Value = value;
        Whole = whole;
        _drawingTurn = drawingTurn;
    }

    public T Value { get; }

    /// <summary>Whether the answer is serialized first and sent with a Content-Length.</summary>
    public bool Whole { get; }

    public int StatusCode => StatusCodes.Status200OK;

    public string ContentType => "application/json; charset=utf-8";

    int? IStatusCodeHttpResult.StatusCode => StatusCode;

    object? IValueHttpResult.Value => Value;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var options = httpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        var typeInfo = (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
        var response = httpContext.Response;
        response.StatusCode = StatusCode;
        response.ContentType = ContentType;
        if (!Whole)
        {
            await WriteStreamedAsync(httpContext, typeInfo);
            return;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(Value, typeInfo);
        response.ContentLength = json.Length;
        await response.Body.WriteAsync(json, httpContext.RequestAborted);
    }

    /// <summary>
    /// Serializes the answer as it is sent, at the client's pace (<see cref="ClientPacedBody.SendAsync"/>): a client that
    /// keeps it waiting too long has it cut off. Heatmaps are drawn as the serializer reaches them, in the answer's
    /// drawing turn, which the body gives back while the client reads.
    /// </summary>
    private Task WriteStreamedAsync(HttpContext httpContext, JsonTypeInfo<T> typeInfo) =>
        ClientPacedBody.SendAsync(httpContext, body => JsonSerializer.SerializeAsync(body, Value, typeInfo, httpContext.RequestAborted), _drawingTurn);
}

/// <summary>Makes <see cref="JsonAnswer{T}"/>s.</summary>
public static class JsonAnswer
{
    /// <summary>An answer that is serialized first and sent with a Content-Length (it must be small).</summary>
    public static JsonAnswer<T> Whole<T>(T value) => new(value, whole: true);

    /// <summary>
    /// An answer that is serialized as it is sent (chunked); one whose heatmaps are drawn as it is written passes the
    /// drawing turn it took (registered for dispose with the response, so given back however the answer ends).
    /// </summary>
    public static JsonAnswer<T> Streamed<T>(T value, DrawingTurn? drawingTurn = null) => new(value, whole: false, drawingTurn);
}
