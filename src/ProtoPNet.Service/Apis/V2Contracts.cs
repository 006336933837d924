using System.Text.Json.Serialization;

namespace ProtoPNet.Service.Apis;

// The Open Inference Protocol (KServe v2) REST bodies, field for field as the specification names them.

/// <summary>Server metadata: name, version and the protocol extensions supported.</summary>
public sealed record V2ServerMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("extensions")] IReadOnlyList<string> Extensions);

/// <summary>Server liveness: <c>{"live": true}</c>.</summary>
public sealed record V2ServerLive([property: JsonPropertyName("live")] bool Live);

/// <summary>Server readiness: <c>{"ready": true}</c> (not ready is a 4xx error).</summary>
public sealed record V2ServerReady([property: JsonPropertyName("ready")] bool Ready);

/// <summary>Model readiness: <c>{"name": ..., "ready": true}</c> (a model not loaded is a 404 error).</summary>
public sealed record V2ModelReady(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("ready")] bool Ready);

/// <summary>A tensor's name, datatype and shape; -1 marks the batch dimension.</summary>
public sealed record V2TensorMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("datatype")] string Datatype,
    [property: JsonPropertyName("shape")] IReadOnlyList<long> Shape);

/// <summary>Model metadata: the versions loaded, the platform, and the graph's inputs and outputs.</summary>
public sealed record V2ModelMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("versions")] IReadOnlyList<string> Versions,
    [property: JsonPropertyName("platform")] string Platform,
    [property: JsonPropertyName("inputs")] IReadOnlyList<V2TensorMetadata> Inputs,
    [property: JsonPropertyName("outputs")] IReadOnlyList<V2TensorMetadata> Outputs);

/// <summary>An input tensor: <c>data</c> is flat (row-major) or nested as the shape.</summary>
public sealed record V2RequestInput(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("shape")] IReadOnlyList<long> Shape,
    [property: JsonPropertyName("datatype")] string Datatype,
    [property: JsonPropertyName("data")] System.Text.Json.JsonElement Data)
{
    [JsonPropertyName("parameters")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, System.Text.Json.JsonElement>? Parameters { get; init; }
}

/// <summary>An output the caller asks for.</summary>
public sealed record V2RequestOutput([property: JsonPropertyName("name")] string Name)
{
    [JsonPropertyName("parameters")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, System.Text.Json.JsonElement>? Parameters { get; init; }
}

/// <summary>
/// An inference request: <c>inputs</c>, optional <c>id</c>, <c>parameters</c> and <c>outputs</c> (all outputs when absent).
/// The schema the API documentation shows; bodies are read by <see cref="V2RequestReader"/>, straight into the input buffer.
/// </summary>
public sealed record V2InferenceRequest(
    [property: JsonPropertyName("inputs")] IReadOnlyList<V2RequestInput>? Inputs)
{
    [JsonPropertyName("id")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Id { get; init; }

    [JsonPropertyName("parameters")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, System.Text.Json.JsonElement>? Parameters { get; init; }

    [JsonPropertyName("outputs")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<V2RequestOutput>? Outputs { get; init; }
}

/// <summary>
/// An output tensor, <c>data</c> flat in row-major order: numbers for FP32, <c>true</c>/<c>false</c> for BOOL. An output
/// answered as binary data (the binary tensor data extension) has no <c>data</c> but
/// <c>"parameters": {"binary_data_size": bytes}</c>, its values following the JSON in the body.
/// </summary>
public sealed record V2ResponseOutput(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("shape")] IReadOnlyList<long> Shape,
    [property: JsonPropertyName("datatype")] string Datatype,
    [property: JsonPropertyName("data")]
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Array? Data)
{
    [JsonPropertyName("parameters")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, long>? Parameters { get; init; }
}

/// <summary>An inference response: the model and version that answered, the request's id and the outputs.</summary>
public sealed record V2InferenceResponse(
    [property: JsonPropertyName("model_name")] string ModelName,
    [property: JsonPropertyName("model_version")] string ModelVersion,
    [property: JsonPropertyName("outputs")] IReadOnlyList<V2ResponseOutput> Outputs)
{
    [JsonPropertyName("id")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Id { get; init; }
}
