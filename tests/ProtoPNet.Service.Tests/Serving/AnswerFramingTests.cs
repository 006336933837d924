using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// Short classify answers without heatmaps are sent whole, with a Content-Length (one write to the socket); answers with
/// heatmaps, and long ones, stream out chunked. Checked against the service as started, on Kestrel.
/// </summary>
[Collection(BundlesCollection.Name)]
public class AnswerFramingTests(TrainerBundles bundles)
{
    [Fact]
    public async Task SmallAnswersCarryAContentLengthAndHeatmapAnswersStream()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"));
        using var image = new SixLabors.ImageSharp.Image<Rgb24>(40, 30, new Rgb24(30, 160, 90));
        var png = Http.Encode(image, new PngEncoder());

        foreach (var path in new[] { "/classify", "/classify?topPrototypes=10&verify=true" })
        {
            using var whole = await PostAsync(service.Client, path, Http.Raw(png, "image/png"));
            // The headers as sent: the body is not read yet, so HttpClient has computed no length of its own.
            Assert.NotEqual(true, whole.Headers.TransferEncodingChunked);
            var length = whole.Content.Headers.ContentLength;
            Assert.Equal("application/json; charset=utf-8", whole.Content.Headers.ContentType?.ToString());
            var body = await whole.Content.ReadAsByteArrayAsync();
            Assert.Equal(body.Length, length);
            Assert.Equal(40, JsonDocument.Parse(body).RootElement.GetProperty("image").GetProperty("width").GetInt32());
        }

        using var batch = await PostAsync(service.Client, "/classify/batch", Http.Multipart(("image", png, "image/png"), ("image", png, "image/png")));
        var batchLength = batch.Content.Headers.ContentLength;
        var batchBody = await batch.Content.ReadAsByteArrayAsync();
        Assert.Equal(batchBody.Length, batchLength);
        Assert.Equal(2, JsonDocument.Parse(batchBody).RootElement.GetProperty("results").GetArrayLength());

        // 11 images listing all 8 prototypes and 4 classes each: 132 entries, more than a whole answer may hold.
        var eleven = Enumerable.Repeat(("image", png, "image/png"), 11).ToArray();
        Assert.True(11 * (8 + 4) > ProtoPNet.Service.Apis.ClassifyApi.WholeAnswerMaxEntries);
        using var longBatch = await PostAsync(service.Client, "/classify/batch?topPrototypes=8&topClasses=4", Http.Multipart(eleven));
        Assert.True(longBatch.Headers.TransferEncodingChunked, "a long batch answer should stream out chunked");
        Assert.Equal(11, (await Http.JsonAsync(longBatch)).GetProperty("results").GetArrayLength());

        using var streamed = await PostAsync(service.Client, "/classify?heatmaps=png", Http.Raw(png, "image/png"));
        Assert.True(streamed.Headers.TransferEncodingChunked, "an answer with heatmaps should stream out chunked");
        Assert.Null(streamed.Content.Headers.ContentLength);
        var heatmap = (await Http.JsonAsync(streamed)).GetProperty("explanation").GetProperty("prototypes")[0].GetProperty("heatmap").GetString();
        Assert.StartsWith("data:image/png;base64,", heatmap);
    }

    /// <summary>An Open Inference Protocol answer is sent whole up to a few thousand values, and streamed beyond.</summary>
    [Fact]
    public async Task OpenInferenceAnswersAreWholeWhenSmallAndStreamedWhenLarge()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"));

        // The smoke model: 8 prototypes with 8x8 maps, 512 values an image; 4 images stay within the limit, 8 reach it
        // exactly (still whole), 9 go past it.
        foreach (var (images, whole) in new[] { (4, true), (8, true), (9, false) })
        {
            Assert.Equal(whole, images * 8 * 8 * 8 <= ProtoPNet.Service.Apis.V2Api.WholeAnswerMaxValues);
            var zeros = string.Join(",", Enumerable.Repeat("0", images * 3 * 32 * 32));
            var request = $$"""{"inputs":[{"name":"image","shape":[{{images}},3,32,32],"datatype":"FP32","data":[{{zeros}}]}],"outputs":[{"name":"similarity_maps"}]}""";
            using var answer = await PostAsync(service.Client, "/v2/models/smoke/infer", new StringContent(request, System.Text.Encoding.UTF8, "application/json"));
            var length = answer.Content.Headers.ContentLength;
            var chunked = answer.Headers.TransferEncodingChunked == true;
            var body = await answer.Content.ReadAsByteArrayAsync();
            Assert.Equal(!whole, chunked);
            Assert.Equal(whole ? body.Length : null, length);
            var output = JsonDocument.Parse(body).RootElement.GetProperty("outputs")[0];
            Assert.Equal(images * 8 * 8 * 8, output.GetProperty("data").GetArrayLength());
        }
    }

    /// <summary>A POST whose answer's headers are returned before its body is read.</summary>
    private static async Task<HttpResponseMessage> PostAsync(HttpClient client, string path, HttpContent content)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        return response;
    }
}
