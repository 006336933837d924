using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// An inference answer with some outputs as binary data (the binary tensor data extension, asked for with an output's
/// <c>parameters.binary_data</c> or the request's <c>parameters.binary_data_output</c>): the JSON part, in which each
/// such output has <c>"parameters": {"binary_data_size": bytes}</c> instead of <c>data</c>, then their values as
/// little-endian bytes in the order the JSON lists them (FP32: 4 bytes each, BOOL: one byte of 0 or 1).
/// <c>Inference-Header-Content-Length</c> gives the JSON part's length; the body has a Content-Length and is sent at the
/// client's pace (<see cref="ClientPacedBody"/>).
/// </summary>
public sealed class V2BinaryAnswer : IResult, IStatusCodeHttpResult, IContentTypeHttpResult
{
    private const int ChunkBytes = 64 * 1024;
    private readonly V2InferenceResponse _response;
    private readonly Array[] _binary;

    private V2BinaryAnswer(V2InferenceResponse response, Array[] binary)
    {
        _response = response;
        _binary = binary;
    }

    /// <summary>The answer with the outputs <paramref name="binaryOutputs"/> names taken out of the JSON, as binary data.</summary>
    internal static V2BinaryAnswer Of(V2InferenceResponse response, IReadOnlySet<string> binaryOutputs)
    {
        var binary = new List<Array>();
        var outputs = response.Outputs.Select(output =>
        {
            if (!binaryOutputs.Contains(output.Name) || output.Data is not { } data) return output;
            binary.Add(data);
            return output with { Data = null, Parameters = new Dictionary<string, long> { ["binary_data_size"] = ByteCount(data) } };
        }).ToArray();
        return new V2BinaryAnswer(response with { Outputs = outputs }, [.. binary]);
    }

    public int StatusCode => StatusCodes.Status200OK;

    public string ContentType => "application/octet-stream";

    int? IStatusCodeHttpResult.StatusCode => StatusCode;

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var options = httpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        var json = JsonSerializer.SerializeToUtf8Bytes(_response, (JsonTypeInfo<V2InferenceResponse>)options.GetTypeInfo(typeof(V2InferenceResponse)));
        var response = httpContext.Response;
        response.StatusCode = StatusCode;
        response.ContentType = ContentType;
        response.Headers[V2RequestReader.JsonLengthHeader] = json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.ContentLength = json.Length + _binary.Sum(ByteCount);
        var aborted = httpContext.RequestAborted;
        await ClientPacedBody.SendAsync(httpContext, async body =>
        {
            await body.WriteAsync(json, aborted);
            var chunk = ArrayPool<byte>.Shared.Rent(ChunkBytes);
            try
            {
                foreach (var data in _binary)
                {
                    for (var start = 0; start < data.Length;)
                    {
                        var (count, bytes) = WriteLittleEndian(data, start, chunk);
                        await body.WriteAsync(chunk.AsMemory(0, bytes), aborted);
                        start += count;
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }
        });
    }

    private static long ByteCount(Array data) => data is float[] ? 4L * data.Length : data.Length;

    /// <summary>Writes values of <paramref name="data"/> from <paramref name="start"/> into <paramref name="chunk"/> while they fit; returns how many values and bytes.</summary>
    private static (int Count, int Bytes) WriteLittleEndian(Array data, int start, byte[] chunk)
    {
        switch (data)
        {
            case float[] values:
            {
                var count = Math.Min(values.Length - start, chunk.Length / 4);
                for (var i = 0; i < count; i++) BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(4 * i), values[start + i]);
                return (count, 4 * count);
            }
            case bool[] flags:
            {
                var count = Math.Min(flags.Length - start, chunk.Length);
                for (var i = 0; i < count; i++) chunk[i] = flags[start + i] ? (byte)1 : (byte)0;
                return (count, count);
            }
            default:
                throw new InvalidOperationException($"No binary form for {data.GetType().Name} outputs.");
        }
    }
}
