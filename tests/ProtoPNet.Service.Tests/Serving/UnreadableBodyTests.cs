using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// A body that stops arriving is answered 408 <c>request-timeout</c>, and one whose chunked framing is broken 400
/// <c>request-body-unreadable</c>, on every endpoint that reads a body (the v2 ones as <c>{"error": "..."}</c>); a client
/// that closes its side mid-body is logged 499 (it left); a training job over 1 MiB is 413 <c>request-too-large</c>. Never a 500. Checked on Kestrel, whose data-rate limit (240 bytes a
/// second after a 5-second grace) and framing the test server does not have.
/// </summary>
[Collection(BundlesCollection.Name)]
public class UnreadableBodyTests(TrainerBundles bundles)
{
    private const string AdminKey = "unreadable-body-admin-key";

    private static readonly (string Path, string ContentType)[] Endpoints =
    [
        ("/classify", "image/png"),
        ("/classify", "multipart/form-data; boundary=b"),
        ("/classify/batch", "multipart/form-data; boundary=b"),
        ("/classify/card", "image/png"),
        ("/v2/models/smoke/infer", "application/json"),
        ("/training/jobs", "application/json"),
    ];

    [Fact]
    public async Task BodiesThatStallBreakOrEndEarlyAre4xxOnEveryEndpointThatReadsOne()
    {
        await using var endpoints = await EveryBodyEndpoint.StartAsync(bundles);
        var service = endpoints.Service;
        var port = service.Client.BaseAddress!.Port;
        // All at once: each stalled body waits out the same grace period.
        var stalled = Endpoints.Select(e => SendAsync(port, e.Path, e.ContentType, Body.Stalled)).ToArray();
        var broken = Endpoints.Select(e => SendAsync(port, e.Path, e.ContentType, Body.BrokenChunk)).ToArray();
        var overflowing = Endpoints.Select(e => SendAsync(port, e.Path, e.ContentType, Body.OverflowingChunk)).ToArray();
        var closed = Endpoints.Select(e => SendAsync(port, e.Path, e.ContentType, Body.ClosedEarly)).ToArray();
        await Task.WhenAll(stalled.Concat(broken).Concat(overflowing).Concat(closed));

        for (var i = 0; i < Endpoints.Length; i++)
        {
            var (path, contentType) = Endpoints[i];
            AssertError(await stalled[i], 408, "request-timeout", path, contentType);
            AssertError(await broken[i], 400, "request-body-unreadable", path, contentType);
            AssertError(await overflowing[i], 400, "request-body-unreadable", path, contentType);
        }
        // Every request is logged with a 4xx, and those whose client closed its side mid-body with 499, the client left:
        // Kestrel closes the connection then (they were 400 or 499 by timing, as its abort token was cancelled late).
        foreach (var path in Endpoints.Select(e => e.Path).Distinct())
        {
            var requests = Endpoints.Count(e => e.Path == path);
            string[] Logged() => service.Output.Where(line => line.Contains($"POST {path} responded ", StringComparison.Ordinal)).ToArray();
            await Eventually.TrueAsync(() => Logged().Length == 4 * requests,
                () => $"{4 * requests} requests to {path} should be logged; the log says:\n" + string.Join('\n', service.Output.Where(l => l.Contains(" responded ", StringComparison.Ordinal))));
            Assert.All(Logged(), line => Assert.Matches($@"POST {Regex.Escape(path)} responded 4\d\d ", line));
            Assert.Equal(requests, Logged().Count(line => line.Contains($"POST {path} responded 499 ", StringComparison.Ordinal)));
        }
        // A training job that declares more than the 1 MiB limit of bodies that are not uploads: refused once the
        // endpoint starts reading it (the rest is never sent; a client still sending meets a closed connection).
        AssertError(await SendAsync(port, "/training/jobs", "application/json", Body.DeclaredTooLarge), 413, "request-too-large",
            "/training/jobs", "application/json");
        Assert.DoesNotContain(service.Output, line => line.Contains("responded 500", StringComparison.Ordinal));
        // The service goes on serving.
        Assert.Equal(System.Net.HttpStatusCode.OK, (await service.Client.GetAsync("/health/ready")).StatusCode);
    }

    /// <summary>
    /// A body in a transfer coding beside chunked ("gzip, chunked"): Kestrel takes its chunks and passes the gzip over, so
    /// the endpoint would read compressed bytes as an image or as JSON. Refused 415 as a content coding is, on every
    /// endpoint that reads a body; chunked alone is read.
    /// </summary>
    [Fact]
    public async Task ABodyInATransferCodingOtherThanChunkedIs415OnEveryEndpointThatReadsOne()
    {
        await using var endpoints = await EveryBodyEndpoint.StartAsync(bundles);
        var port = endpoints.Service.Client.BaseAddress!.Port;
        foreach (var (path, contentType) in Endpoints)
        {
            var answer = await SendAsync(port, path, contentType, Body.GzipChunked);
            AssertError(answer, 415, "unsupported-media-type", path, contentType);
            Assert.Contains("Transfer-Encoding 'gzip, chunked' is not accepted", answer.Body);
        }
        // Chunked alone is read, whatever its case and spacing, and an empty element of the list is no coding.
        foreach (var body in new[] { Body.Chunked, Body.ChunkedListed })
        {
            var chunked = await SendAsync(port, "/v2/models/smoke/infer", "application/json", body);
            Assert.True(chunked.Status == 400 && chunked.Body.Contains("The request has no 'inputs'.", StringComparison.Ordinal), $"{body}: {chunked.Status} {chunked.Body}");
        }
    }

    /// <summary>
    /// A client that gives up mid-upload and resets the connection (a killed process, a proxy's timeout): logged and
    /// counted 499 on every endpoint that reads a body. The reset surfaces from the body's read before Kestrel aborts the
    /// request, and was a 500 with two error lines and a stack trace (an error alert for a client's doing), or a 400.
    /// </summary>
    [Fact]
    public async Task AClientThatResetsItsConnectionMidUploadIsLogged499OnEveryEndpoint()
    {
        await using var endpoints = await EveryBodyEndpoint.StartAsync(bundles);
        var service = endpoints.Service;
        foreach (var (path, contentType) in Endpoints)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync("127.0.0.1", service.Client.BaseAddress!.Port);
            await socket.SendAsync(Encoding.ASCII.GetBytes($"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {contentType}\r\n" +
                $"Content-Length: 100000\r\nX-Api-Key: {AdminKey}\r\n\r\n0123456789"));
            // Until the endpoint waits for the rest of the body (its buffer hold is taken as it starts reading).
            await Task.Delay(300);
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
            await Eventually.TrueAsync(() => service.Output.Any(line => line.Contains($"POST {path} responded ", StringComparison.Ordinal)),
                () => string.Join('\n', service.Output));
            Assert.All(service.Output.Where(line => line.Contains($"POST {path} responded ", StringComparison.Ordinal)),
                line => Assert.Contains($"POST {path} responded 499 ", line));
        }
        Assert.DoesNotContain(service.Output, line => line.Contains("ERR", StringComparison.Ordinal) || line.Contains("Exception", StringComparison.Ordinal));
        var metrics = await service.Client.GetStringAsync("/metrics");
        Assert.DoesNotContain("status=\"500\"", metrics);
        Assert.DoesNotContain("status=\"400\"", metrics);
    }

    /// <summary>
    /// A client that reads the start of a large answer (heatmaps of a 2000x2000 photo, megabytes) and then resets the
    /// connection: counted and logged as 499, not as a 500 error of the service's.
    /// </summary>
    [Fact]
    public async Task AClientThatLeavesDuringALargeAnswerIsCounted499AndLoggedAsNoError()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"));
        using (var socket = await Http.StartLargeHeatmapAnswerAsync(service.Client.BaseAddress!.Port))
        {
            socket.LingerState = new LingerOption(true, 0);   // a reset, as a client that gives up
        }

        await service.WaitForLineAsync("POST /classify responded ");
        var logged = service.Output.Single(line => line.Contains("POST /classify responded ", StringComparison.Ordinal));
        Assert.Contains("POST /classify responded 499 ", logged);
        Assert.DoesNotContain(service.Output, line => line.Contains("ERR", StringComparison.Ordinal) || line.Contains("[Error]", StringComparison.Ordinal));
        var metrics = await service.Client.GetStringAsync("/metrics");
        Assert.Contains(metrics.Split('\n'), line => line.StartsWith("protopnet_requests_total{", StringComparison.Ordinal)
            && line.Contains("endpoint=\"Classify\"", StringComparison.Ordinal) && line.Contains("status=\"499\"", StringComparison.Ordinal));
        Assert.DoesNotContain("status=\"500\"", metrics);
    }

    /// <summary>
    /// A client that reads the start of a large answer and then nothing more keeps its pixels (in the memory budget) only
    /// until it has kept the answer waiting Classify:AnswerReadTimeout: then the answer is cut off, its connection closed
    /// and the memory freed; a warning, and 408 in the request log and the metrics.
    /// </summary>
    [Fact]
    public async Task AnAnswerTheClientDoesNotReadIsCutOffAndItsMemoryFreed()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"),
            ("Classify__AnswerReadTimeout", "00:00:02"));
        using var socket = await Http.StartLargeHeatmapAnswerAsync(service.Client.BaseAddress!.Port);
        // The answer has started: the photo's pixels are held to draw its heatmaps on.
        Assert.True(PrometheusText.Sum(await PrometheusText.ScrapeAsync(service.Client), "protopnet_buffered_bytes") > 0);

        string? Logged() => service.Output.FirstOrDefault(line => line.Contains("POST /classify responded ", StringComparison.Ordinal));
        await Eventually.TrueAsync(() => Logged() is not null, () => string.Join('\n', service.Output), within: TimeSpan.FromSeconds(60));
        Assert.True(Logged()!.Contains("POST /classify responded 408 ", StringComparison.Ordinal), string.Join('\n', service.Output));
        Assert.Contains(service.Output, line => line.Contains("Cut off the answer to POST /classify", StringComparison.Ordinal)
            && line.Contains("Classify:AnswerReadTimeout", StringComparison.Ordinal));
        Assert.DoesNotContain(service.Output, line => line.Contains("ERR", StringComparison.Ordinal) || line.Contains("[Error]", StringComparison.Ordinal));
        Assert.Equal(0, await BufferedBytesOnceReleasedAsync(service.Client));
        var metrics = await service.Client.GetStringAsync("/metrics");
        Assert.Contains(metrics.Split('\n'), line => line.StartsWith("protopnet_requests_total{", StringComparison.Ordinal)
            && line.Contains("endpoint=\"Classify\"", StringComparison.Ordinal) && line.Contains("status=\"408\"", StringComparison.Ordinal));

        // The client finds the connection closed once it reads what was buffered, without the answer's last chunk.
        byte[] tail = [];
        var buffer = new byte[1 << 20];
        var ended = false;
        using (var reading = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            try
            {
                int read;
                while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, reading.Token)) > 0)
                {
                    tail = [.. tail, .. buffer.AsSpan(0, read)[^Math.Min(5, read)..]];
                    tail = tail[^Math.Min(5, tail.Length)..];
                }
                ended = true;
            }
            catch (SocketException)
            {
                ended = true;   // reset rather than closed: ended all the same
            }
        }
        Assert.True(ended);
        Assert.NotEqual("0\r\n\r\n", Encoding.ASCII.GetString(tail));
        Assert.Equal(System.Net.HttpStatusCode.OK, (await service.Client.GetAsync("/health/ready")).StatusCode);
    }

    /// <summary>
    /// A body that stops arriving, on a real Kestrel: answered 408 at Classify:UploadReadTimeout with Connection: close,
    /// the connection then closed (the rest of the body cannot be read off it), and no error in the log: Kestrel logged
    /// "Reading is already in progress" with a stack trace, as an error, for every such request.
    /// </summary>
    [Fact]
    public async Task AStalledUploadIsAnswered408OnAConnectionThatThenClosesWithNoErrorLogged()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"),
            ("Classify__UploadReadTimeout", "00:00:02"));
        foreach (var (path, type) in new[] { ("/classify", "image/png"), ("/v2/models/smoke/infer", "application/json") })
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync("127.0.0.1", service.Client.BaseAddress!.Port);
            var head = $"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {type}\r\nContent-Length: 100000\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(head + "{\"inputs\": ["));
            // Everything the service sends, until it closes the connection.
            var answer = new MemoryStream();
            var buffer = new byte[4096];
            using (var reading = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                int read;
                while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, reading.Token)) > 0) answer.Write(buffer, 0, read);
            }
            var text = Encoding.ASCII.GetString(answer.ToArray());
            Assert.StartsWith("HTTP/1.1 408", text);
            Assert.Contains("Connection: close", text, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("Classify:UploadReadTimeout", text);
        }
        // Kestrel's line, had it come, was logged before it closed the connection: a request made after that is logged
        // after it, and the console is written in order.
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/health/live")).StatusCode);
        await service.WaitForLineAsync("GET /health/live responded");
        Assert.Equal(2, service.Output.Count(l => l.Contains(" responded 408 ", StringComparison.Ordinal)));
        Assert.DoesNotContain(service.Output, line => line.Contains("ERR", StringComparison.Ordinal) || line.Contains("Reading is already in progress", StringComparison.Ordinal));
    }

    /// <summary>
    /// A client that stops reading is cut off once one write has waited Classify:AnswerStallTimeout, long before the
    /// answer's time in all (Classify:AnswerReadTimeout, 10 minutes here) runs out: it held the pixels for 2 minutes before.
    /// </summary>
    [Fact]
    public async Task AnAnswerTheClientStopsReadingIsCutOffAtTheStallTimeout()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"),
            ("Classify__AnswerReadTimeout", "00:10:00"), ("Classify__AnswerStallTimeout", "00:00:02"));
        var started = System.Diagnostics.Stopwatch.StartNew();
        using var socket = await Http.StartLargeHeatmapAnswerAsync(service.Client.BaseAddress!.Port);
        Assert.True(PrometheusText.Sum(await PrometheusText.ScrapeAsync(service.Client), "protopnet_buffered_bytes") > 0);

        string? Logged() => service.Output.FirstOrDefault(line => line.Contains("POST /classify responded ", StringComparison.Ordinal));
        await Eventually.TrueAsync(() => Logged() is not null, () => string.Join('\n', service.Output), within: TimeSpan.FromSeconds(60));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(60), $"cut off after {started.Elapsed}");
        Assert.True(Logged()!.Contains("POST /classify responded 408 ", StringComparison.Ordinal), string.Join('\n', service.Output));
        Assert.Contains(service.Output, line => line.Contains("stopped reading it for 2.0 s", StringComparison.Ordinal)
            && line.Contains("Classify:AnswerStallTimeout", StringComparison.Ordinal));
        Assert.Equal(0, await BufferedBytesOnceReleasedAsync(service.Client));
    }

    /// <summary>
    /// The time drawing heatmaps takes does not count against Classify:AnswerReadTimeout, only the time the client keeps
    /// the answer waiting: a client that reads at once gets all of an answer drawn for longer than the limit.
    /// </summary>
    [Fact]
    public async Task AnAnswerDrawnForLongerThanTheReadTimeoutReachesAClientThatReadsIt()
    {
        // 2.5 s: a reading client that the loaded test machine starves of CPU for a second or two in all (seen: the answer
        // cut off at 1 s, the connection reset) must not be cut off; the answer, drawn in about 6 s here, takes longer.
        var limit = TimeSpan.FromSeconds(2.5);
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"),
            ("Classify__AnswerReadTimeout", limit.ToString()));
        using var client = new HttpClient { BaseAddress = service.Client.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        using var content = new ByteArrayContent(Http.NoisePhotoPng());
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        var started = System.Diagnostics.Stopwatch.StartNew();
        // Read as a client that reads at once does: synchronously, on a thread of its own. Awaited reads would each wait
        // for this test process's thread pool, which the tests beside it can keep busy, and those waits count.
        var (status, length, last) = await Task.Factory.StartNew(() =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/classify?heatmaps=png&topPrototypes=10") { Content = content };
            using var response = client.Send(request, HttpCompletionOption.ResponseHeadersRead);
            using var body = response.Content.ReadAsStream();
            var buffer = new byte[1 << 20];
            var (length, last) = (0L, (byte)0);
            int read;
            while ((read = body.Read(buffer)) > 0) (length, last) = (length + read, buffer[read - 1]);
            return (response.StatusCode, length, last);
        }, TaskCreationOptions.LongRunning);
        var elapsed = started.Elapsed;
        Assert.Equal(System.Net.HttpStatusCode.OK, status);

        // Ten heatmaps of 4 megapixels of noise: tens of megabytes, whole (the JSON's closing brace), drawn for longer than the limit.
        Assert.True(length > 10_000_000, $"{length} bytes");
        Assert.Equal((byte)'}', last);
        Assert.True(elapsed > limit, $"the answer took {elapsed.TotalSeconds:0.0} s: too quick to show that drawing does not count");
        await service.WaitForLineAsync("POST /classify responded ");
        Assert.Contains(service.Output, line => line.Contains("POST /classify responded 200 ", StringComparison.Ordinal));
        Assert.DoesNotContain(service.Output, line => line.Contains("Cut off the answer", StringComparison.Ordinal));
    }

    /// <summary>
    /// The buffer budget in use, read until it is 0 (for 10 s at most): a request's hold is released when its HttpContext
    /// is disposed, a moment after the request log's line.
    /// </summary>
    private static async Task<double> BufferedBytesOnceReleasedAsync(HttpClient client) => await Eventually.ValueAsync(
        async () => PrometheusText.Sum(await PrometheusText.ScrapeAsync(client), "protopnet_buffered_bytes"), bytes => bytes == 0);

    private static void AssertError((int Status, string ContentType, string Body) answer, int status, string type, string path, string contentType)
    {
        var where = $"{path} ({contentType}): {answer.Status} {answer.Body}";
        Assert.True(answer.Status == status, where);
        var body = JsonDocument.Parse(answer.Body).RootElement;
        if (path.StartsWith("/v2", StringComparison.Ordinal))
        {
            Assert.False(string.IsNullOrWhiteSpace(body.GetProperty("error").GetString()), where);
            return;
        }
        Assert.StartsWith("application/problem+json", answer.ContentType);
        Assert.EndsWith(type, body.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(body.GetProperty("detail").GetString()), where);
    }

    private enum Body
    {
        /// <summary>10 bytes of a declared 100,000, then nothing.</summary>
        Stalled,

        /// <summary>A chunked body whose second chunk size is not hexadecimal.</summary>
        BrokenChunk,

        /// <summary>A chunked body whose second chunk size is hexadecimal but beyond 32 bits of int (Kestrel: OverflowException).</summary>
        OverflowingChunk,

        /// <summary>10 bytes of a declared 100,000, then the client closes its sending side.</summary>
        ClosedEarly,

        /// <summary>10 bytes of a declared 2 MiB, then nothing.</summary>
        DeclaredTooLarge,

        /// <summary>A whole chunked body of "{}" in a transfer coding beside chunked ("gzip, chunked").</summary>
        GzipChunked,

        /// <summary>A whole chunked body of "{}".</summary>
        Chunked,

        /// <summary>A whole chunked body of "{}", its coding listed with an empty element and odd case (", Chunked").</summary>
        ChunkedListed,
    }

    /// <summary>Sends a request whose body goes wrong as <paramref name="body"/> says; returns the answer (status 0 if none), read until the server closes.</summary>
    private static async Task<(int Status, string ContentType, string Body)> SendAsync(int port, string path, string contentType, Body body)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", port);
        var framing = body switch
        {
            Body.BrokenChunk or Body.OverflowingChunk or Body.Chunked => "Transfer-Encoding: chunked",
            Body.ChunkedListed => "Transfer-Encoding: , Chunked",
            Body.GzipChunked => "Transfer-Encoding: gzip, chunked",
            Body.DeclaredTooLarge => $"Content-Length: {2 * 1024 * 1024}",
            _ => "Content-Length: 100000",
        };
        var content = body switch
        {
            Body.BrokenChunk => "a\r\n0123456789\r\nzz\r\n",
            Body.OverflowingChunk => "a\r\n0123456789\r\n80000000\r\nabc\r\n",
            Body.GzipChunked or Body.Chunked or Body.ChunkedListed => "2\r\n{}\r\n0\r\n\r\n",
            _ => "0123456789",
        };
        // A whole body is answered on a connection kept open unless the request asks to close it (read until it closes).
        var close = body is Body.GzipChunked or Body.Chunked or Body.ChunkedListed ? "Connection: close\r\n" : "";
        var request = $"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {contentType}\r\n{framing}\r\nX-Api-Key: {AdminKey}\r\n{close}\r\n{content}";
        await socket.SendAsync(Encoding.ASCII.GetBytes(request));
        if (body == Body.ClosedEarly) socket.Shutdown(SocketShutdown.Send);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var received = new MemoryStream();
        var buffer = new byte[8192];
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) received.Write(buffer, 0, read);
        }
        catch (SocketException error) when (error.SocketErrorCode == SocketError.ConnectionReset)
        {
            // Kestrel resets a connection whose request body it did not read to the end, after its answer.
        }
        return ParseResponse(received.ToArray());
    }

    /// <summary>The status, content type and body of one HTTP/1.1 answer (Content-Length or chunked).</summary>
    private static (int Status, string ContentType, string Body) ParseResponse(byte[] response)
    {
        var text = Encoding.UTF8.GetString(response);
        var headerEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (headerEnd < 0) return (0, "", $"no complete answer: '{text}'");
        var lines = text[..headerEnd].Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        string? Header(string name) => lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p[0].Equals(name, StringComparison.OrdinalIgnoreCase))
            .Select(p => p[1].Trim()).FirstOrDefault();
        var body = text[(headerEnd + 4)..];
        if (Header("Transfer-Encoding") == "chunked")
        {
            var whole = new StringBuilder();
            while (true)
            {
                var sizeEnd = body.IndexOf("\r\n", StringComparison.Ordinal);
                var size = Convert.ToInt32(body[..sizeEnd], 16);
                if (size == 0) break;
                whole.Append(body.AsSpan(sizeEnd + 2, size));
                body = body[(sizeEnd + 2 + size + 2)..];
            }
            body = whole.ToString();
        }
        return (status, Header("Content-Type") ?? "", body);
    }

    /// <summary>The smoke service with every endpoint that reads a body open (the training API: an admin key, a jobs folder it deletes).</summary>
    private sealed class EveryBodyEndpoint(ServiceProcess service, DirectoryInfo jobs) : IAsyncDisposable
    {
        public ServiceProcess Service => service;

        public static async Task<EveryBodyEndpoint> StartAsync(TrainerBundles bundles)
        {
            var jobs = Directory.CreateTempSubdirectory("protopnet-body-jobs-");
            try
            {
                return new EveryBodyEndpoint(await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"),
                    ("Security__AdminApiKey", AdminKey), ("Training__JobsRoot", jobs.FullName)), jobs);
            }
            catch
            {
                jobs.Delete(recursive: true);
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await service.DisposeAsync();
            jobs.Delete(recursive: true);
        }
    }
}
