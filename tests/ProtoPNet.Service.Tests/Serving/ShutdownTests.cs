using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// A shutdown (SIGTERM) lets the requests in progress finish and says so: how many there are and how long they have,
/// and at the end how many finished; those still running when that time runs out are named in a warning, not lost without a line. With a drain
/// (Shutdown:DrainSeconds), readiness answers 503 shutting-down while requests are still served, so a load balancer
/// stops sending before connections are refused.
/// </summary>
[Collection(BundlesCollection.Name)]
public class ShutdownTests(TrainerBundles bundles)
{
    private const string HeavyQuery = "/classify?heatmaps=png&topPrototypes=10";

    [Fact]
    public async Task A_request_in_progress_at_SIGTERM_gets_its_whole_answer_and_the_log_says_it_waited_for_it()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"));
        var answer = StartHeavyRequest(service);
        await WaitUntilInProgressAsync(service);
        service.Terminate();

        using var response = await answer;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.EndsWith("}", await response.Content.ReadAsStringAsync());
        Assert.Equal(0, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(service.Output, line => line.Contains("Shutting down: no more connections are accepted; 1 inference requests in progress have up to 30 s to finish", StringComparison.Ordinal));
        Assert.DoesNotContain(service.Output, line => line.Contains("were still in progress", StringComparison.Ordinal));
        Assert.Contains(service.Output, line => line.Contains("Shut down: 1 inference requests finished after the server stopped accepting, none cut off", StringComparison.Ordinal));
        // No drain is configured: none is announced.
        Assert.DoesNotContain(service.Output, line => line.Contains("(Shutdown:DrainSeconds) requests are still accepted", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_request_still_running_when_the_shutdown_time_runs_out_is_named_in_a_warning()
    {
        // The answer is drawn for seconds; the shutdown gives it one.
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"), ("ASPNETCORE_SHUTDOWNTIMEOUTSECONDS", "1"));
        var answer = StartHeavyRequest(service);
        await WaitUntilInProgressAsync(service);
        service.Terminate();

        Assert.NotNull(await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(service.Output, line => line.Contains("Shutting down: no more connections are accepted; 1 inference requests in progress have up to 1 s to finish", StringComparison.Ordinal));
        Assert.Contains(service.Output, line => line.Contains("1 inference requests were still in progress when the 1 s of the shutdown ran out", StringComparison.Ordinal)
            && line.Contains("lets heavy requests finish. 0 others finished", StringComparison.Ordinal));
        // Logged as the service's 503, if its line was written before the process ended; never as a client that left.
        Assert.DoesNotContain(service.Output, line => line.Contains("POST /classify responded 499", StringComparison.Ordinal));
        Assert.DoesNotContain(service.Output, line => line.Contains("POST /classify responded 200", StringComparison.Ordinal));
        // A cut-off answer's line names the shutdown as its problem, and no prediction.
        Assert.All(service.Output.Where(line => line.Contains("POST /classify responded 503", StringComparison.Ordinal)),
            line => Assert.Contains("predicted -, problem shutting-down,", line));
        // The client gets no whole answer: an error, or a 200 whose body breaks off.
        await Assert.ThrowsAnyAsync<Exception>(async () => await (await answer).EnsureSuccessStatusCode().Content.ReadAsByteArrayAsync());
    }

    /// <summary>
    /// Through the drain, over HTTP: new connections are accepted, /health/ready answers 503 shutting-down and /classify
    /// still answers; after it, the server accepts no more, and the process ends normally. (Without a drain the server
    /// stops accepting at SIGTERM, and no probe could ever see the 503.)
    /// </summary>
    [Fact]
    public async Task Through_the_drain_readiness_is_503_while_classify_is_still_served()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"), ("Shutdown__DrainSeconds", "4"));
        using var content = new ByteArrayContent(Http.NoisePhotoPng());   // made before the drain's 4 s start
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        service.Terminate();
        await service.WaitForLineAsync("Shutting down: for 4 s (Shutdown:DrainSeconds) requests are still accepted");

        using var client = new HttpClient { BaseAddress = service.Client.BaseAddress };   // a new connection
        using var ready = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("urn:protopnet:problem:shutting-down", await ready.Content.ReadAsStringAsync());
        // The protocol's readiness says the same, in its terms (false is a 4xx), for a probe of it.
        using var v2Ready = await client.GetAsync("/v2/health/ready");
        Assert.Equal(HttpStatusCode.BadRequest, v2Ready.StatusCode);
        Assert.Contains("The service is shutting down", await v2Ready.Content.ReadAsStringAsync());
        using var classified = await client.PostAsync("/classify", content);
        Assert.Equal(HttpStatusCode.OK, classified.StatusCode);
        // Answered on a connection it then closes: the client's next request goes on a new one (a kept-alive one was
        // closed by the server at the drain's end under a request already sent).
        Assert.True(classified.Headers.ConnectionClose);
        // A client that leaves during the drain left (499): the shutdown cut nothing off (it was logged 503, and a
        // warning at exit told the operator to raise the shutdown's time).
        using (var socket = new System.Net.Sockets.TcpClient())
        {
            await socket.ConnectAsync("127.0.0.1", service.Client.BaseAddress!.Port);
            var stream = socket.GetStream();
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(
                "POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n" + new string('x', 40)));
            await stream.FlushAsync();
            await Task.Delay(300);
        }
        await service.WaitForLineAsync("POST /classify responded 499");

        Assert.Equal(0, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(service.Output, line => line.Contains("Shutting down: no more connections are accepted; 0 inference requests in progress have up to 26 s to finish", StringComparison.Ordinal));
        Assert.DoesNotContain(service.Output, line => line.Contains("were still in progress when", StringComparison.Ordinal));
        // Those answered during the drain ended before the server stopped accepting.
        Assert.Contains(service.Output, line => line.Contains("Shut down: 0 inference requests finished after the server stopped accepting", StringComparison.Ordinal));
        Assert.DoesNotContain(service.Output, line => line.Contains("POST /classify responded 503", StringComparison.Ordinal));
        using var afterwards = new HttpClient { BaseAddress = service.Client.BaseAddress };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => afterwards.GetAsync("/health/live"));
    }

    /// <summary>Readiness once the host is stopping: 503 shutting-down, whatever models are loaded.</summary>
    [Fact]
    public void Readiness_is_503_shutting_down_once_a_shutdown_has_started()
    {
        var registry = bundles.Service.Services.GetRequiredService<ModelRegistry>();
        var context = new DefaultHttpContext();
        Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.Ok<ReadyResponse>>(HealthApi.GetReady(registry, context.Response, new Lifetime(stopping: false)).Result);
        var problem = Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult>(HealthApi.GetReady(registry, context.Response, new Lifetime(stopping: true)).Result);
        Assert.Equal(503, problem.StatusCode);
        Assert.EndsWith("shutting-down", problem.ProblemDetails.Type);
    }

    private static Task<HttpResponseMessage> StartHeavyRequest(ServiceProcess service)
    {
        var client = new HttpClient { BaseAddress = service.Client.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        var content = new ByteArrayContent(Http.NoisePhotoPng());
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        return client.PostAsync(HeavyQuery, content);
    }

    /// <summary>Until the request holds its upload in memory (it is being decoded or explained), for 60 s at most.</summary>
    private static async Task WaitUntilInProgressAsync(ServiceProcess service) => await Eventually.ValueAsync(
        async () => PrometheusText.Sum(await PrometheusText.ScrapeAsync(service.Client), "protopnet_buffered_bytes"), bytes => bytes > 0);

    private sealed class Lifetime(bool stopping) : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => new(true);
        public CancellationToken ApplicationStopping => new(stopping);
        public CancellationToken ApplicationStopped => CancellationToken.None;
        public void StopApplication() => throw new NotSupportedException();
    }
}
