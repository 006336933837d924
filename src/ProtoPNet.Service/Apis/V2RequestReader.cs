using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>An Open Inference Protocol request as read for one model version: its input written into a pooled buffer.</summary>
internal sealed record V2ReadRequest(string? Id, IReadOnlyList<string>? Outputs, float[] Input, int Rows);

/// <summary>
/// Reads an Open Inference Protocol (v2) request body for one model version. The body is held in the service's
/// <see cref="BufferBudget"/> as it arrives, at most what that model's largest request can need, and its <c>data</c> is
/// parsed number by number straight into the network's input buffer: a JSON tree would cost about 12 bytes more per
/// number (a body of "0,0,0,..." ten times its own size), before a single value could be checked.
/// </summary>
internal static class V2RequestReader
{
    /// <summary>The bytes a number may take in <c>data</c>, with its separator and whitespace (e.g. "-1.2345678e-05, ").</summary>
    private const int MaxBytesPerValue = 32;

    /// <summary>The largest body for a model whose images hold <paramref name="imageElements"/> values: room for
    /// <paramref name="maxRows"/> images and 64 KiB of the rest, and never more than <see cref="V2Api.MaxRequestBytes"/>.</summary>
    public static long MaxBodyBytes(int imageElements, int maxRows) =>
        Math.Min(V2Api.MaxRequestBytes, (long)imageElements * maxRows * MaxBytesPerValue + 64 * 1024);

    public static async Task<V2ReadRequest> ReadAsync(HttpRequest request, BundleSession session, int maxRows, BufferBudget budget,
        CancellationToken cancellationToken)
    {
        var most = MaxBodyBytes(session.ImageElementCount, maxRows);
        var bodyLimit = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodyLimit is { IsReadOnly: false }) bodyLimit.MaxRequestBodySize = most;
        using var held = budget.Open();
        ReadOnlyMemory<byte> body;
        try
        {
            body = await BufferedBody.ReadAsync(request, most, held, () => new ProblemException(ProblemCatalog.ImageTooLarge,
                $"The body is larger than {most} bytes, the most a request of {maxRows} images needs for this model."), cancellationToken);
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge, $"The body is larger than {most} bytes.");
        }
        var input = session.RentBuffer(maxRows);
        try
        {
            return Parse(body.Span, session, maxRows, input);
        }
        catch (JsonException exception)
        {
            ReturnBuffer(input);
            throw BadRequest($"The body is not a v2 inference request: {exception.Message}");
        }
        catch
        {
            ReturnBuffer(input);
            throw;
        }
    }

    private static void ReturnBuffer(float[] input) => BundleSession.ReturnBuffer(input);

    private static V2ReadRequest Parse(ReadOnlySpan<byte> json, BundleSession session, int maxRows, float[] input)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw BadRequest("The body is not a JSON object.");
        string? id = null;
        List<string>? outputs = null;
        List<InputHeader>? inputs = null;
        var count = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var property = reader.GetString();
            reader.Read();
            switch (property)
            {
                case "id":
                    id = reader.TokenType switch
                    {
                        JsonTokenType.String => reader.GetString(),
                        JsonTokenType.Null => null,
                        _ => throw BadRequest("'id' must be a string."),
                    };
                    break;
                case "outputs" when reader.TokenType != JsonTokenType.Null:
                    outputs = ReadOutputs(ref reader);
                    break;
                case "inputs":
                    if (inputs is not null) throw BadRequest("The request has 'inputs' twice.");
                    inputs = ReadInputs(ref reader, input, session.ImageElementCount * maxRows, ref count);
                    break;
                default:
                    reader.Skip();   // parameters, and what the protocol may add
                    break;
            }
        }
        if (inputs is not { Count: > 0 }) throw BadRequest("The request has no 'inputs'.");
        return new V2ReadRequest(id, outputs, input, CheckInput(inputs, session, maxRows, count));
    }

    /// <summary>What an input says about itself; its data went into the buffer (only the first input's: the model has one).</summary>
    private sealed record InputHeader(string? Name, string? Datatype, IReadOnlyList<long>? Shape);

    private static List<InputHeader> ReadInputs(ref Utf8JsonReader reader, float[] input, int limit, ref int count)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("'inputs' must be an array of tensors.");
        var inputs = new List<InputHeader>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject) throw BadRequest("Every input must be an object with name, shape, datatype and data.");
            string? name = null, datatype = null;
            List<long>? shape = null;
            var hasData = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var property = reader.GetString();
                reader.Read();
                switch (property)
                {
                    case "name":
                        name = reader.TokenType == JsonTokenType.String ? reader.GetString() : throw BadRequest("An input's 'name' must be a string.");
                        break;
                    case "datatype":
                        datatype = reader.TokenType == JsonTokenType.String ? reader.GetString() : throw BadRequest("An input's 'datatype' must be a string.");
                        break;
                    case "shape":
                        shape = ReadShape(ref reader);
                        break;
                    case "data" when inputs.Count == 0:
                        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest($"Input '{BundleSession.InputName}' data must be an array of numbers (flat or nested).");
                        ReadNumbers(ref reader, input, limit, ref count);
                        hasData = true;
                        break;
                    default:
                        reader.Skip();   // a second input's data (refused below), parameters
                        break;
                }
            }
            if (inputs.Count == 0 && !hasData && name == BundleSession.InputName) throw BadRequest($"Input '{name}' has no 'data'.");
            inputs.Add(new InputHeader(name, datatype, shape));
        }
        return inputs;
    }

    private static List<long> ReadShape(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("An input's 'shape' must be an array of integers.");
        var shape = new List<long>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var dimension) || shape.Count >= 16)
            {
                throw BadRequest("An input's 'shape' must be an array of at most 16 integers.");
            }
            shape.Add(dimension);
        }
        return shape;
    }

    /// <summary>Copies the numbers of a flat or nested array into the buffer in row-major order, at most <paramref name="limit"/>.</summary>
    private static void ReadNumbers(ref Utf8JsonReader reader, float[] input, int limit, ref int count)
    {
        var depth = reader.CurrentDepth;
        while (reader.Read() && !(reader.TokenType == JsonTokenType.EndArray && reader.CurrentDepth == depth))
        {
            if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.EndArray) continue;
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetSingle(out var value) || !float.IsFinite(value))
            {
                var raw = reader.TokenType is JsonTokenType.StartObject ? "{...}" : Encoding.UTF8.GetString(reader.ValueSpan[..Math.Min(reader.ValueSpan.Length, 40)]);
                throw BadRequest($"Input '{BundleSession.InputName}' data holds '{raw}' at position {count}: FP32 data are finite numbers.");
            }
            if (count >= limit)
            {
                throw BadRequest($"Input '{BundleSession.InputName}' holds more than {limit} values, the most a request may send (Classify:MaxBatchImages images).");
            }
            input[count++] = value;
        }
    }

    private static List<string> ReadOutputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("'outputs' must be an array of objects with a name.");
        var outputs = new List<string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject) throw BadRequest("Every output asked for must be an object with a name.");
            string? name = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var property = reader.GetString();
                reader.Read();
                if (property == "name" && reader.TokenType == JsonTokenType.String) name = reader.GetString();
                else reader.Skip();
            }
            outputs.Add(name ?? throw BadRequest("Every output asked for must have a 'name' string."));
        }
        return outputs;
    }

    /// <summary>Checks the one input against the model and the values read; returns its rows.</summary>
    private static int CheckInput(List<InputHeader> inputs, BundleSession session, int maxRows, int count)
    {
        if (inputs.Count != 1 || inputs[0].Name != BundleSession.InputName)
        {
            throw BadRequest($"The model takes exactly one input, '{BundleSession.InputName}'; the request has [{string.Join(", ", inputs.Select(i => i.Name))}].");
        }
        var (_, datatype, shape) = inputs[0];
        if (datatype != V2Api.Datatype) throw BadRequest($"Input 'image' is {V2Api.Datatype}; the request says '{datatype}'.");
        shape ??= [];
        if (shape.Count != 4 || shape[1] != session.Channels || shape[2] != session.Height || shape[3] != session.Width || shape[0] < 1)
        {
            throw BadRequest($"Input 'image' has shape [N, {session.Channels}, {session.Height}, {session.Width}] with N >= 1; the request says [{string.Join(", ", shape)}].");
        }
        if (shape[0] > maxRows) throw BadRequest($"N is {shape[0]}; at most {maxRows} images per request (Classify:MaxBatchImages).");
        var rows = (int)shape[0];
        var expected = rows * session.ImageElementCount;
        if (count != expected) throw BadRequest($"Input 'image' holds {count} values; its shape needs {expected}.");
        return rows;
    }

    private static ProblemException BadRequest(string detail) => new(ProblemCatalog.InvalidParameter, detail);
}
