using System.Net;
using System.Text;
using System.Text.Json;
using ProtoPNet.Inference.Bundles;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>The Open Inference Protocol (KServe v2) REST endpoints, with requests shaped as the specification shows them.</summary>
[Collection(BundlesCollection.Name)]
public class OpenInferenceProtocolTests(TrainerBundles bundles)
{
    private HttpClient Client => bundles.Service.CreateClient();
    private string Version => Path.GetFileName(bundles.SmokeBundle);

    [Fact]
    public async Task HealthAndServerMetadata()
    {
        // The protocol's later text gives health answers a body ({"live": true}); its clients read it as JSON.
        var live = await Client.GetAsync("/v2/health/live");
        Assert.Equal("application/json", live.Content.Headers.ContentType?.ToString());
        Assert.True((await Http.JsonAsync(live)).GetProperty("live").GetBoolean());
        Assert.True((await Http.JsonAsync(await Client.GetAsync("/v2/health/ready"))).GetProperty("ready").GetBoolean());
        var modelReady = await Http.JsonAsync(await Client.GetAsync("/v2/models/smoke/ready"));
        Assert.Equal("smoke", modelReady.GetProperty("name").GetString());
        Assert.True(modelReady.GetProperty("ready").GetBoolean());
        var server = await Http.JsonAsync(await Client.GetAsync("/v2"));
        Assert.Equal("protopnet-service", server.GetProperty("name").GetString());
        Assert.False(string.IsNullOrEmpty(server.GetProperty("version").GetString()));
        Assert.Equal(["binary_tensor_data"], server.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));

        await using var empty = ServiceFactory.ForRoot(bundles.NewRoot());
        var notReady = await empty.CreateClient().GetAsync("/v2/health/ready");
        Assert.Equal(HttpStatusCode.BadRequest, notReady.StatusCode);
        Assert.Equal("No model is loaded: the model root holds no valid bundle (0 refused; GET /models lists them and why).",
            (await Http.JsonAsync(notReady, HttpStatusCode.BadRequest)).GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.OK, (await empty.CreateClient().GetAsync("/v2/health/live")).StatusCode);
    }

    [Fact]
    public async Task ModelMetadataHasTheGraphsTensorsWithABatchDimensionOfMinusOne()
    {
        foreach (var path in (string[])["/v2/models/smoke", $"/v2/models/smoke/versions/{Version}"])
        {
            var metadata = await Http.JsonAsync(await Client.GetAsync(path));
            Assert.Equal("smoke", metadata.GetProperty("name").GetString());
            Assert.Contains(Version, metadata.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
            Assert.Equal("onnxruntime_onnx", metadata.GetProperty("platform").GetString());
            var input = metadata.GetProperty("inputs").EnumerateArray().Single();
            Assert.Equal("image", input.GetProperty("name").GetString());
            Assert.Equal("FP32", input.GetProperty("datatype").GetString());
            Assert.Equal([-1L, 3, 32, 32], input.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
            var outputs = metadata.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!,
                o => o.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray());
            Assert.Equal([-1L, 4], outputs["logits"]);
            Assert.Equal([-1L, 8], outputs["similarities"]);
            Assert.Equal(-1, outputs["similarity_maps"][0]);
            Assert.Equal(4, outputs["similarity_maps"].Length);
            Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync(path + "/ready")).StatusCode);
        }
        await AssertErrorAsync(await Client.GetAsync("/v2/models/nope"), HttpStatusCode.NotFound);
        await AssertErrorAsync(await Client.GetAsync("/v2/models/nope/ready"), HttpStatusCode.NotFound);
        await AssertErrorAsync(await Client.GetAsync("/v2/models/smoke/versions/19990101T000000Z/ready"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task InferAnswersASpecificationShapedRequestWithTheGraphsOutputs()
    {
        var (input, expected) = ProbeRows(2);
        // The specification's request: id, inputs (name, shape, datatype, data flat in row-major order), outputs by name.
        var request = $$"""
            {
              "id" : "42",
              "inputs" : [
                {
                  "name" : "image",
                  "shape" : [ 2, 3, 32, 32 ],
                  "datatype" : "FP32",
                  "data" : [ {{string.Join(", ", input.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}} ]
                }
              ],
              "outputs" : [
                { "name" : "logits" }
              ]
            }
            """;
        var body = await Http.JsonAsync(await Client.PostAsync("/v2/models/smoke/infer", new StringContent(request, Encoding.UTF8, "application/json")));
        Assert.Equal("42", body.GetProperty("id").GetString());
        Assert.Equal("smoke", body.GetProperty("model_name").GetString());
        Assert.Equal(Version, body.GetProperty("model_version").GetString());
        var output = body.GetProperty("outputs").EnumerateArray().Single();
        Assert.Equal("logits", output.GetProperty("name").GetString());
        Assert.Equal("FP32", output.GetProperty("datatype").GetString());
        Assert.Equal([2L, 4], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        var logits = output.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(expected.Logits.Length, logits.Length);
        for (var i = 0; i < logits.Length; i++) Assert.True(BundleLoader.WithinTolerance(logits[i], expected.Logits[i]), $"logits[{i}]: {logits[i]} vs {expected.Logits[i]}");
    }

    [Fact]
    public async Task InferTakesNestedDataAndAnswersEveryOutputWithoutAnOutputsList()
    {
        var (input, expected) = ProbeRows(1);
        // The same data nested as its shape [1][3][32][32], through the versioned route.
        var nested = new float[1][][][];
        nested[0] = new float[3][][];
        for (var c = 0; c < 3; c++)
        {
            nested[0][c] = new float[32][];
            for (var y = 0; y < 32; y++) nested[0][c][y] = input.AsSpan((c * 32 + y) * 32, 32).ToArray();
        }
        var request = JsonSerializer.Serialize(new { inputs = new[] { new { name = "image", shape = new[] { 1, 3, 32, 32 }, datatype = "FP32", data = nested } } });
        var body = await Http.JsonAsync(await Client.PostAsync($"/v2/models/smoke/versions/{Version}/infer",
            new StringContent(request, Encoding.UTF8, "application/json")));
        Assert.False(body.TryGetProperty("id", out _));
        var outputs = body.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!);
        Assert.Equal(["logits", "similarities", "similarity_maps", "unfamiliar", "unfamiliarity"], outputs.Keys.Order());
        var similarities = outputs["similarities"].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        for (var i = 0; i < similarities.Length; i++) Assert.True(BundleLoader.WithinTolerance(similarities[i], expected.Similarities[i]));
        var maps = outputs["similarity_maps"];
        Assert.Equal([1, 8, 8, 8], maps.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        // Row-major [image][prototype][y][x]: every prototype's own map, in its place.
        var mapValues = maps.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(expected.Maps.Length, mapValues.Length);
        for (var i = 0; i < mapValues.Length; i++) Assert.True(BundleLoader.WithinTolerance(mapValues[i], expected.Maps[i]), $"similarity_maps[{i}]");
    }

    [Fact]
    public async Task BadRequestsGetAnErrorObjectWithTheRightStatus()
    {
        async Task<HttpResponseMessage> Post(string path, string json) =>
            await Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string Tensor(string name, string datatype, string shape, string data) =>
            $$"""{"inputs":[{"name":"{{name}}","shape":{{shape}},"datatype":"{{datatype}}","data":{{data}}}]}""";
        var zeros = "[" + string.Join(",", Enumerable.Repeat("0", 3 * 32 * 32)) + "]";

        await AssertErrorAsync(await Post("/v2/models/nope/infer", Tensor("image", "FP32", "[1,3,32,32]", zeros)), HttpStatusCode.NotFound);
        await AssertErrorAsync(await Post("/v2/models/smoke/versions/19990101T000000Z/infer", Tensor("image", "FP32", "[1,3,32,32]", zeros)), HttpStatusCode.NotFound);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", "{not json"), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", "{}"), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", Tensor("input0", "FP32", "[1,3,32,32]", zeros)), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", Tensor("image", "UINT32", "[1,3,32,32]", zeros)), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1,3,28,28]", zeros)), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[2,3,32,32]", zeros)), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1,3,32,32]", "[\"a\"]")), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1000000,3,32,32]", zeros)), HttpStatusCode.BadRequest);
        var unknownOutput = Tensor("image", "FP32", "[1,3,32,32]", zeros)[..^1] + ",\"outputs\":[{\"name\":\"output0\"}]}";
        await AssertErrorAsync(await Post("/v2/models/smoke/infer", unknownOutput), HttpStatusCode.BadRequest);

        // A dimension the protocol allows (64-bit unsigned) but no request here can hold, repeated as sent, and one that
        // is not an integer.
        Assert.Contains("N is 18446744073709551615; at most", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[18446744073709551615,3,32,32]", zeros)), HttpStatusCode.BadRequest));
        Assert.Contains("more than 16 dimensions", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[" + string.Join(",", Enumerable.Repeat("1", 17)) + "]", zeros)), HttpStatusCode.BadRequest));
        Assert.Contains("holds ' 1'", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[\" 1\",3,32,32]", zeros)), HttpStatusCode.BadRequest));
        Assert.Contains("the request says [1, 9223372036854775808, 32, 32]", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1,9223372036854775808,32,32]", zeros)), HttpStatusCode.BadRequest));
        Assert.Contains("integers", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1.0,3,32,32]", zeros)), HttpStatusCode.BadRequest));
        // A value that is no number is named as JSON writes it (not the parser's token names, 'Null', 'StartArray'),
        // and a long one is cut with an ellipsis.
        Assert.Contains("'shape' holds 'null'", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[null,3,32,32]", zeros)), HttpStatusCode.BadRequest));
        Assert.Contains("'shape' holds '[...]'", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[[1],3,32,32]", zeros)), HttpStatusCode.BadRequest));
        Assert.Contains("data holds 'true' at position 1", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1,3,32,32]", "[0,true]")), HttpStatusCode.BadRequest));
        Assert.Contains($"data holds '{new string('9', 40)}...' at position 0", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1,3,32,32]", $"[{new string('9', 1000)}]")), HttpStatusCode.BadRequest));
        // A member given twice: refused, not the last taken unseen.
        Assert.Contains("An input has 'name' twice", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", $$"""{"inputs":[{"name":"image","name":"other","shape":[1,3,32,32],"datatype":"FP32","data":{{zeros}}}]}"""), HttpStatusCode.BadRequest));
        Assert.Contains("The request has 'inputs' twice", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", $$"""{"inputs":[],"INPUTS":[]}"""), HttpStatusCode.BadRequest));
        // What the request leaves out is said so.
        Assert.Contains("the request gives no shape", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", $$"""{"inputs":[{"name":"image","datatype":"FP32","data":{{zeros}}}]}"""), HttpStatusCode.BadRequest));
        Assert.Contains("the request gives no datatype", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", $$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"data":{{zeros}}}]}"""), HttpStatusCode.BadRequest));

        // Finite values so large that the network's outputs overflow: a 400 before the answer starts, never a 500 or a
        // 200 cut short (JSON has no infinity).
        var huge = "[" + string.Join(",", Enumerable.Repeat("3e38", 3 * 32 * 32)) + "]";
        // Every output asked for: the error names the first that overflowed, the logits.
        Assert.Contains("Output 'logits' is not finite", await AssertErrorAsync(
            await Post("/v2/models/smoke/infer", Tensor("image", "FP32", "[1,3,32,32]", huge)), HttpStatusCode.BadRequest));
        // So is the flag made from them: a score that is not a number must not read "familiar".
        var hugeFlag = Tensor("image", "FP32", "[1,3,32,32]", huge)[..^1] + ",\"outputs\":[{\"name\":\"unfamiliar\"}]}";
        Assert.Contains("Output 'unfamiliar' cannot be told for this input: the unfamiliarity score it comes from is not finite",
            await AssertErrorAsync(await Post("/v2/models/smoke/infer", hugeFlag), HttpStatusCode.BadRequest));

        // Triton's classification extension would change what an output holds: refused, not answered with the raw tensor.
        var classification = Tensor("image", "FP32", "[1,3,32,32]", zeros)[..^1] + ",\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"classification\":3}}]}";
        Assert.Contains("classification", await AssertErrorAsync(await Post("/v2/models/smoke/infer", classification), HttpStatusCode.BadRequest));

        // What the request says is repeated in an error only in part: a megabyte of datatype is not sent back.
        var longType = await AssertErrorAsync(await Post("/v2/models/smoke/infer", Tensor("image", new string('D', 100_000), "[1,3,32,32]", zeros)),
            HttpStatusCode.BadRequest);
        Assert.Contains("the request says 'DDDD", longType);
        Assert.True(longType.Length < 300, longType);

        // A plain JSON body that only mentions binary_data_size gets its own error, not the binary extension's.
        var mentions = await AssertErrorAsync(await Post("/v2/models/smoke/infer", """{"id":"binary_data_size","inputs":[]}"""), HttpStatusCode.BadRequest);
        Assert.DoesNotContain("Inference-Header-Content-Length", mentions);
    }

    /// <summary>
    /// A body that is not JSON is answered with why and where (line and byte), never with a megabyte of it quoted back (the
    /// parser quotes an invalid literal with all that follows it) nor with the parser's advice to the server's own code.
    /// Members given twice in an output, names the request leaves empty or out, and a query version beside the path's are
    /// said so, not passed over.
    /// </summary>
    [Fact]
    public async Task MalformedRequestsAreAnsweredInWordsAClientCanActOn()
    {
        async Task<string> Error(string json, string path = "/v2/models/smoke/infer") => await AssertErrorAsync(
            await Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest);
        var zeros = "[" + string.Join(",", Enumerable.Repeat("0", 3 * 32 * 32)) + "]";
        string Request(string name = "\"image\"", string outputs = "") =>
            $$"""{"inputs":[{"name":{{name}},"shape":[1,3,32,32],"datatype":"FP32","data":{{zeros}}}]{{outputs}}}""";

        Assert.Equal("The body is not JSON: it is empty, or only white space.", await Error(""));
        var literal = await Error("""{"inputs":[{"name":"image","data":[t""" + new string('1', 1_000_000) + "]}]}");
        Assert.StartsWith($"The body is not JSON: 't{new string('1', 71)}… (1000005 characters)' is an invalid JSON literal", literal);
        Assert.EndsWith("(line 1, byte 37).", literal);
        Assert.True(literal.Length < 300, literal);
        Assert.Equal("The body is not JSON: The JSON object contains a trailing comma at the end, which JSON does not allow (line 1, byte 14).",
            await Error("""{"inputs":[],}"""));
        // The parser's messages that quote one character each, twice, are left whole.
        Assert.Equal("The body is not JSON: '/' is invalid after a value. Expected either ',', '}', or ']' (line 1, byte 13).",
            await Error("""{"name":"x" /* c */}"""));
        Assert.Equal("The body is not JSON: 'n' is an invalid start of a property name. Expected a '\"' (line 1, byte 2).", await Error("""{name:"x"}"""));
        // A literal with quotes all through it is cut as any other.
        var quoted = await Error("{\"inputs\":nul" + string.Concat(Enumerable.Repeat(new string('x', 30) + "'", 3000)) + "}");
        Assert.Contains("(93004 characters)' is an invalid JSON literal", quoted);
        Assert.True(quoted.Length < 300, quoted);
        Assert.StartsWith("The body is not JSON: The maximum configured depth of 64 has been exceeded (line 1, byte",
            await Error("""{"id":"a","later":""" + new string('[', 100)));
        Assert.Equal("The body is not JSON: '{' is invalid after a single JSON value. Expected end of data (line 2, byte 1).",
            await Error(Request() + "\n{}"));

        Assert.Contains("the request has [(no name)]", await Error(Request(name: "null").Replace("\"name\":null,", "")));
        Assert.Contains("Unknown output(s) ['']", await Error(Request(outputs: ""","outputs":[{"name":""}]""")));
        Assert.Equal("An output asked for has 'name' twice.", await Error(Request(outputs: ""","outputs":[{"name":"bogus","name":"logits"}]""")));
        Assert.Equal("An output asked for has 'parameters' twice.", await Error(Request(
            outputs: ""","outputs":[{"name":"logits","parameters":{"binary_data":true},"Parameters":{"binary_data":false}}]""")));
        Assert.Equal("An output's parameters.binary_data is given twice.", await Error(Request(
            outputs: ""","outputs":[{"name":"logits","parameters":{"binary_data":true,"binary_data":false}}]""")));
        Assert.Equal("An output's parameters.binary_data is given twice.", await Error(Request(
            outputs: ""","outputs":[{"name":"logits","parameters":{"binary_data":true,"BINARY_DATA":false}}]""")));

        // The query's version beside the path's: refused unless it is the same one; on the unversioned route it names the version.
        Assert.Equal($"The path names version '{Version}' and the query version '19990101T000000Z': name the version once, in the path.",
            await Error(Request(), $"/v2/models/smoke/versions/{Version}/infer?version=19990101T000000Z"));
        Assert.Equal(HttpStatusCode.OK, (await Client.PostAsync($"/v2/models/smoke/versions/{Version}/infer?version={Version}",
            new StringContent(Request(), Encoding.UTF8, "application/json"))).StatusCode);
        await AssertErrorAsync(await Client.GetAsync($"/v2/models/smoke/versions/{Version}?version=19990101T000000Z"), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Client.GetAsync("/v2/models/smoke?version=19990101T000000Z"), HttpStatusCode.NotFound);
    }

    /// <summary>The protocol names no Content-Type for infer: a body sent as a form's (curl -d) or as text is read as JSON.</summary>
    [Fact]
    public async Task InferTakesAnyContentType()
    {
        var (input, expected) = ProbeRows(1);
        // The shape's numbers as strings, as the service's JSON options read numbers elsewhere.
        var request = $$"""{"inputs":[{"name":"image","shape":["1","3","32","32"],"datatype":"FP32","data":{{JsonSerializer.Serialize(input)}}}],"outputs":[{"name":"logits"}]}""";
        foreach (var contentType in new[] { "application/x-www-form-urlencoded", "text/plain" })
        {
            var body = await Http.JsonAsync(await Client.PostAsync("/v2/models/smoke/infer", new StringContent(request, Encoding.UTF8, contentType)));
            var logits = body.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            for (var i = 0; i < logits.Length; i++) Assert.True(BundleLoader.WithinTolerance(logits[i], expected.Logits[i]), $"{contentType}: logits[{i}]");
        }
    }

    [Fact]
    public async Task InferTakesTheInputAsBinaryTensorData()
    {
        // Triton's binary tensor data extension, which its client and KServe's send by default: the JSON header's length in
        // Inference-Header-Content-Length, the input's raw little-endian FP32 bytes after it (parameters.binary_data_size).
        var (input, expected) = ProbeRows(2);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.AsSpan()).ToArray();
        static byte[] Header(long size, string shape = "[2,3,32,32]", string extra = "") => Encoding.UTF8.GetBytes(
            $$$"""{"inputs":[{"name":"image","shape":{{{shape}}},"datatype":"FP32"{{{extra}}},"parameters":{"binary_data_size":{{{size}}}}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}""");
        async Task<HttpResponseMessage> Post(byte[] json, byte[] data, string? contentType = null, string? jsonLength = "")
        {
            var content = new ByteArrayContent([.. json, .. data]);
            if (contentType is not null) content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/smoke/infer") { Content = content };
            if (jsonLength is not null) request.Headers.Add("Inference-Header-Content-Length", jsonLength == "" ? $"{json.Length}" : jsonLength);
            return await Client.SendAsync(request);
        }

        foreach (var contentType in new[] { null, "application/octet-stream", "application/json" })
        {
            var (body, data) = await BinaryAnswerAsync(await Post(Header(bytes.Length), bytes, contentType));
            var output = body.GetProperty("outputs").EnumerateArray().Single();
            Assert.Equal("logits", output.GetProperty("name").GetString());
            var logits = Floats(data);   // asked for as binary data: all the body after the JSON
            Assert.Equal(expected.Logits.Length, logits.Length);
            for (var i = 0; i < logits.Length; i++) Assert.True(BundleLoader.WithinTolerance(logits[i], expected.Logits[i]), $"{contentType}: logits[{i}]");
        }

        Assert.Contains("after its JSON header", await AssertErrorAsync(await Post(Header(bytes.Length - 4), bytes), HttpStatusCode.BadRequest));
        Assert.Contains("Inference-Header-Content-Length", await AssertErrorAsync(
            await Post(Header(bytes.Length), bytes, jsonLength: null), HttpStatusCode.BadRequest));
        Assert.Contains("Inference-Header-Content-Length", await AssertErrorAsync(
            await Post(Header(bytes.Length), bytes, jsonLength: "99999999"), HttpStatusCode.BadRequest));
        await AssertErrorAsync(await Post(Header(bytes.Length), bytes, jsonLength: "abc"), HttpStatusCode.BadRequest);
        Assert.Contains("its shape needs", await AssertErrorAsync(
            await Post(Header(bytes.Length, shape: "[1,3,32,32]"), bytes), HttpStatusCode.BadRequest));
        Assert.Contains("both 'data'", await AssertErrorAsync(
            await Post(Header(bytes.Length, extra: ",\"data\":[0]"), bytes), HttpStatusCode.BadRequest));
        var notFinite = bytes.ToArray();
        BitConverter.GetBytes(float.NaN).CopyTo(notFinite, 8);
        Assert.Contains("finite", await AssertErrorAsync(await Post(Header(bytes.Length), notFinite), HttpStatusCode.BadRequest));
    }

    /// <summary>
    /// Outputs come as binary data when asked (an output's parameters.binary_data, or the request's
    /// parameters.binary_data_output for every output that does not say otherwise), as Triton's C++ client and
    /// perf_analyzer ask by default: their JSON says binary_data_size instead of data, their values follow the JSON.
    /// </summary>
    [Fact]
    public async Task InferAnswersOutputsAsBinaryDataWhenAsked()
    {
        var (input, expected) = ProbeRows(1);
        var data = JsonSerializer.Serialize(input);
        async Task<HttpResponseMessage> Post(string parameters, string outputs) => await Client.PostAsync("/v2/models/smoke/infer", new StringContent(
            $$$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{{data}}}}]{{{parameters}}}{{{outputs}}}}""", Encoding.UTF8, "application/json"));

        // Every output, by the request's parameter: in the order the JSON lists them, FP32 as 4 bytes, BOOL as 1.
        var (all, bytes) = await BinaryAnswerAsync(await Post(""","parameters":{"binary_data_output":true}""", ""));
        var offset = 0;
        var binaryOutputs = all.GetProperty("outputs").EnumerateArray().ToArray();
        Assert.Equal(5, binaryOutputs.Length);
        foreach (var output in binaryOutputs)
        {
            Assert.False(output.TryGetProperty("data", out _), output.GetProperty("name").GetString());
            var elements = output.GetProperty("shape").EnumerateArray().Aggregate(1L, (product, d) => product * d.GetInt64());
            var size = output.GetProperty("parameters").GetProperty("binary_data_size").GetInt64();
            Assert.Equal(elements * (output.GetProperty("datatype").GetString() == "BOOL" ? 1 : 4), size);
            if (output.GetProperty("name").GetString() == "logits")
            {
                var logits = Floats(bytes.AsSpan(offset, (int)size).ToArray());
                for (var i = 0; i < logits.Length; i++) Assert.True(BundleLoader.WithinTolerance(logits[i], expected.Logits[i]), $"logits[{i}]");
            }
            offset += (int)size;
        }
        Assert.Equal(bytes.Length, offset);

        // An output's own parameter overrides the request's: similarities in JSON, logits as binary data.
        var (mixed, mixedBytes) = await BinaryAnswerAsync(await Post(""","parameters":{"binary_data_output":true}""",
            ""","outputs":[{"name":"logits"},{"name":"similarities","parameters":{"binary_data":false}}]"""));
        var similarities = mixed.GetProperty("outputs")[1];
        Assert.Equal(expected.Similarities.Length, similarities.GetProperty("data").GetArrayLength());
        Assert.Equal(4 * expected.Logits.Length, mixedBytes.Length);

        // Nothing asked: JSON alone, as before.
        var plain = await Client.PostAsync("/v2/models/smoke/infer", new StringContent(
            $$$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{{data}}}}],"outputs":[{"name":"logits","parameters":{"binary_data":false}}]}""", Encoding.UTF8, "application/json"));
        Assert.False(plain.Headers.Contains("Inference-Header-Content-Length"));
        Assert.Equal(expected.Logits.Length, (await Http.JsonAsync(plain)).GetProperty("outputs")[0].GetProperty("data").GetArrayLength());

        Assert.Contains("binary_data must be true or false", await AssertErrorAsync(
            await Post("", ""","outputs":[{"name":"logits","parameters":{"binary_data":"yes"}}]"""), HttpStatusCode.BadRequest));
        Assert.Contains("binary_data_output must be true or false", await AssertErrorAsync(
            await Post(""","parameters":{"binary_data_output":1}""", ""), HttpStatusCode.BadRequest));
    }

    /// <summary>A binary tensor data answer: its JSON part (Inference-Header-Content-Length long) and the bytes after it.</summary>
    private static async Task<(JsonElement Json, byte[] Data)> BinaryAnswerAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, Encoding.UTF8.GetString(body));
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(body.Length, response.Content.Headers.ContentLength);
        var jsonLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single(), System.Globalization.CultureInfo.InvariantCulture);
        return (JsonDocument.Parse(body.AsMemory(0, jsonLength)).RootElement, body[jsonLength..]);
    }

    private static float[] Floats(byte[] littleEndian) =>
        Enumerable.Range(0, littleEndian.Length / 4).Select(i => System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(littleEndian.AsSpan(4 * i))).ToArray();

    [Fact]
    public async Task InferReadsDataWhereverItStandsAndRefusesMoreThanTheModelCanTake()
    {
        var (input, expected) = ProbeRows(1);
        async Task<HttpResponseMessage> Post(string json) =>
            await Client.PostAsync("/v2/models/smoke/infer", new StringContent(json, Encoding.UTF8, "application/json"));
        var data = JsonSerializer.Serialize(input);

        // `data` before `shape` and `name`, an object of parameters and an unknown member before them: all read.
        var body = await Http.JsonAsync(await Post(
            $$$"""{"parameters":{"x":[1,{"y":2}]},"future":null,"inputs":[{"data":{{{data}}},"shape":[1,3,32,32],"datatype":"FP32","name":"image","parameters":{}}],"id":"a"}"""));
        Assert.Equal("a", body.GetProperty("id").GetString());
        var logits = body.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("name").GetString() == "logits")
            .GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        for (var i = 0; i < logits.Length; i++) Assert.True(BundleLoader.WithinTolerance(logits[i], expected.Logits[i]));

        // A UTF-8 byte order mark before the JSON is skipped.
        var marked = new ByteArrayContent([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(
            $$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{data}}}],"outputs":[{"name":"logits"}]}""")]);
        var markedLogits = (await Http.JsonAsync(await Client.PostAsync("/v2/models/smoke/infer", marked))).GetProperty("outputs")[0]
            .GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        for (var i = 0; i < markedLogits.Length; i++) Assert.True(BundleLoader.WithinTolerance(markedLogits[i], expected.Logits[i]));

        // Member names in any case, a shape in strings, `outputs` null or empty (all outputs), as the service's JSON options read them.
        var relaxed = await Http.JsonAsync(await Post(
            $$"""{"Inputs":[{"Name":"image","Shape":["1","3","32","32"],"DataType":"FP32","Data":{{data}}}],"outputs":null}"""));
        Assert.Equal(5, relaxed.GetProperty("outputs").GetArrayLength());
        var noneNamed = await Http.JsonAsync(await Post(
            $$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{data}}}],"outputs":[]}"""));
        Assert.Equal(5, noneNamed.GetProperty("outputs").GetArrayLength());

        // More values than the shape's: refused as soon as they are counted.
        var tooMany = "[" + string.Join(",", Enumerable.Repeat("0", 2 * 3 * 32 * 32)) + "]";
        var error = await AssertErrorAsync(await Post($$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{tooMany}}}]}"""),
            HttpStatusCode.BadRequest);
        Assert.Contains($"more values than its shape's {3 * 32 * 32}", error);

        // Anything after the request object, and text that is not valid (a lone surrogate): 400, not 200 or 500.
        var request = $$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{data}}}]}""";
        Assert.StartsWith("The body is not JSON: '{' is invalid after a single JSON value", await AssertErrorAsync(await Post(request + "{}"), HttpStatusCode.BadRequest));
        await AssertErrorAsync(await Post(request + "garbage"), HttpStatusCode.BadRequest);
        await AssertErrorAsync(await Post(request[..^1] + ",\"id\":\"\\uD800\"}"), HttpStatusCode.BadRequest);

        // The largest request, as Python's json.dumps(request, indent=4) writes it: nested, one 17-digit double per line.
        var rows = Enumerable.Range(0, 32).Select(n => Enumerable.Range(0, 3).Select(c => Enumerable.Range(0, 32).Select(y =>
            Enumerable.Range(0, 32).Select(x => 0.12345678901234567 + (n + c + y + x) % 7 * 0.1).ToArray()).ToArray()).ToArray()).ToArray();
        var pretty = JsonSerializer.Serialize(new { inputs = new[] { new { name = "image", shape = new[] { 32, 3, 32, 32 }, datatype = "FP32", data = rows } } },
            new JsonSerializerOptions { WriteIndented = true, IndentSize = 4 });
        var largest = await Post(pretty);
        Assert.True(largest.StatusCode == HttpStatusCode.OK, $"{pretty.Length} bytes: {await largest.Content.ReadAsStringAsync()}");

        // A body longer than the model's largest request can need (64 bytes per value, and 64 KiB): 413 before it is parsed.
        var most = 64L * 3 * 32 * 32 * 32 + 64 * 1024;
        var padded = $$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":{{data}}}]}""" + new string(' ', (int)most);
        error = await AssertErrorAsync(await Post(padded), HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains($"{most} bytes", error);
    }

    [Fact]
    public async Task InferBodiesAreHeldInTheBufferBudget()
    {
        // A budget of 20,000 bytes: 3,072 values written long (12 bytes each) need 37 KB, more than it holds.
        await using var factory = bundles.SmokeService(("Images:MaxBytes", "20000"), ("Images:MaxBufferedBytes", "20000"));
        var client = factory.CreateClient();
        string Tensor(string value) => $$"""{"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"FP32","data":[{{string.Join(",", Enumerable.Repeat(value, 3 * 32 * 32))}}]}]}""";
        var refused = await client.PostAsync("/v2/models/smoke/infer", new StringContent(Tensor("0.123456789"), Encoding.UTF8, "application/json"));
        Assert.Contains("Images:MaxBufferedBytes", await AssertErrorAsync(refused, HttpStatusCode.RequestEntityTooLarge));
        var served = await client.PostAsync("/v2/models/smoke/infer", new StringContent(Tensor("0.5"), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(0, factory.Services.GetRequiredService<BufferBudget>().Held);
    }

    [Fact]
    public async Task AFaultUnderV2IsTheProtocolsErrorWithATraceIdAndAProblemElsewhere()
    {
        await using var plain = bundles.SmokeService();
        await using var service = plain.WithWebHostBuilder(host =>
            host.ConfigureServices(services => services.AddSingleton<IStartupFilter>(new FaultWhereNoEndpointMatches())));
        var client = service.CreateClient();

        var error = await AssertErrorAsync(await client.PostAsync("/v2/models/smoke/fault", new StringContent("{}")), HttpStatusCode.InternalServerError);
        Assert.Contains("Trace id: ", error);
        Assert.DoesNotContain(FaultWhereNoEndpointMatches.Message, error);   // the exception's text is for the log, not the caller
        var traceId = error[(error.IndexOf("Trace id: ", StringComparison.Ordinal) + 10)..].TrimEnd('.');
        await plain.Logs.WaitForAsync(line => line.StartsWith("Unhandled exception", StringComparison.Ordinal) && line.Contains("/v2/models/smoke/fault") && line.Contains(traceId),
            onTimeout: () => string.Join("\n", plain.Logs.Entries.Select(e => e.Message)));

        // The service's own problem type, as docs/API.md lists it (it was the framework's RFC 9110 link).
        var problem = await Http.ProblemAsync(await client.PostAsync("/fault", new StringContent("{}")), HttpStatusCode.InternalServerError, "internal-error");
        Assert.Equal("urn:protopnet:problem:internal-error", problem.GetProperty("type").GetString());
        Assert.DoesNotContain(FaultWhereNoEndpointMatches.Message, problem.GetRawText());

        // Both faults are counted as the 500s they were answered as, and the request log says each at Error level.
        var requests = (await client.GetStringAsync("/metrics")).Split('\n')
            .Where(line => line.StartsWith("protopnet_requests_total{", StringComparison.Ordinal) && line.Contains("endpoint=\"unmatched\"", StringComparison.Ordinal))
            .ToArray();
        Assert.Equal(["2"], requests.Where(line => line.Contains("status=\"500\"", StringComparison.Ordinal)).Select(line => line.Split(' ')[^1]));
        Assert.Single(requests);
        foreach (var path in new[] { "POST /v2/models/smoke/fault responded 500", "POST /fault responded 500" })
        {
            var line = await plain.Logs.WaitForAsync(message => message.Contains(path, StringComparison.Ordinal));
            Assert.Contains(plain.Logs.Entries, entry => entry.Message == line && entry.Level == LogLevel.Error);
        }
    }

    /// <summary>Throws for any request no endpoint answers: a fault inside the service's pipeline, after its error handling.</summary>
    private sealed class FaultWhereNoEndpointMatches : IStartupFilter
    {
        public const string Message = "a fault planted by the test";

        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            next(app);
            app.Run(_ => throw new InvalidOperationException(Message));
        };
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ATensorRunFetchesTheSimilarityMapsOnlyWhenTheCallerReadsThem(bool withMaps)
    {
        // v2 callers asking for logits, similarities or unfamiliarity do not pay for rows x M x H x W map values.
        var classification = bundles.Service.Services.GetRequiredService<ClassificationService>();
        var (input, expected) = ProbeRows(2);
        using var run = await classification.RunTensorAsync(new DefaultHttpContext(), new ModelSelector("smoke"), (bundle, maxRows) =>
        {
            var buffer = bundle.Session.RentBuffer(2);
            input.CopyTo(buffer, 0);
            return new TensorInput(buffer, 2, withMaps);
        }, CancellationToken.None);
        Assert.Equal(withMaps, run.Outputs.HasMaps);
        var logits = run.Outputs.LogitsOf(run.FirstRow + 1).ToArray();
        for (var i = 0; i < logits.Length; i++) Assert.True(BundleLoader.WithinTolerance(logits[i], expected.Logits[logits.Length + i]), $"logits[{i}]");
    }

    /// <summary>
    /// Two v2 requests that share a network run (a batch of two, the second at row 1 of the run's outputs) each get
    /// their own image's outputs, every one of them, the unfamiliarity made from the similarities included: the same
    /// as each answered alone.
    /// </summary>
    [Fact]
    public async Task RequestsThatShareARunEachGetTheirOwnRowsOutputs()
    {
        var (input, _) = ProbeRows(2);
        var elements = input.Length / 2;
        var requests = Enumerable.Range(0, 2).Select(r => JsonSerializer.Serialize(new
        {
            inputs = new[] { new { name = "image", shape = new[] { 1, 3, 32, 32 }, datatype = "FP32", data = input.AsSpan(r * elements, elements).ToArray() } },
        })).ToArray();
        Dictionary<string, float[]> OutputsOf(JsonElement body) => body.GetProperty("outputs").EnumerateArray().ToDictionary(
            o => o.GetProperty("name").GetString()!,
            o => o.GetProperty("data").EnumerateArray().Select(v => v.ValueKind == JsonValueKind.True ? 1f : v.ValueKind == JsonValueKind.False ? 0f : v.GetSingle()).ToArray());
        var alone = new List<Dictionary<string, float[]>>();
        foreach (var request in requests)
        {
            alone.Add(OutputsOf(await Http.JsonAsync(await Client.PostAsync("/v2/models/smoke/infer", new StringContent(request, Encoding.UTF8, "application/json")))));
        }

        // One run at a time, batches of two, and a first image waits up to 10 s for a second: the two share a run.
        await using var factory = bundles.SmokeService(("Batching:Strategy", "fixed"), ("Batching:MaxBatchSize", "2"),
            ("Batching:MaxConcurrentRuns", "1"), ("Batching:MaxQueueDelayMs", "10000"));
        var client = factory.CreateClient();
        var answers = await Task.WhenAll(requests.Select(async request =>
            OutputsOf(await Http.JsonAsync(await client.PostAsync("/v2/models/smoke/infer", new StringContent(request, Encoding.UTF8, "application/json"))))))
            .WaitAsync(TimeSpan.FromSeconds(60));

        var metrics = await PrometheusText.ScrapeAsync(client);
        Assert.Equal((1, 2), (PrometheusText.Sum(metrics, "protopnet_batch_size_count", "model=\"smoke\""), PrometheusText.Sum(metrics, "protopnet_batch_size_sum", "model=\"smoke\"")));
        for (var r = 0; r < 2; r++)
        {
            Assert.Equal(alone[r].Keys.Order(), answers[r].Keys.Order());
            foreach (var (name, expected) in alone[r])
            {
                var actual = answers[r][name];
                Assert.Equal(expected.Length, actual.Length);
                for (var i = 0; i < expected.Length; i++) Assert.True(BundleLoader.WithinTolerance(actual[i], expected[i]), $"request {r}, {name}[{i}]: {actual[i]} vs {expected[i]}");
            }
        }
    }

    private static Task<string> AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status) => Http.OpenInferenceErrorAsync(response, status);

    /// <summary>Rows of varied pixels and what the smoke bundle computes for them in process.</summary>
    private (float[] Input, (float[] Logits, float[] Similarities, float[] Maps) Expected) ProbeRows(int rows)
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var input = new float[rows * bundle.Session.ImageElementCount];
        for (var i = 0; i < input.Length; i++) input[i] = (i * 7919 % 1000) / 999f;
        using var outputs = bundle.Session.Run(input, rows);
        var logits = Enumerable.Range(0, rows).SelectMany(r => outputs.LogitsOf(r).ToArray()).ToArray();
        var similarities = Enumerable.Range(0, rows).SelectMany(r => outputs.SimilaritiesOf(r).ToArray()).ToArray();
        var maps = Enumerable.Range(0, rows)
            .SelectMany(r => Enumerable.Range(0, outputs.PrototypeCount).SelectMany(j => outputs.MapOf(r, j).ToArray())).ToArray();
        return (input, (logits, similarities, maps));
    }
}
