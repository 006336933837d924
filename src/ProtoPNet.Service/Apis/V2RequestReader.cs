using System.Text;
using System.Text.Json;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>What an Open Inference Protocol request says about itself, and where in its body its input's data stand.</summary>
internal sealed record V2RequestHeader(string? Id, IReadOnlyList<string>? Outputs, IReadOnlyList<V2RequestReader.InputHeader> Inputs, Range Data);

/// <summary>A v2 request body in memory, its bytes held in the service's <see cref="BufferBudget"/> until disposed.</summary>
internal sealed class V2Body(ReadOnlyMemory<byte> json, BufferBudget.Hold held) : IDisposable
{
    private ReadOnlyMemory<byte> _json = json;

    /// <summary>The body's bytes, until disposed.</summary>
    public ReadOnlyMemory<byte> Json => _json;

    /// <summary>Gives the bytes' share of the budget back, and lets the bytes go with it: the budget counts what is held.</summary>
    public void Dispose()
    {
        _json = ReadOnlyMemory<byte>.Empty;
        held.Dispose();
    }
}

/// <summary>
/// Reads an Open Inference Protocol (v2) request body for a model. The body is held in the service's
/// <see cref="BufferBudget"/> as it arrives, at most what that model's largest request can need, and its <c>data</c> is
/// parsed number by number straight into the network's input buffer: a JSON tree would cost about 12 bytes more per
/// number (a body of "0,0,0,..." ten times its own size), before a single value could be checked. Member names are
/// matched ignoring case, as the service's JSON options do elsewhere.
/// </summary>
internal static class V2RequestReader
{
    /// <summary>The bytes a number may take in <c>data</c>, with its separator and whitespace (a 20-digit double indented
    /// on a line of its own in a pretty-printed nested array takes about 40).</summary>
    private const int MaxBytesPerValue = 48;

    /// <summary>The largest body for a model whose images hold <paramref name="imageElements"/> values: room for
    /// <paramref name="maxRows"/> images and 64 KiB of the rest, and never more than <see cref="V2Api.MaxRequestBytes"/>.</summary>
    public static long MaxBodyBytes(int imageElements, int maxRows) =>
        Math.Min(V2Api.MaxRequestBytes, (long)imageElements * maxRows * MaxBytesPerValue + 64 * 1024);

    /// <summary>Reads the body, at most <see cref="MaxBodyBytes"/> for <paramref name="session"/>'s input; 413 beyond.</summary>
    public static async Task<V2Body> ReadBodyAsync(HttpRequest request, BundleSession session, int maxRows, BufferBudget budget,
        CancellationToken cancellationToken)
    {
        var most = MaxBodyBytes(session.ImageElementCount, maxRows);
        var held = budget.Open();
        try
        {
            var json = await BufferedBody.ReadAsync(request, most, held, () => new ProblemException(ProblemCatalog.ImageTooLarge,
                $"The body is larger than {most} bytes, the most a request of {maxRows} images needs for this model."), cancellationToken);
            return new V2Body(json, held);
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads what the request says about itself (id, outputs asked for, its inputs' names, datatypes and shapes) and
    /// where its data stand, without reading the numbers. Throws the problem for a malformed request.
    /// </summary>
    public static V2RequestHeader ReadHeader(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw BadRequest("The body is not a JSON object.");
            string? id = null;
            List<string>? outputs = null;
            (List<InputHeader> Inputs, Range Data)? inputs = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var property = reader.GetString()!.ToLowerInvariant();
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
                        inputs = ReadInputs(ref reader);
                        break;
                    default:
                        reader.Skip();   // parameters, and what the protocol may add
                        break;
                }
            }
            // Nothing may follow the request object (Read throws on anything but whitespace).
            if (reader.Read()) throw BadRequest("The body holds more than one JSON value.");
            if (inputs is not { Inputs.Count: > 0 } read) throw BadRequest("The request has no 'inputs'.");
            return new V2RequestHeader(id, outputs, read.Inputs, read.Data);
        }
        catch (Exception exception) when (exception is JsonException or InvalidOperationException)
        {
            // Malformed JSON, or a string that is not valid text (a lone surrogate escape, bad UTF-8).
            throw BadRequest($"The body is not a v2 inference request: {exception.Message}");
        }
    }

    /// <summary>
    /// Checks the request's input against the model version it runs on and writes its numbers into a buffer from
    /// <see cref="BundleSession.RentBuffer"/> for that many images; throws the problem (having returned the buffer) for a bad tensor.
    /// </summary>
    public static (float[] Input, int Rows) WriteInput(ReadOnlySpan<byte> json, V2RequestHeader header, BundleSession session, int maxRows)
    {
        var rows = CheckInput(header.Inputs, session, maxRows);
        var input = session.RentBuffer(rows);
        try
        {
            var expected = rows * session.ImageElementCount;
            var count = 0;
            // The data array alone (the header pass found it and checked it is well-formed JSON); none: no values.
            if (header.Data.End.Value > 0)
            {
                var reader = new Utf8JsonReader(json[header.Data]);
                reader.Read();
                ReadNumbers(ref reader, input, expected, ref count);
            }
            if (count != expected) throw BadRequest($"Input 'image' holds {count} values; its shape needs {expected}.");
            return (input, rows);
        }
        catch
        {
            BundleSession.ReturnBuffer(input);
            throw;
        }
    }

    /// <summary>What an input says about itself (the data are the first input's only: the model has one).</summary>
    internal sealed record InputHeader(string? Name, string? Datatype, IReadOnlyList<long>? Shape);

    private static (List<InputHeader> Inputs, Range Data) ReadInputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("'inputs' must be an array of tensors.");
        var inputs = new List<InputHeader>();
        var data = new Range(0, 0);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject) throw BadRequest("Every input must be an object with name, shape, datatype and data.");
            string? name = null, datatype = null;
            List<long>? shape = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var property = reader.GetString()!.ToLowerInvariant();
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
                        var start = (int)reader.TokenStartIndex;
                        reader.Skip();
                        data = new Range(start, (int)reader.BytesConsumed);
                        break;
                    default:
                        reader.Skip();   // a second input's data (refused by CheckInput), parameters
                        break;
                }
            }
            inputs.Add(new InputHeader(name, datatype, shape));
        }
        return (inputs, data);
    }

    private static List<long> ReadShape(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("An input's 'shape' must be an array of integers.");
        var shape = new List<long>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            // Numbers, or numbers in strings (as the service's JSON options read them elsewhere).
            long dimension = 0;
            var read = reader.TokenType switch
            {
                JsonTokenType.Number => reader.TryGetInt64(out dimension),
                JsonTokenType.String => long.TryParse(reader.GetString(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out dimension),
                _ => false,
            };
            if (!read || shape.Count >= 16)
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
            if (count >= limit) throw BadRequest($"Input '{BundleSession.InputName}' holds more values than its shape's {limit}.");
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
                var property = reader.GetString()!;
                reader.Read();
                if (property.Equals("name", StringComparison.OrdinalIgnoreCase) && reader.TokenType == JsonTokenType.String) name = reader.GetString();
                else reader.Skip();
            }
            outputs.Add(name ?? throw BadRequest("Every output asked for must have a 'name' string."));
        }
        return outputs;
    }

    /// <summary>Checks the one input's name, datatype and shape against the model; returns its rows.</summary>
    private static int CheckInput(IReadOnlyList<InputHeader> inputs, BundleSession session, int maxRows)
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
        return (int)shape[0];
    }

    private static ProblemException BadRequest(string detail) => new(ProblemCatalog.InvalidParameter, detail);
}
