using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using ProtoPNet.Inference.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Web.Tests;

/// <summary>POST /classify/card through the real service: a PNG that decodes, has the documented size and shows the input.</summary>
[Collection(WebCollection.Name)]
public sealed class ExplanationCardTests(WebFixture fixture)
{
    private static MultipartFormDataContent Upload(byte[] bytes, string mediaType = "image/png", string fileName = "image.png")
    {
        var file = new ByteArrayContent(bytes);
        file.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        return new MultipartFormDataContent { { file, "image", fileName } };
    }

    private async Task<Image<Rgb24>> CardAsync(string imagePath, int topPrototypes)
    {
        using var content = Upload(await File.ReadAllBytesAsync(imagePath));
        using var response = await fixture.Http.PostAsync($"classify/card?model={fixture.ModelName}&topPrototypes={topPrototypes}", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        var png = await response.Content.ReadAsByteArrayAsync();
        return Image.Load<Rgb24>(png);
    }

    [Fact]
    public async Task The_card_decodes_has_the_documented_size_and_differs_between_inputs()
    {
        // Two training images of different classes.
        var other = Enumerable.Range(1, 20).First(j => fixture.PrototypeClass(j) != fixture.PrototypeClass(0));
        using var first = await CardAsync(fixture.SourceImage(0), topPrototypes: 3);
        using var second = await CardAsync(fixture.SourceImage(other), topPrototypes: 3);

        // 760 wide; 344 px of header, input and top classes, 140 per prototype row, 60 of footer.
        Assert.Equal(760, first.Width);
        Assert.Equal(344 + 3 * 140 + 60, first.Height);
        Assert.Equal(ExplanationCard.HeightFor(3), first.Height);
        Assert.Equal(first.Size(), second.Size());

        var differing = CountDifferingPixels(first, second);
        Assert.True(differing > first.Width * first.Height / 50, $"only {differing} pixels differ between the cards of two different images");

        // Fewer rows, shorter card.
        using var single = await CardAsync(fixture.SourceImage(0), topPrototypes: 1);
        Assert.Equal(344 + 140 + 60, single.Height);
        await first.SaveAsPngAsync(Path.Combine(WebFixture.ArtifactsDirectory, "card.png"));
    }

    [Fact]
    public async Task The_card_shows_the_uploaded_image_and_the_boxes_where_the_service_put_them()
    {
        var path = fixture.SourceImage(0);
        using var card = await CardAsync(path, topPrototypes: 1);
        using var uploaded = Image.Load<Rgb24>(path);
        using var content = Upload(await File.ReadAllBytesAsync(path));
        using var response = await fixture.Http.PostAsync($"classify?model={fixture.ModelName}&topPrototypes=1", content);
        var result = await response.Content.ReadFromJsonAsync<JsonElement>();
        var box = result.GetProperty("explanation").GetProperty("prototypes")[0].GetProperty("box");

        // The upload is drawn 240 px wide at (16, 84), enlarged by whole pixels (nearest neighbour).
        var scale = 240.0 / Math.Max(uploaded.Width, uploaded.Height);
        var placedX = 16 + (240 - (int)Math.Round(uploaded.Width * scale)) / 2;
        var placedY = 84 + (240 - (int)Math.Round(uploaded.Height * scale)) / 2;
        var boxLeft = placedX + (int)Math.Floor(box.GetProperty("x").GetInt32() * scale);
        var boxTop = placedY + (int)Math.Floor(box.GetProperty("y").GetInt32() * scale);
        var boxBottom = placedY + (int)Math.Ceiling((box.GetProperty("y").GetInt32() + box.GetProperty("height").GetInt32()) * scale);
        // The first prototype's box is drawn in the first row colour; its left edge runs down the box.
        var colour = ExplanationCard.RowColours[0];
        var mid = (boxTop + boxBottom) / 2;
        Assert.Equal(colour, card[boxLeft, mid]);

        // Inside the box, away from its 2 px outline and its number tag, the card shows the uploaded image's own pixels.
        var (ux, uy) = (box.GetProperty("x").GetInt32() + box.GetProperty("width").GetInt32() / 2,
                        box.GetProperty("y").GetInt32() + box.GetProperty("height").GetInt32() / 2);
        Assert.True(box.GetProperty("width").GetInt32() * scale >= 24 && box.GetProperty("height").GetInt32() * scale >= 24,
            "the box is too small on the card to look inside it");
        var cx = placedX + (int)((ux + 0.5) * scale);
        var cy = placedY + (int)((uy + 0.5) * scale);
        Assert.Equal(uploaded[ux, uy], card[cx, cy]);
    }

    [Fact]
    public async Task Bad_input_gets_the_same_problem_responses_as_classify()
    {
        using (var text = Upload("not an image"u8.ToArray(), "text/plain", "notes.txt"))
        using (var response = await fixture.Http.PostAsync("classify/card", text))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("urn:protopnet:problem:image-not-decodable", problem.GetProperty("type").GetString());
        }
        using (var raw = new StringContent("hello", System.Text.Encoding.UTF8, "text/plain"))
        using (var response = await fixture.Http.PostAsync("classify/card", raw))
        {
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        }
        var png = await File.ReadAllBytesAsync(fixture.SourceImage(0));
        using (var content = Upload(png))
        using (var response = await fixture.Http.PostAsync("classify/card?model=no-such-model", content))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
        using (var content = Upload(png))
        using (var response = await fixture.Http.PostAsync($"classify/card?model={fixture.ModelName}&topPrototypes=11", content))
        {
            // The card's height grows with its rows, so their number is bounded.
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Contains("at most 10", problem.GetProperty("detail").GetString());
        }
    }

    [Fact]
    public async Task The_card_is_documented_in_the_OpenAPI_document()
    {
        using var document = JsonDocument.Parse(await fixture.Http.GetStringAsync("swagger/v1/swagger.json"));
        var operation = document.RootElement.GetProperty("paths").GetProperty("/classify/card").GetProperty("post");
        Assert.Equal("ClassifyCard", operation.GetProperty("operationId").GetString());
        Assert.False(string.IsNullOrWhiteSpace(operation.GetProperty("summary").GetString()));
        Assert.Contains("curl", operation.GetProperty("description").GetString());
        Assert.True(operation.GetProperty("requestBody").GetProperty("content").TryGetProperty("multipart/form-data", out _));
        var responses = operation.GetProperty("responses");
        Assert.True(responses.GetProperty("200").GetProperty("content").TryGetProperty("image/png", out _));
        foreach (var status in new[] { "400", "404", "413", "415", "422", "503" })
        {
            var problem = responses.GetProperty(status).GetProperty("content").GetProperty("application/problem+json");
            Assert.True(problem.GetProperty("examples").EnumerateObject().Any(), $"{status} has no example");
        }
        Assert.Contains(operation.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "topPrototypes");
    }

    private static int CountDifferingPixels(Image<Rgb24> a, Image<Rgb24> b)
    {
        var count = 0;
        for (var y = 0; y < a.Height; y++)
        {
            for (var x = 0; x < a.Width; x++)
            {
                if (!a[x, y].Equals(b[x, y])) count++;
            }
        }
        return count;
    }
}
