using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Training;

/// <summary>The real service and one real worker process on its jobs folder, shared by the end-to-end training tests.</summary>
public sealed class TrainingFixture : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("protopnet-training-tests-").FullName;

    public TrainingService Service { get; private set; } = null!;

    public TrainingWorker Worker { get; private set; } = null!;

    public string TemporaryFolder(string name) => Directory.CreateDirectory(Path.Combine(_directory, name)).FullName;

    public Task InitializeAsync()
    {
        Service = new TrainingService(Path.Combine(_directory, "shared"));
        Worker = TrainingWorker.Start(Service.Jobs, Service.Models, Service.DataRoot);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        Worker?.Dispose();
        if (Service is not null) await Service.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temporary folder is harmless.
        }
    }
}

/// <summary>
/// Runs alone, after the other collections: its worker processes train on every core, and the tests that bound how long
/// an answer or a probe waits (the trainer bundles' collection) would otherwise be measured beside them.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrainingCollection : ICollectionFixture<TrainingFixture>
{
    public const string Name = "training jobs";
}

/// <summary>
/// Training jobs end to end: submitted over HTTP to the real service, trained and published by real worker processes,
/// then served. Jobs are the smoke preset cut to two epochs, so each trains in seconds.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class TrainingJobsTests(TrainingFixture fixture)
{
    private TrainingService Service => fixture.Service;

    private string WorkerOutput() => fixture.Worker.Output;

    [Fact]
    public async Task A_submitted_job_succeeds_and_classify_answers_from_the_published_version()
    {
        var job = await Service.SubmitAsync("quick-model");
        var id = job.GetProperty("id").GetString()!;

        // Follow it as a page would: the events stream, from submission to the end.
        var events = new List<JsonElement>();
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{id}/events"))
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120)))
        {
            using var response = await Service.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));
            string? eventType = null;
            while (await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal)) eventType = line["event: ".Length..];
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    Assert.Equal("job", eventType);
                    events.Add(JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone());
                }
            }
        }
        var final = events[^1];
        Assert.True(TrainingService.Status(final) == "succeeded", $"{final}\n{WorkerOutput()}");
        // The stream starts with the job as it is when the stream opens: queued, or already taken by the worker (which
        // polls every 0.2 s: a client slower than that to open the stream, on a loaded machine, meets it running).
        Assert.Contains(TrainingService.Status(events[0]), new[] { "queued", "running" });
        Assert.Contains(events, e => TrainingService.Status(e) == "running" && e.GetProperty("progress").GetProperty("epochs").GetInt32() == 2);
        Assert.All(events.Skip(1), e => Assert.Equal(JsonValueKind.Object, e.GetProperty("progress").ValueKind));
        // The history grows across the events, from none to both epochs. (An epoch of this tiny job may end within one
        // poll of the stream, so the one in between may arrive folded into the next event.)
        var epochsDone = events.Select(TrainingService.EpochsDone).ToArray();
        Assert.Equal(epochsDone.Order(), epochsDone);
        Assert.Equal(0, epochsDone[0]);
        Assert.Equal(2, epochsDone[^1]);
        var fractions = events.Where(e => e.GetProperty("progress").ValueKind == JsonValueKind.Object)
            .Select(e => e.GetProperty("progress").GetProperty("fraction").GetDouble()).ToArray();
        Assert.Equal(fractions.Order(), fractions);
        Assert.Equal(1.0, fractions[^1]);

        var version = final.GetProperty("publishedVersion").GetString()!;
        Assert.Equal([version], Service.Versions("quick-model"));
        Assert.True(final.GetProperty("history")[1].GetProperty("testAccuracy").GetDouble() > 0);
        Assert.True(final.GetProperty("finishedAt").GetDateTimeOffset() >= final.GetProperty("startedAt").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, final.GetProperty("error").ValueKind);
        // Published where this service looks: no warning that it is not served.
        Assert.DoesNotContain(final.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("does not serve", StringComparison.Ordinal));

        // The service loads the new bundle by itself and classifies with it.
        var image = Http.BundleImage(Path.Combine(Service.Models, "quick-model", version), 0);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        HttpResponseMessage classify;
        while ((classify = await Service.Client.PostAsync("/classify?model=quick-model", Http.Image(image))).StatusCode != HttpStatusCode.OK
               && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }
        var answer = await Http.JsonAsync(classify);
        Assert.Equal("quick-model", answer.GetProperty("model").GetProperty("name").GetString());
        Assert.Equal(version, answer.GetProperty("model").GetProperty("version").GetString());

        // Removing the finished job takes its folder and run folder, not the model it published.
        Assert.True(File.Exists(Path.Combine(Service.Jobs, id, "run", "checkpoints", "final.pt")), WorkerOutput());
        var removed = await Http.JsonAsync(await Service.Client.DeleteAsync($"/training/jobs/{id}/folder"));
        Assert.Equal("succeeded", TrainingService.Status(removed));
        Assert.False(Directory.Exists(Path.Combine(Service.Jobs, id)));
        Assert.Equal([version], Service.Versions("quick-model"));
        await Http.JsonAsync(await Service.Client.PostAsync("/classify?model=quick-model", Http.Image(image)));
    }

    [Fact]
    public async Task A_queued_job_cancelled_never_starts_and_a_running_one_stops_without_publishing()
    {
        var running = await Service.SubmitAsync("long-model", new { epochs = 300, noBaseline = true, threads = 1 });
        var runningId = running.GetProperty("id").GetString()!;
        await Service.WaitForAsync(runningId, j => TrainingService.Status(j) == "running" && TrainingService.EpochsDone(j) >= 1, 90, WorkerOutput);
        var queued = await Service.SubmitAsync("never-model");
        var queuedId = queued.GetProperty("id").GetString()!;

        var cancelQueued = await Service.Client.DeleteAsync($"/training/jobs/{queuedId}");
        var cancelled = await Http.JsonAsync(cancelQueued);
        Assert.Equal("cancelled", TrainingService.Status(cancelled));
        Assert.Equal(JsonValueKind.Null, cancelled.GetProperty("startedAt").ValueKind);

        var asked = DateTime.UtcNow;
        var cancelRunning = await Service.Client.DeleteAsync($"/training/jobs/{runningId}");
        // 202 while its worker stops it; 200 when the worker was quicker than the answer.
        var stopping = await Http.JsonAsync(cancelRunning, cancelRunning.StatusCode == HttpStatusCode.OK ? HttpStatusCode.OK : HttpStatusCode.Accepted);
        Assert.True(stopping.GetProperty("cancelRequested").GetBoolean());
        Assert.Equal(cancelRunning.StatusCode == HttpStatusCode.OK ? "cancelled" : "running", TrainingService.Status(stopping));
        var stopped = await Service.WaitForAsync(runningId, j => TrainingService.Status(j) == "cancelled", 30, WorkerOutput);
        Assert.True(DateTime.UtcNow - asked < TimeSpan.FromSeconds(15), $"the running job took {DateTime.UtcNow - asked} to stop");
        Assert.True(TrainingService.EpochsDone(stopped) < 300);
        Assert.Empty(Service.Versions("long-model"));

        // Newest first; the cancelled queued job stays as the service left it, never taken by the worker.
        var list = await Http.JsonAsync(await Service.Client.GetAsync("/training/jobs"));
        var ids = list.EnumerateArray().Select(j => j.GetProperty("id").GetString()).ToList();
        Assert.True(ids.IndexOf(queuedId) < ids.IndexOf(runningId));
        await Task.Delay(1000);   // the worker is free again and looks at the queue
        var never = await Service.GetAsync(queuedId);
        Assert.Equal("cancelled", TrainingService.Status(never));
        Assert.Equal("service", never.GetProperty("worker").GetString());
        Assert.False(Directory.Exists(Path.Combine(Service.Jobs, queuedId, "run")));
        Assert.Empty(Service.Versions("never-model"));
        Assert.Equal(HttpStatusCode.OK, (await Service.Client.DeleteAsync($"/training/jobs/{queuedId}")).StatusCode);
    }

    [Fact]
    public async Task A_failing_job_ends_failed_with_one_line_publishes_nothing_and_the_worker_goes_on()
    {
        var failing = await Service.SubmitAsync("empty-model", new { epochs = 1, noBaseline = true }, dataset: "imagefolder", data: "empty");
        var failingId = failing.GetProperty("id").GetString()!;
        var next = await Service.SubmitAsync("after-failure");

        var failed = await Service.WaitForAsync(failingId, j => TrainingService.Status(j) is "failed" or "succeeded", 90, WorkerOutput);
        Assert.Equal("failed", TrainingService.Status(failed));
        var error = failed.GetProperty("error").GetString()!;
        Assert.Contains("imagefolder", error);
        Assert.DoesNotContain('\n', error);
        Assert.Empty(Service.Versions("empty-model"));
        Assert.Equal(HttpStatusCode.Conflict, (await Service.Client.DeleteAsync($"/training/jobs/{failingId}")).StatusCode);

        var after = await Service.WaitForAsync(next.GetProperty("id").GetString()!, j => TrainingService.Status(j) is "failed" or "succeeded", 120, WorkerOutput);
        Assert.Equal("succeeded", TrainingService.Status(after));
        Assert.False(fixture.Worker.HasExited);
    }

    [Fact]
    public async Task Two_workers_on_one_jobs_folder_run_each_of_several_jobs_exactly_once()
    {
        using var second = TrainingWorker.Start(Service.Jobs, Service.Models, Service.DataRoot);
        var options = new { epochs = 1, noBaseline = true, syntheticTrainPerClass = 20, calibrationHoldout = 0, syntheticTestPerClass = 5, examples = 1, threads = 1 };
        var ids = new List<string>();
        for (var i = 0; i < 4; i++) ids.Add((await Service.SubmitAsync($"pair-{i}", options)).GetProperty("id").GetString()!);

        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            var done = await Service.WaitForAsync(id, j => TrainingService.Status(j) is "failed" or "succeeded", 120, WorkerOutput, () => second.Output);
            Assert.Equal("succeeded", TrainingService.Status(done));
            Assert.Equal(1, done.GetProperty("attempt").GetInt32());
            Assert.Single(Service.Versions($"pair-{i}"));
            Assert.Single(Directory.GetFiles(Path.Combine(Service.Jobs, id), "lease-*"));
        }
        var started = (fixture.Worker.Output + "\n" + second.Output).Split('\n').Where(l => l.Contains(": started (attempt", StringComparison.Ordinal)).ToArray();
        foreach (var id in ids) Assert.Single(started, l => l.Contains(id, StringComparison.Ordinal));
    }
}
