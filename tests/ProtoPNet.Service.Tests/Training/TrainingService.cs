using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Training;

/// <summary>
/// The real service on Kestrel (127.0.0.1, a free port: the events stream is read as it is written) with a jobs folder,
/// a data root and a model root of its own, and a client that sends the admin key.
/// </summary>
public sealed class TrainingService : IAsyncDisposable
{
    public const string AdminKey = "training-tests-admin-key";

    /// <summary>A job that trains in a few seconds: the smoke preset, shortened.</summary>
    public static readonly Dictionary<string, object> QuickOptions = new()
    {
        ["epochs"] = 2, ["noBaseline"] = true, ["syntheticTrainPerClass"] = 40, ["calibrationHoldout"] = 0, ["syntheticTestPerClass"] = 10, ["examples"] = 2, ["threads"] = 1,
    };

    private readonly WebApplicationFactory<Program> _factory;

    public TrainingService(string directory)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(Jobs);
        System.IO.Directory.CreateDirectory(Models);
        System.IO.Directory.CreateDirectory(Path.Combine(DataRoot, "empty"));
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(builder =>
        {
            builder.UseEnvironment("Production");
            builder.UseSetting("Models:Root", Models);
            builder.UseSetting("Models:Watch", "true");
            builder.UseSetting("Models:RescanIntervalSeconds", "1");
            builder.UseSetting("Inference:ExecutionProvider", "cpu");
            builder.UseSetting("Inference:IntraOpThreads", "1");
            builder.UseSetting("Security:AdminApiKey", AdminKey);
            builder.UseSetting("Training:JobsRoot", Jobs);
            builder.UseSetting("Training:DataRoot", DataRoot);
            builder.UseSetting("Training:EventPollMilliseconds", "50");
        });
        _factory.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        _factory.StartServer();
        var address = _factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        Client = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(150) };
        Client.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
    }

    public string Directory { get; }
    public string Jobs => Path.Combine(Directory, "jobs");
    public string Models => Path.Combine(Directory, "models");
    public string DataRoot => Path.Combine(Directory, "data");
    public HttpClient Client { get; }

    public async Task<JsonElement> SubmitAsync(string name, object? options = null, string preset = "smoke", string? dataset = null, string? data = null)
    {
        var response = await Client.PostAsJsonAsync("/training/jobs", new { name, preset, dataset, data, options = options ?? QuickOptions });
        var job = await Http.JsonAsync(response, HttpStatusCode.Accepted);
        Assert.Equal($"/training/jobs/{job.GetProperty("id").GetString()}", response.Headers.Location?.OriginalString);
        Assert.Equal("queued", job.GetProperty("status").GetString());
        return job;
    }

    public async Task<JsonElement> GetAsync(string id) => await Http.JsonAsync(await Client.GetAsync($"/training/jobs/{id}"));

    /// <summary>Polls the job until <paramref name="done"/> holds; fails with the job and the workers' output on timeout.</summary>
    public async Task<JsonElement> WaitForAsync(string id, Func<JsonElement, bool> done, int seconds, params TrainingWorkerOutput[] workers)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var job = await GetAsync(id);
            if (done(job)) return job;
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"job {id} did not get there in {seconds} s: {job}\n{string.Join("\n", workers.Select(w => w()))}");
            }
            await Task.Delay(100);
        }
    }

    public static string Status(JsonElement job) => job.GetProperty("status").GetString()!;

    public static int EpochsDone(JsonElement job) => job.GetProperty("history").GetArrayLength();

    /// <summary>The published version folders of a model (no staging folders).</summary>
    public string[] Versions(string name)
    {
        var family = Path.Combine(Models, name);
        return System.IO.Directory.Exists(family)
            ? System.IO.Directory.GetDirectories(family).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).Select(n => n!).ToArray()
            : [];
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _factory.DisposeAsync();
    }
}

/// <summary>A worker's output, for failure messages.</summary>
public delegate string TrainingWorkerOutput();
