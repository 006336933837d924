using System.Net;
using System.Net.Sockets;
using System.Net.Http.Headers;
using System.Text.Json;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ProtoPNet.Service.Tests.Infrastructure;

public static class Http
{
    public static MultipartFormDataContent Multipart(params (string Field, byte[] Bytes, string ContentType)[] files)
    {
        var content = new MultipartFormDataContent();
        var i = 0;
        foreach (var (field, bytes, contentType) in files)
        {
            var part = new ByteArrayContent(bytes);
            part.Headers.ContentType = new MediaTypeHeaderValue(contentType);
            content.Add(part, field, $"upload-{i++}");
        }
        return content;
    }

    public static MultipartFormDataContent Image(byte[] png) => Multipart(("image", png, "image/png"));

    public static ByteArrayContent Raw(byte[] bytes, string contentType)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        return content;
    }

    public static async Task<JsonElement> JsonAsync(HttpResponseMessage response, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>
    /// Asserts the Open Inference Protocol's error: the status, content type <c>application/json</c> exactly (no charset:
    /// its clients compare it whole) and <c>{"error": "..."}</c>; returns the message.
    /// </summary>
    public static async Task<string> OpenInferenceErrorAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.ToString());
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error").GetString();
        Assert.False(string.IsNullOrWhiteSpace(error), text);
        return error!;
    }

    /// <summary>Asserts an RFC 7807 body: problem+json, the status, a type, a human detail and the trace id.</summary>
    public static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode status, string? typeSuffix = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("type").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("detail").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("traceId").GetString()));
        if (typeSuffix is not null) Assert.EndsWith(typeSuffix, problem.GetProperty("type").GetString());
        return problem;
    }

    public static byte[] Encode(Image image, IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    /// <summary>A prototype's source training image of a bundle, optionally resized (bicubic) to another size.</summary>
    public static byte[] BundleImage(string bundle, int prototype, int? width = null, int? height = null)
    {
        var path = Path.Combine(bundle, "prototypes", prototype.ToString(System.Globalization.CultureInfo.InvariantCulture), "source.png");
        if (width is null) return File.ReadAllBytes(path);
        using var image = SixLabors.ImageSharp.Image.Load<Rgb24>(path);
        image.Mutate(context => context.Resize(width.Value, height!.Value, KnownResamplers.Bicubic));
        return Encode(image, new PngEncoder());
    }

    /// <summary>
    /// A 2000x2000 PNG of noise: its heatmaps (drawn at 4 megapixels, incompressible) make an answer of megabytes each,
    /// drawn for seconds: a request that is surely in progress for a while.
    /// </summary>
    public static byte[] NoisePhotoPng()
    {
        var random = new Random(5);
        using var photo = new Image<Rgb24>(2000, 2000);
        photo.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++) random.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.GetRowSpan(y)));
        });
        return Encode(photo, new PngEncoder());
    }

    /// <summary>Sends <paramref name="request"/> as it is written (one HTTP/1.1 request, its connection closed after it) and returns the whole answer.</summary>
    public static async Task<string> SendWrittenAsync(int port, string request)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", port);
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(request));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var answer = new MemoryStream();
        var buffer = new byte[8192];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) answer.Write(buffer, 0, read);
        return System.Text.Encoding.UTF8.GetString(answer.ToArray());
    }

    /// <summary>
    /// Sends <see cref="NoisePhotoPng"/> to /classify with heatmaps on a socket of its own (an answer of megabytes, far
    /// beyond the sockets' buffers) and reads the answer's first bytes, no more; returns the connected socket.
    /// </summary>
    public static async Task<Socket> StartLargeHeatmapAnswerAsync(int port)
    {
        var png = NoisePhotoPng();
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", port);
        var head = $"POST /classify?heatmaps=png&topPrototypes=8 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: {png.Length}\r\n\r\n";
        await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes(head));
        await socket.SendAsync(png);
        var start = new byte[40];
        var read = 0;
        while (read < start.Length) read += await socket.ReceiveAsync(start.AsMemory(read), SocketFlags.None);
        Assert.StartsWith("HTTP/1.1 200", System.Text.Encoding.ASCII.GetString(start));
        return socket;
    }
}
