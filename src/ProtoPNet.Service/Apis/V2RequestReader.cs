using System.Text;
using System.Text.Json;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>What an Open Inference Protocol request says about itself, and where in its body its input's data stand.</summary>
/// <remarks><paramref name="Data"/> is the first input's JSON <c>data</c> array, or its bytes after the JSON header when
/// <paramref name="Binary"/> (the binary tensor data extension). Which outputs are answered as binary data: those whose
/// <c>parameters.binary_data</c> is true (<paramref name="BinaryOutputs"/>: each output's own say), and, where an output
/// does not say, all when the request's <c>parameters.binary_data_output</c> is true (<paramref name="BinaryDataOutput"/>).</remarks>
internal sealed record V2RequestHeader(string? Id, IReadOnlyList<string>? Outputs, IReadOnlyList<V2RequestReader.InputHeader> Inputs, Range Data,
    bool Binary = false, bool BinaryDataOutput = false, IReadOnlyDictionary<string, bool>? BinaryOutputs = null)
{
    /// <summary>Whether output <paramref name="name"/> is answered as binary data.</summary>
    public bool IsBinaryOutput(string name) =>
        BinaryOutputs is not null && BinaryOutputs.TryGetValue(name, out var binary) ? binary : BinaryDataOutput;
}

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
    /// <summary>The bytes a number may take in <c>data</c>, with its separator and whitespace: a 20-digit double on a line
    /// of its own in a nested array pretty-printed with an indent of 4 (Python's <c>json.dumps(request, indent=4)</c>)
    /// takes about 51.</summary>
    private const int MaxBytesPerValue = 64;

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
                $"The body is larger than {most} bytes, the most this model takes: {maxRows} images (Classify:MaxBatchImages) of {session.ImageElementCount} values at up to {MaxBytesPerValue} bytes each, plus 64 KiB."), cancellationToken);
            return new V2Body(json, held);
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    /// <summary>The header of the binary tensor data extension: the length of the body's JSON part, the tensors' bytes after it.</summary>
    public const string JsonLengthHeader = "Inference-Header-Content-Length";

    /// <summary>
    /// Reads what the request says about itself (id, outputs asked for, its inputs' names, datatypes and shapes) and
    /// where its data stand, without reading the numbers. With <paramref name="jsonLength"/> (the binary tensor data
    /// extension's <see cref="JsonLengthHeader"/>) only that much of the body is JSON and an input's values may follow it
    /// as raw little-endian bytes (its <c>parameters.binary_data_size</c>). Throws the problem for a malformed request.
    /// </summary>
    public static V2RequestHeader ReadHeader(ReadOnlySpan<byte> body, long? jsonLength = null)
    {
        if (jsonLength is { } length && (length < 0 || length > body.Length))
        {
            throw BadRequest($"{JsonLengthHeader} is {length}, but the body holds {body.Length} bytes.");
        }
        var json = jsonLength is { } jsonBytes ? body[..(int)jsonBytes] : body;
        V2RequestHeader header;
        try
        {
            // A UTF-8 byte order mark before the JSON (RFC 8259 lets a parser ignore it; some Windows clients send it).
            var bom = json.StartsWith("\uFEFF"u8) ? 3 : 0;
            header = ReadJsonHeader(json[bom..]);
            if (bom > 0 && header.Data.End.Value > 0) header = header with { Data = new Range(header.Data.Start.Value + bom, header.Data.End.Value + bom) };
        }
        catch (ProblemException) when (jsonLength is null && JsonObjectLength(json) is { } end && end < json.Length
            && json[..end].IndexOf("\"binary_data_size\""u8) >= 0)
        {
            throw BadRequest($"The body is not JSON alone: an input's binary_data_size says binary tensor data follow, but the request has no {JsonLengthHeader} header to say where its JSON ends.");
        }
        var binaryBytes = body.Length - json.Length;
        var declared = header.Inputs.Sum(i => i.BinaryDataSize ?? 0);
        if (declared != binaryBytes)
        {
            throw BadRequest(jsonLength is null
                ? $"An input declares {declared} bytes of binary data (parameters.binary_data_size), but the request has no {JsonLengthHeader} header to say where its JSON ends."
                : $"The body holds {binaryBytes} bytes after its JSON header; its inputs' binary_data_size add up to {declared}.");
        }
        if (header.Inputs[0].BinaryDataSize is not { } size) return header;
        if (header.Data.End.Value > 0) throw BadRequest($"Input '{header.Inputs[0].Name}' has both 'data' and parameters.binary_data_size.");
        return header with { Data = new Range(json.Length, json.Length + (int)size), Binary = true };
    }

    /// <summary>
    /// The byte length of the JSON object the body starts with, or null when it does not start with a whole one: bytes
    /// after it are what a binary tensor data request sent without its length header looks like.
    /// </summary>
    private static int? JsonObjectLength(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, isFinalBlock: false, state: default);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject || !reader.TrySkip()) return null;
            return (int)reader.BytesConsumed;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static V2RequestHeader ReadJsonHeader(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw BadRequest("The body is not a JSON object.");
            string? id = null;
            List<(string Name, bool? Binary)>? outputs = null;
            var binaryDataOutput = false;
            (List<InputHeader> Inputs, Range Data)? inputs = null;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var property = Member(ref reader, seen, RequestMembers, "The request");
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
                        inputs = ReadInputs(ref reader);
                        break;
                    case "parameters":
                        binaryDataOutput = ReadBooleanParameter(ref reader, "binary_data_output", "The request's parameters.binary_data_output", ofAnOutput: false) ?? false;
                        break;
                    default:
                        reader.Skip();   // what the protocol may add
                        break;
                }
            }
            // Nothing may follow the request object (Read throws on anything but whitespace).
            if (reader.Read()) throw BadRequest("The body holds more than one JSON value.");
            if (inputs is not { Inputs.Count: > 0 } read) throw BadRequest("The request has no 'inputs'.");
            // An empty 'outputs' names none: all of them, as when it is absent.
            var named = outputs is { Count: > 0 } ? outputs.Select(o => o.Name).ToArray() : null;
            var binaryOutputs = outputs?.Where(o => o.Binary.HasValue).GroupBy(o => o.Name).ToDictionary(g => g.Key, g => g.Last().Binary!.Value);
            return new V2RequestHeader(id, named, read.Inputs, read.Data, BinaryDataOutput: binaryDataOutput, BinaryOutputs: binaryOutputs);
        }
        catch (JsonException exception)
        {
            throw BadRequest($"The body is not JSON: {RequestText.JsonError(exception)}.");
        }
        catch (InvalidOperationException exception)
        {
            // A string that is not valid text (a lone surrogate escape, bad UTF-8).
            throw BadRequest($"The body is not a v2 inference request: {RequestText.Printable(exception.Message)}");
        }
    }

    /// <summary>
    /// Checks the request's input against the model version it runs on and writes its numbers into a buffer from
    /// <see cref="BundleSession.RentBuffer"/> for that many images; throws the problem (having returned the buffer) for a bad tensor.
    /// </summary>
    public static (float[] Input, int Rows) WriteInput(ReadOnlySpan<byte> body, V2RequestHeader header, BundleSession session, int maxRows)
    {
        var rows = CheckInput(header.Inputs, session, maxRows);
        var input = session.RentBuffer(rows);
        try
        {
            var expected = rows * session.ImageElementCount;
            var count = 0;
            if (header.Binary)
            {
                ReadBinary(body[header.Data], input, expected);
                return (input, rows);
            }
            // The data array alone (the header pass found it and checked it is well-formed JSON); none: no values.
            if (header.Data.End.Value > 0)
            {
                var reader = new Utf8JsonReader(body[header.Data]);
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

    /// <summary>An input's values as raw FP32 bytes (little-endian, row-major), each checked to be finite.</summary>
    private static void ReadBinary(ReadOnlySpan<byte> bytes, float[] input, int expected)
    {
        if (bytes.Length != expected * sizeof(float))
        {
            throw BadRequest($"Input '{BundleSession.InputName}' holds {bytes.Length} bytes of binary data; its shape needs {expected} FP32 values, {expected * sizeof(float)} bytes.");
        }
        var values = input.AsSpan(0, expected);
        bytes.CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
        if (!BitConverter.IsLittleEndian)
        {
            var raw = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(values);
            System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(raw, raw);
        }
        for (var i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i])) throw BadRequest($"Input '{BundleSession.InputName}' holds {values[i]} at position {i}: FP32 data are finite numbers.");
        }
    }

    /// <summary>What an input says about itself (the data are the first input's only: the model has one).</summary>
    internal sealed record InputHeader(string? Name, string? Datatype, IReadOnlyList<Int128>? Shape, long? BinaryDataSize = null);

    private static (List<InputHeader> Inputs, Range Data) ReadInputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("'inputs' must be an array of tensors.");
        var inputs = new List<InputHeader>();
        var data = new Range(0, 0);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject) throw BadRequest("Every input must be an object with name, shape, datatype and data.");
            string? name = null, datatype = null;
            List<Int128>? shape = null;
            long? binaryDataSize = null;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var property = Member(ref reader, seen, InputMembers, "An input");
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
                    case "parameters" when reader.TokenType == JsonTokenType.StartObject:
                        binaryDataSize = ReadBinaryDataSize(ref reader);
                        break;
                    default:
                        reader.Skip();   // a second input's data (refused by CheckInput)
                        break;
                }
            }
            inputs.Add(new InputHeader(name, datatype, shape, binaryDataSize));
        }
        return (inputs, data);
    }

    /// <summary>An input's <c>parameters.binary_data_size</c> (the binary tensor data extension), if it has one; other parameters are skipped.</summary>
    private static long? ReadBinaryDataSize(ref Utf8JsonReader reader)
    {
        long? size = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isSize = reader.GetString()!.Equals("binary_data_size", StringComparison.OrdinalIgnoreCase);
            reader.Read();
            if (!isSize)
            {
                reader.Skip();
                continue;
            }
            if (size is not null) throw BadRequest("An input's parameters.binary_data_size is given twice.");
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var bytes) || bytes < 0 || bytes > V2Api.MaxRequestBytes)
            {
                throw BadRequest("An input's parameters.binary_data_size must be a byte count.");
            }
            size = bytes;
        }
        return size;
    }

    private static List<Int128> ReadShape(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("An input's 'shape' must be an array of integers.");
        var shape = new List<Int128>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (shape.Count >= 16) throw BadRequest("An input's 'shape' has more than 16 dimensions.");
            // Numbers, or numbers in strings (as the service's JSON options read them elsewhere).
            var text = reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString()!,
                JsonTokenType.Number => Encoding.UTF8.GetString(reader.ValueSpan),
                _ => JsonWritten(reader),
            };
            // 128 bits hold every dimension the protocol allows (64-bit unsigned) and negative ones, so a refusal
            // repeats the request's number as it was sent.
            if (Int128.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var dimension))
            {
                shape.Add(dimension);
            }
            else
            {
                throw BadRequest($"An input's 'shape' holds '{RequestText.Echo(text)}': its dimensions are integers.");
            }
        }
        return shape;
    }

    /// <summary>The reader's token as JSON writes it (<see cref="RequestText.Echo"/>): a value's text, or <c>{...}</c> for an object.</summary>
    private static string JsonWritten(Utf8JsonReader reader)
    {
        if (reader.TokenType is JsonTokenType.StartObject) return "{...}";
        if (reader.TokenType is JsonTokenType.StartArray) return "[...]";
        return RequestText.Echo(Encoding.UTF8.GetString(reader.ValueSpan[..Math.Min(reader.ValueSpan.Length, 41)]))!;
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
                var raw = JsonWritten(reader);
                throw BadRequest($"Input '{BundleSession.InputName}' data holds '{raw}' at position {count}: FP32 data are finite numbers.");
            }
            if (count >= limit) throw BadRequest($"Input '{BundleSession.InputName}' holds more values than its shape's {limit}.");
            input[count++] = value;
        }
    }

    /// <summary>
    /// The boolean parameter <paramref name="name"/> of a <c>parameters</c> object (null when it is not there), reading
    /// past the object; a value that is not true or false is refused, naming it as <paramref name="what"/>. In an output's
    /// parameters, <c>classification</c> (Triton's classification extension) is refused: it would change what an output holds, and
    /// answering the raw tensor instead would be a wrong answer that looks right.
    /// </summary>
    private static bool? ReadBooleanParameter(ref Utf8JsonReader reader, string name, string what, bool ofAnOutput)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return null;
        }
        bool? value = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var parameter = reader.GetString()!.ToLowerInvariant();
            if (ofAnOutput && parameter == "classification")
            {
                throw BadRequest("An output's parameters.classification (the classification extension) is not supported: ask for 'logits' and take the top classes from them, or use POST /classify.");
            }
            var matches = parameter == name;
            reader.Read();
            if (matches && value is not null) throw BadRequest($"{what} is given twice.");
            if (matches)
            {
                value = reader.TokenType switch
                {
                    JsonTokenType.True => true,
                    JsonTokenType.False => false,
                    _ => throw BadRequest($"{what} must be true or false."),
                };
            }
            else reader.Skip();
        }
        return value;
    }

    /// <summary>The members read of the request, of an input and of an output (any other is passed over).</summary>
    private static readonly string[] RequestMembers = ["id", "outputs", "inputs", "parameters"],
        InputMembers = ["name", "datatype", "shape", "data", "parameters"], OutputMembers = ["name", "parameters"];

    /// <summary>
    /// The name of the member the reader is on, in lower case (names are matched ignoring case), with the reader moved
    /// to its value; a member of <paramref name="read"/> given a second time, in any spelling, is refused: the last of
    /// two would win unseen, and the caller meant one of them.
    /// </summary>
    private static string Member(ref Utf8JsonReader reader, HashSet<string> seen, string[] read, string owner)
    {
        var name = reader.GetString()!.ToLowerInvariant();
        reader.Read();
        if (read.Contains(name) && !seen.Add(name)) throw BadRequest($"{owner} has '{name}' twice.");
        return name;
    }

    private static List<(string Name, bool? Binary)> ReadOutputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw BadRequest("'outputs' must be an array of objects with a name.");
        var outputs = new List<(string, bool?)>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject) throw BadRequest("Every output asked for must be an object with a name.");
            string? name = null;
            bool? binary = null;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var property = Member(ref reader, seen, OutputMembers, "An output asked for");
                if (property == "name" && reader.TokenType == JsonTokenType.String) name = reader.GetString();
                else if (property == "parameters") binary = ReadBooleanParameter(ref reader, "binary_data", "An output's parameters.binary_data", ofAnOutput: true);
                else reader.Skip();
            }
            outputs.Add((name ?? throw BadRequest("Every output asked for must have a 'name' string."), binary));
        }
        return outputs;
    }

    /// <summary>Checks the one input's name, datatype and shape against the model; returns its rows.</summary>
    private static int CheckInput(IReadOnlyList<InputHeader> inputs, BundleSession session, int maxRows)
    {
        if (inputs.Count != 1 || inputs[0].Name != BundleSession.InputName)
        {
            throw BadRequest($"The model takes exactly one input, '{BundleSession.InputName}'; the request has [{RequestText.EchoList(inputs.Select(i => i.Name))}].");
        }
        var (_, datatype, shape, _) = inputs[0];
        if (datatype != V2Api.Datatype)
        {
            throw BadRequest($"Input 'image' is {V2Api.Datatype}; " + (string.IsNullOrEmpty(datatype) ? "the request gives no datatype." : $"the request says '{RequestText.Echo(datatype)}'."));
        }
        if (shape is not { Count: 4 } || shape[1] != session.Channels || shape[2] != session.Height || shape[3] != session.Width || shape[0] < 1)
        {
            throw BadRequest($"Input 'image' has shape [N, {session.Channels}, {session.Height}, {session.Width}] with N >= 1; " +
                (shape is null ? "the request gives no shape." : $"the request says [{string.Join(", ", shape)}]."));
        }
        if (shape[0] > maxRows) throw BadRequest($"N is {shape[0]}; at most {maxRows} images per request (Classify:MaxBatchImages).");
        return (int)shape[0];
    }

    private static ProblemException BadRequest(string detail) => new(ProblemCatalog.InvalidParameter, detail);
}
