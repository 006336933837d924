using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Training;

/// <summary>A service with a jobs folder and a data root holding a folder, a link to it, and links leading outside.</summary>
public sealed class TrainingRequestService : IDisposable
{
    public const string Key = "request-tests-admin-key";

    public TrainingRequestService()
    {
        Directory.CreateDirectory(Path.Combine(Root, "data", "fashion"));
        Directory.CreateDirectory(Path.Combine(Root, "data", "photos", "train", "cat"));   // an image folder, by its layout
        Directory.CreateDirectory(Path.Combine(Root, "data", "birds"));                   // a CUB-200-2011 folder, by its tables
        File.WriteAllText(Path.Combine(Root, "data", "birds", "images.txt"), "");
        File.WriteAllText(Path.Combine(Root, "data", "birds", "classes.txt"), "");
        Directory.CreateDirectory(Path.Combine(Root, "outside"));
        Directory.CreateSymbolicLink(Path.Combine(Root, "data", "escape"), Path.Combine(Root, "outside"));
        Directory.CreateSymbolicLink(Path.Combine(Root, "data", "inner"), Path.Combine(Root, "data", "fashion"));
        // A folder beside the data root whose name begins with the root's: outside it all the same.
        Directory.CreateDirectory(Path.Combine(Root, "data-other"));
        Directory.CreateSymbolicLink(Path.Combine(Root, "data", "sibling"), Path.Combine(Root, "data-other"));
        Directory.CreateDirectory(Models);
        Service = WithJobs("jobs");
    }

    public string Root { get; } = Directory.CreateTempSubdirectory("protopnet-training-requests-").FullName;

    public string Models => Path.Combine(Root, "models");

    /// <summary>The shared service's jobs folder: only refused requests are sent to it, so it stays empty.</summary>
    public string Jobs => Path.Combine(Root, "jobs");

    public ServiceFactory Service { get; }

    /// <summary>A service of its own, with the jobs folder <paramref name="jobs"/> (under the temporary root).</summary>
    public ServiceFactory WithJobs(string jobs) => ServiceFactory.ForRoot(Models, ("Security:AdminApiKey", Key),
        ("Training:JobsRoot", Path.Combine(Root, jobs)), ("Training:DataRoot", Path.Combine(Root, "data")));

    public void Dispose()
    {
        Service.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temporary folder is harmless.
        }
    }
}

/// <summary>The training endpoints' access control and bad requests, against the real service (no worker needed: nothing here is trained).</summary>
public sealed class TrainingRequestTests(TrainingRequestService fixture) : IClassFixture<TrainingRequestService>
{
    private const string Key = TrainingRequestService.Key;

    private string Jobs => fixture.Jobs;

    /// <summary>The longest model name there may be: 128 characters.</summary>
    private const string Name128 = "a123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private HttpClient Client(string? key = Key, ServiceFactory? service = null)
    {
        var client = (service ?? fixture.Service).CreateClient();
        if (key is not null) client.DefaultRequestHeaders.Add("X-Api-Key", key);
        return client;
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Every_training_endpoint_needs_the_admin_key()
    {
        var id = "20261130T080000123Z-1a2b3c4d";
        var requests = new Func<HttpClient, Task<HttpResponseMessage>>[]
        {
            c => c.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")),
            c => c.GetAsync("/training/jobs"),
            c => c.GetAsync($"/training/jobs/{id}"),
            c => c.GetAsync($"/training/jobs/{id}/events"),
            c => c.DeleteAsync($"/training/jobs/{id}"),
            c => c.DeleteAsync($"/training/jobs/{id}/folder"),
            c => c.GetAsync("/training/options"),
            c => c.GetAsync("/training/data"),
        };
        foreach (var request in requests)
        {
            await Http.ProblemAsync(await request(Client(key: null)), HttpStatusCode.Unauthorized, "api-key-missing");
            await Http.ProblemAsync(await request(Client("wrong-key")), HttpStatusCode.Forbidden, "api-key-rejected");
        }
        Assert.False(Directory.Exists(Jobs) && Directory.EnumerateFileSystemEntries(Jobs).Any(), "a request without the key queued a job");
    }

    [Theory]
    [InlineData("""{"preset": "smoke"}""", "name", "is required")]
    [InlineData("""{"name": "../evil", "preset": "smoke"}""", "name", "not a valid model name")]
    [InlineData("""{"name": ".hidden", "preset": "smoke"}""", "name", "not a valid model name")]
    [InlineData("""{"name": "abc\n", "preset": "smoke"}""", "name", "not a valid model name")]
    [InlineData("""{"name": "a..b", "preset": "smoke"}""", "name", "not a valid model name")]
    [InlineData($$"""{"name": "{{Name128}}x", "preset": "smoke"}""", "name", "not a valid model name")]
    [InlineData("""{"name": "m", "preset": "smoke", "data": "fashion"}""", "data", "is drawn by the trainer and reads no folder")]
    // The data set forgotten: the folder's layout says which one reads it.
    [InlineData("""{"name": "m", "preset": "smoke", "data": "photos"}""", "data", "reads no folder: leave data out, or choose a data set that reads one (fashion-mnist, cub200, imagefolder); 'photos' is laid out as a data set of 'imagefolder': add \"dataset\": \"imagefolder\"")]
    [InlineData("""{"name": "m", "preset": "synthetic-parts", "data": "birds"}""", "data", "'birds' is laid out as a data set of 'cub200': add \"dataset\": \"cub200\"")]
    [InlineData("""{"name": "m", "preset": "smoke", "dataset": "imagefolder"}""", "data", "the data set 'imagefolder' reads a folder that has no default")]
    [InlineData("""{"name": "m", "preset": "cub200-resnet18"}""", "data", "the data set 'cub200' reads a folder that has no default")]
    [InlineData("""{"name": 5, "preset": "smoke"}""", "name", "must be a string")]
    [InlineData("""{"name": "m"}""", "preset", "is required")]
    [InlineData("""{"name": "m", "preset": "imagenet"}""", "preset", "not a preset")]
    [InlineData("""{"name": "m", "preset": "smoke", "dataset": "mnist"}""", "dataset", "not a data set")]
    [InlineData("""{"name": "m", "preset": "smoke", "epochs": 4}""", "epochs", "not a field")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": [1]}""", "options", "must be an object")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"epoch": 4}}""", "options.epoch", "not an option of the trainer (did you mean 'epochs'?")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"lr-add-on": 0.1}}""", "options.lr-add-on", "not an option of the trainer (did you mean 'lrAddOn'?")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"--no-baseline": true}}""", "options.--no-baseline", "not an option of the trainer (did you mean 'noBaseline'?")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"calibration_holdout": 40}}""", "options.calibration_holdout", "not an option of the trainer (did you mean 'calibrationHoldout'?")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"models": "/tmp"}}""", "options.models", "not an option")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"runDir": "/tmp"}}""", "options.runDir", "not an option")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"epochs": 0}}""", "options.epochs", "below the minimum 1")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"epochs": 1001}}""", "options.epochs", "above the maximum 1000")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"epochs": 2.5}}""", "options.epochs", "must be an integer")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"epochs": "4"}}""", "options.epochs", "must be an integer")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"lrTrunk": -1}}""", "options.lrTrunk", "below the minimum 0")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"backbone": "alexnet"}}""", "options.backbone", "not one of")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"trunkWeights": "/etc/passwd"}}""", "options.trunkWeights", "not one of")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"syntheticChannels": 2}}""", "options.syntheticChannels", "not one of")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"noBaseline": "yes"}}""", "options.noBaseline", "true or false")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"smallCnnWidths": [8, 0]}}""", "options.smallCnnWidths", "below the minimum 1")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"smallCnnWidths": [1, 2, 3, 4, 5, 6, 7, 8, 9]}}""", "options.smallCnnWidths", "must be a list of 1 to 8 integers")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"withBaseline": true, "noBaseline": true}}""", "options.noBaseline", "contradicts options.withBaseline (both set the trainer's with_baseline): give one of them")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"augment": true, "noAugment": true}}""", "options.noAugment", "contradicts options.augment")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"epochs": 2, "epochs": 3}}""", "body", "Duplicate property 'epochs'")]
    [InlineData("""{"name": "m", "preset": "smoke", "data": "../outside"}""", "data", "must not contain '..'")]
    [InlineData("""{"name": "m", "preset": "smoke", "data": "fashion/../../outside"}""", "data", "must not contain '..'")]
    [InlineData("""{"name": "m", "preset": "smoke", "data": "/etc"}""", "data", "absolute path outside")]
    [InlineData("""{"name": "m", "preset": "smoke", "data": "escape"}""", "data", "leads outside")]
    [InlineData("""{"name": "m", "preset": "smoke", "dataset": "imagefolder", "data": "sibling"}""", "data", "'sibling' leads outside Training:DataRoot")]
    [InlineData("""{"name": "m", "preset": "smoke", "data": "missing"}""", "data", "not a folder")]
    [InlineData("""[1, 2]""", "body", "must be a JSON object")]
    [InlineData("""{"name": "m",""", "body", "is not JSON")]
    [InlineData("""{"name": "m", "name": "n", "preset": "smoke"}""", "body", "Duplicate property 'name'")]
    [InlineData("""{"name": "m", "Name": "n", "preset": "smoke"}""", "body", "gives the field name twice, as 'name' and 'Name' (names are matched ignoring case)")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"epochs": 2, "EPOCHS": 3}}""", "options", "gives the option epochs twice, as 'epochs' and 'EPOCHS'")]
    [InlineData("""{"name": "\ud800", "preset": "smoke"}""", "name", "not valid text")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"\ud800": 1}}""", "body", "not valid text")]
    [InlineData("""{"name": "m", "preset": "smoke", "options": {"smallCnnWidths": [8, "\udc00"]}}""", "options.smallCnnWidths[1]", "not valid text")]
    public async Task A_bad_job_is_a_400_problem_naming_the_field(string body, string field, string fragment)
    {
        var problem = await Http.ProblemAsync(await Client().PostAsync("/training/jobs", Body(body)), HttpStatusCode.BadRequest, "invalid-training-job");
        Assert.Equal(field, problem.GetProperty("field").GetString());
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.StartsWith(field + ": ", detail);
        Assert.Contains(fragment, detail);
        Assert.False(Directory.Exists(Jobs) && Directory.EnumerateDirectories(Jobs).Any(), "a refused job was queued");
    }

    /// <summary>Only JSON is a job: the endpoint's type matching lets any application/*+json through, and merge-patch+json was queued.</summary>
    [Theory]
    [InlineData("application/merge-patch+json")]
    [InlineData("application/problem+json")]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    public async Task A_body_of_another_type_than_json_is_a_415(string type)
    {
        var problem = await Http.ProblemAsync(await Client().PostAsync("/training/jobs", new StringContent("""{"name": "m", "preset": "smoke"}""", Encoding.UTF8, type)),
            HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        // Routing refuses text/plain before the endpoint, which refuses the other JSON types: both say what to send.
        Assert.Contains($"Content-Type '{type}; charset=utf-8' is not accepted by POST /training/jobs: send the job as application/json", problem.GetProperty("detail").GetString());
        Assert.False(Directory.Exists(Jobs) && Directory.EnumerateDirectories(Jobs).Any(), "a refused job was queued");
    }

    /// <summary>A JSON content type whose header cannot be read (an unterminated quote) is a 400 saying so, not a 415 asking for JSON.</summary>
    [Fact]
    public async Task A_content_type_that_cannot_be_read_is_a_400()
    {
        var body = new StringContent("""{"name": "m", "preset": "smoke"}""");
        body.Headers.Remove("Content-Type");
        body.Headers.TryAddWithoutValidation("Content-Type", "application/json; x=\"a");
        var problem = await Http.ProblemAsync(await Client().PostAsync("/training/jobs", body), HttpStatusCode.BadRequest, "request-body-unreadable");
        Assert.Contains("Content-Type 'application/json; x=\"a' cannot be read as a media type", problem.GetProperty("detail").GetString());
        Assert.False(Directory.Exists(Jobs) && Directory.EnumerateDirectories(Jobs).Any(), "a refused job was queued");
    }

    /// <summary>A long refused value is quoted by its start and its length, not sent back whole.</summary>
    [Fact]
    public async Task A_long_refused_value_is_quoted_short()
    {
        var device = new string('x', 500_000);
        var problem = await Http.ProblemAsync(await Client().PostAsync("/training/jobs",
            Body($$$"""{"name": "m", "preset": "smoke", "options": {"device": "{{{device}}}"}}""")), HttpStatusCode.BadRequest, "invalid-training-job");
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.StartsWith("options.device: \"xxxx", detail);
        Assert.Contains("(500002 characters)", detail);
        Assert.True(detail.Length < 300, $"the detail has {detail.Length} characters");

        // Names and text that are not JSON, quoted the same way: an unknown field or option, a data path, an invalid literal
        // (which the parser quotes with all that follows it).
        var name = new string('o', 500_000);
        var shortName = $"{new string('o', 72)}… (500000 characters)";
        foreach (var (body, field, start) in new[]
        {
            ($$$"""{"name": "m", "preset": "smoke", "{{{name}}}": 1}""", shortName, $"{shortName}: is not a field of a training job"),
            ($$$"""{"name": "m", "preset": "smoke", "options": {"{{{name}}}": 1}}""", $"options.{shortName}", $"options.{shortName}: is not an option"),
            ($$$"""{"name": "m", "preset": "smoke", "data": "{{{name}}}"}""", "data", $"data: '{shortName}' is not a folder under Training:DataRoot"),
            ($$$"""{"name": "m", "preset": t{{{name}}}}""", "body", $"body: is not JSON: 't{new string('o', 71)}… (500002 characters)' is an invalid JSON literal"),
        })
        {
            problem = await Http.ProblemAsync(await Client().PostAsync("/training/jobs", Body(body)), HttpStatusCode.BadRequest, "invalid-training-job");
            detail = problem.GetProperty("detail").GetString()!;
            Assert.StartsWith(start, detail);
            Assert.Equal(field, problem.GetProperty("field").GetString());
            Assert.True(detail.Length < 400, $"the detail has {detail.Length} characters");
        }
    }

    [Fact]
    public async Task Data_inside_the_data_root_is_kept_relative_to_it_with_links_resolved()
    {
        await using var service = fixture.WithJobs("jobs-data");
        var inside = Path.Combine(fixture.Root, "data", "fashion");
        foreach (var data in new[] { "fashion", inside, "inner", "./fashion/" })
        {
            var job = await Http.JsonAsync(await Client(service: service).PostAsJsonAsync("/training/jobs",
                new { name = "m", preset = "fashion-mnist", dataset = "fashion-mnist", data }), HttpStatusCode.Accepted);
            Assert.Equal("fashion", job.GetProperty("data").GetString());
            var stored = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture.Root, "jobs-data", job.GetProperty("id").GetString()!, "job.json"))).RootElement;
            Assert.Equal("fashion", stored.GetProperty("data").GetString());
        }
    }

    [Fact]
    public async Task Options_are_stored_as_given_and_the_job_is_listed_newest_first()
    {
        await using var service = fixture.WithJobs("jobs-listed");
        var jobs = Path.Combine(fixture.Root, "jobs-listed");
        var first = await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs",
            Body("""{"name": "m1", "preset": "smoke", "options": {"epochs": 4, "lrAddOn": 0.002, "noBaseline": true, "smallCnnWidths": [8, 16]}}""")),
            HttpStatusCode.Accepted);
        var second = await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs", Body("""{"name": "m2", "preset": "smoke"}""")), HttpStatusCode.Accepted);
        var stored = JsonDocument.Parse(File.ReadAllText(Path.Combine(jobs, first.GetProperty("id").GetString()!, "job.json"))).RootElement;
        Assert.Equal("protopnet-training-job/1", stored.GetProperty("format").GetString());
        Assert.Equal(4, stored.GetProperty("options").GetProperty("epochs").GetInt32());
        Assert.Equal(0.002, stored.GetProperty("options").GetProperty("lrAddOn").GetDouble());
        Assert.Equal([8, 16], stored.GetProperty("options").GetProperty("smallCnnWidths").EnumerateArray().Select(w => w.GetInt32()));
        var status = JsonDocument.Parse(File.ReadAllText(Path.Combine(jobs, first.GetProperty("id").GetString()!, "status.json"))).RootElement;
        Assert.Equal("queued", status.GetProperty("status").GetString());
        Assert.Equal(0, status.GetProperty("attempt").GetInt32());

        var list = await Http.JsonAsync(await Client(service: service).GetAsync("/training/jobs"));
        Assert.Equal([second.GetProperty("id").GetString(), first.GetProperty("id").GetString()],
            list.EnumerateArray().Select(j => j.GetProperty("id").GetString()));
        // Names are matched ignoring case, as everywhere in this API, and kept by the trainer's.
        var spelled = await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs",
            Body("""{"NAME": "m3", "Preset": "smoke", "OPTIONS": {"Epochs": 3, "lradDON": 0.001}}""")), HttpStatusCode.Accepted);
        Assert.Equal("m3", spelled.GetProperty("name").GetString());
        var storedSpelled = JsonDocument.Parse(File.ReadAllText(Path.Combine(jobs, spelled.GetProperty("id").GetString()!, "job.json"))).RootElement;
        Assert.Equal(["epochs", "lrAddOn"], storedSpelled.GetProperty("options").EnumerateObject().Select(o => o.Name));
        Assert.Equal(3, storedSpelled.GetProperty("options").GetProperty("epochs").GetInt32());

        var options = await Http.JsonAsync(await Client(service: service).GetAsync("/training/options"));
        Assert.Contains(options.GetProperty("presets").EnumerateArray(), p => p.GetProperty("name").GetString() == "smoke");
        Assert.Contains(options.GetProperty("options").EnumerateArray(), o => o.GetProperty("name").GetString() == "lrAddOn");
    }

    /// <summary>
    /// A flag given false sets nothing, so a flag and its negation contradict each other only when both are true:
    /// augment on with noAugment false is one clear wish, and is queued as given.
    /// </summary>
    [Fact]
    public async Task A_flag_beside_its_negation_given_false_is_accepted()
    {
        await using var service = fixture.WithJobs("jobs-flag-false");
        var job = await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs",
            Body("""{"name": "m", "preset": "smoke", "options": {"augment": true, "noAugment": false}}""")), HttpStatusCode.Accepted);
        var stored = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture.Root, "jobs-flag-false", job.GetProperty("id").GetString()!, "job.json")))
            .RootElement.GetProperty("options");
        Assert.True(stored.GetProperty("augment").GetBoolean());
        Assert.False(stored.GetProperty("noAugment").GetBoolean());
    }

    /// <summary>The list keeps the jobs in the states asked for, and the newest N; a state or a limit that is none is a 400.</summary>
    [Fact]
    public async Task The_list_is_filtered_by_status_and_limited()
    {
        await using var service = fixture.WithJobs("jobs-filtered");
        var client = Client(service: service);
        async Task<string> SubmitAsync() => (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")),
            HttpStatusCode.Accepted)).GetProperty("id").GetString()!;
        var (first, second, third) = (await SubmitAsync(), await SubmitAsync(), await SubmitAsync());
        await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{second}"));
        async Task<string[]> ListedAsync(string query) => (await Http.JsonAsync(await client.GetAsync("/training/jobs" + query))).EnumerateArray()
            .Select(j => j.GetProperty("id").GetString()!).ToArray();
        Assert.Equal([third, second, first], await ListedAsync(""));
        Assert.Equal([second], await ListedAsync("?status=cancelled"));
        Assert.Equal([third, first], await ListedAsync("?status=queued,running"));
        Assert.Equal([third, first], await ListedAsync("?status=Queued,RUNNING"));   // in any case, as heatmaps=PNG
        Assert.Equal([third], await ListedAsync("?status=queued&limit=1"));
        // The limit counts the jobs the filter keeps, not the newest of all: the newest cancelled job is the second newest.
        Assert.Equal([second], await ListedAsync("?status=cancelled&limit=1"));
        Assert.Equal([third, second], await ListedAsync("?limit=2"));
        foreach (var (query, fragment) in new[] { ("?status=paused", "names no job state"), ("?status=", "names no job state"), ("?limit=0", "limit must be"),
            ("?limit=two", "limit must be"), ("?state=queued", "takes no query parameter 'state' (did you mean 'status'?); it takes status, limit.") })
        {
            var problem = await Http.ProblemAsync(await client.GetAsync("/training/jobs" + query), HttpStatusCode.BadRequest, "invalid-parameter");
            Assert.Contains(fragment, problem.GetProperty("detail").GetString());
        }
    }

    /// <summary>
    /// The newest N are read without the thousands of older jobs a folder may keep (the web page lists 100: 35 ms of 3,000
    /// jobs, where reading each took 300-450 ms); a job named otherwise than the service names them takes its place
    /// by its createdAt.
    /// </summary>
    [Fact]
    public async Task The_newest_jobs_are_listed_without_reading_the_older_ones()
    {
        const int Count = 2000;
        var jobs = Path.Combine(fixture.Root, "jobs-many");
        var start = new DateTime(2026, 11, 1, 0, 0, 0, DateTimeKind.Utc);
        string Id(int i) => $"{start.AddSeconds(i):yyyyMMdd'T'HHmmssfff'Z'}-{i:x8}";
        for (var i = 0; i < Count; i++)
        {
            Directory.CreateDirectory(Path.Combine(jobs, Id(i)));
            File.WriteAllText(Path.Combine(jobs, Id(i), "job.json"), $$"""{"name": "m", "preset": "smoke", "createdAt": "{{start.AddSeconds(i):O}}"}""");
            File.WriteAllText(Path.Combine(jobs, Id(i), "status.json"), """{"status": "succeeded", "attempt": 1}""");
        }
        var between = start.AddSeconds(Count - 1.5);
        Directory.CreateDirectory(Path.Combine(jobs, "other-program"));
        File.WriteAllText(Path.Combine(jobs, "other-program", "job.json"), $$"""{"name": "o", "preset": "smoke", "createdAt": "{{between:O}}"}""");
        await using var service = fixture.WithJobs("jobs-many");
        var client = Client(service: service);
        async Task<string[]> ListAsync(string query) =>
            (await Http.JsonAsync(await client.GetAsync("/training/jobs" + query))).EnumerateArray().Select(j => j.GetProperty("id").GetString()!).ToArray();

        Assert.Equal([Id(Count - 1), "other-program", Id(Count - 2)], await ListAsync("?limit=3"));
        var listed = await ListAsync("");
        Assert.Equal(Count + 1, listed.Length);
        Assert.Equal(Id(0), listed[^1]);

        // The proof that the older jobs are not read (a timing would be at the mercy of a busy machine): the second
        // newest job's job.json becomes a named pipe, which a read waits on until a writer comes, and none comes.
        var pipe = Path.Combine(jobs, Id(Count - 2), "job.json");
        File.Delete(pipe);
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", pipe)) await mkfifo.WaitForExitAsync();
        Assert.True(File.Exists(pipe));
        try
        {
            string[] newest;
            try
            {
                // Run apart and waited on with a limit: the in-memory test server may call the handler on the caller's
                // thread, which a blocked read would hold, and a cancelled request does not stop a read.
                newest = await Task.Run(() => ListAsync("?limit=1")).WaitAsync(TimeSpan.FromSeconds(20));
            }
            catch (TimeoutException)
            {
                throw new Xunit.Sdk.XunitException("listing the newest job read an older one: it waited 20 s on the older job's named pipe");
            }
            Assert.Equal([Id(Count - 1)], newest);
        }
        finally
        {
            // A reader left waiting on the pipe (had the listing read it) is let go: opened for both reading and
            // writing, a pipe waits for no one, and closed it reads as empty.
            using (new FileStream(pipe, FileMode.Open, FileAccess.ReadWrite)) { }
        }
    }

    /// <summary>Job folders written by other programs (TRAINING_JOBS.md) with fields of the wrong type are listed and cancelled, never a 500.</summary>
    [Fact]
    public async Task A_job_folder_with_fields_of_the_wrong_type_is_still_listed_and_cancelled()
    {
        await using var service = fixture.WithJobs("jobs-malformed");
        var jobs = Path.Combine(fixture.Root, "jobs-malformed");
        foreach (var (id, job, status) in new[]
                 {
                     ("zz-bad-name", """{"name": 5, "preset": "smoke", "createdAt": "2026-12-01T10:00:00Z"}""", """{"status": "queued", "attempt": 0}"""),
                     ("zz-bad-attempt", """{"name": "m", "preset": ["smoke"]}""", """{"status": 7, "attempt": "0", "progress": {"stage": 3}}"""),
                 })
        {
            Directory.CreateDirectory(Path.Combine(jobs, id));
            File.WriteAllText(Path.Combine(jobs, id, "job.json"), job);
            File.WriteAllText(Path.Combine(jobs, id, "status.json"), status);
        }
        var list = await Http.JsonAsync(await Client(service: service).GetAsync("/training/jobs"));
        Assert.Equal(["zz-bad-attempt", "zz-bad-name"], list.EnumerateArray().Select(j => j.GetProperty("id").GetString()).Order());
        Assert.Equal("", list.EnumerateArray().Single(j => j.GetProperty("id").GetString() == "zz-bad-name").GetProperty("name").GetString());
        var cancelled = await Http.JsonAsync(await Client(service: service).DeleteAsync("/training/jobs/zz-bad-name"));
        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        var response = await Client(service: service).DeleteAsync("/training/jobs/zz-bad-attempt");
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Accepted, $"DELETE answered {(int)response.StatusCode}");
    }

    /// <summary>
    /// JSON that Python's json module reads but .NET's JsonNode throws on when a field is read or written (a key given
    /// twice, a lone surrogate, a number beyond a double) is read as a worker reads it: the last of a repeated key, the
    /// others as absent. Such a job was a 500 for the whole list, and with Training:KeepFinishedJobs it stopped the start.
    /// </summary>
    [Fact]
    public async Task Job_files_a_worker_reads_are_read_by_the_service_too()
    {
        var jobs = Path.Combine(fixture.Root, "jobs-odd-json");
        foreach (var (id, job, status) in new[]
                 {
                     ("zz-twice", """{"name": "a", "name": "b", "preset": "smoke"}""", """{"status": "queued", "status": "succeeded", "attempt": 1, "finishedAt": "2020-01-01T00:00:00Z"}"""),
                     ("zz-surrogate", """{"name": "a\ud800", "preset": "smoke"}""", """{"status": "failed", "error": "\udc00x", "attempt": 1, "finishedAt": "2020-01-01T00:00:00Z"}"""),
                     ("zz-paused", """{"name": "p", "preset": "smoke"}""", """{"status": "paused", "attempt": 1}"""),
                     ("zz-huge", """{"name": "h", "preset": "smoke"}""", """{"status": "running", "attempt": 1, "progress": {"stage": "joint", "fraction": 1e400}, "metrics": {"lossTotal": 1e999, "testAccuracy": 0.5}, "history": [{"epoch": 1, "testAccuracy": -1e999}]}"""),
                 })
        {
            Directory.CreateDirectory(Path.Combine(jobs, id));
            File.WriteAllText(Path.Combine(jobs, id, "job.json"), job);
            File.WriteAllText(Path.Combine(jobs, id, "status.json"), status);
        }
        await using (var service = fixture.WithJobs("jobs-odd-json"))
        {
            var client = Client(service: service);
            var list = await Http.JsonAsync(await client.GetAsync("/training/jobs"));
            var byId = list.EnumerateArray().ToDictionary(j => j.GetProperty("id").GetString()!);
            Assert.Equal(["zz-huge", "zz-paused", "zz-surrogate", "zz-twice"], byId.Keys.Order());
            // A status no worker knows is never taken and never ends: it reads as failed, so it can be removed.
            Assert.Equal("failed", byId["zz-paused"].GetProperty("status").GetString());
            Assert.Contains("status 'paused', which no worker knows", byId["zz-paused"].GetProperty("error").GetString());
            Assert.Equal(HttpStatusCode.OK, (await client.DeleteAsync("/training/jobs/zz-paused/folder")).StatusCode);
            Assert.Equal("b", byId["zz-twice"].GetProperty("name").GetString());
            Assert.Equal("succeeded", byId["zz-twice"].GetProperty("status").GetString());
            Assert.Equal("", byId["zz-surrogate"].GetProperty("name").GetString());
            Assert.Equal(JsonValueKind.Null, byId["zz-surrogate"].GetProperty("error").ValueKind);
            var huge = await Http.JsonAsync(await client.GetAsync("/training/jobs/zz-huge"));
            Assert.Equal(0.5, huge.GetProperty("metrics").GetProperty("testAccuracy").GetDouble());
            Assert.False(huge.GetProperty("metrics").TryGetProperty("lossTotal", out _));
            Assert.Equal(HttpStatusCode.OK, (await client.DeleteAsync("/training/jobs/zz-twice/folder")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.DeleteAsync("/training/jobs/zz-surrogate/folder")).StatusCode);
        }
        // Finished long ago and kept for a second: the retention sweep at the start removes it and the service starts.
        Directory.CreateDirectory(Path.Combine(jobs, "zz-twice-again"));
        File.WriteAllText(Path.Combine(jobs, "zz-twice-again", "job.json"), """{"name": "a", "name": "b", "preset": "smoke"}""");
        File.WriteAllText(Path.Combine(jobs, "zz-twice-again", "status.json"), """{"status": "failed", "status": "cancelled", "attempt": 0, "finishedAt": "2020-01-01T00:00:00Z"}""");
        await using (var kept = ServiceFactory.ForRoot(fixture.Models, ("Security:AdminApiKey", Key), ("Training:JobsRoot", jobs),
            ("Training:KeepFinishedJobs", "00:00:01")))
        {
            var client = Client(service: kept);
            await Eventually.TrueAsync(() => !Directory.Exists(Path.Combine(jobs, "zz-twice-again")), "the finished job was not removed");
            Assert.Equal(["zz-huge"], (await Http.JsonAsync(await client.GetAsync("/training/jobs"))).EnumerateArray()
                .Select(j => j.GetProperty("id").GetString()!));
        }
    }

    /// <summary>
    /// A job that succeeded but whose version is not in this service's model root (its worker's --models named another
    /// folder) says so in its warnings: it reads succeeded, and nothing here would ever serve it.
    /// </summary>
    [Fact]
    public async Task A_succeeded_job_whose_version_is_not_in_the_model_root_says_that_it_is_not_served()
    {
        var jobs = Path.Combine(fixture.Root, "jobs-published");
        Directory.CreateDirectory(Path.Combine(fixture.Models, "here", "20261201T000000Z"));
        foreach (var (id, name) in new[] { ("zz-here", "here"), ("zz-elsewhere", "elsewhere") })
        {
            Directory.CreateDirectory(Path.Combine(jobs, id));
            File.WriteAllText(Path.Combine(jobs, id, "job.json"), $$"""{"name": "{{name}}", "preset": "smoke"}""");
            File.WriteAllText(Path.Combine(jobs, id, "status.json"),
                """{"status": "succeeded", "attempt": 1, "publishedVersion": "20261201T000000Z", "warnings": ["a recipe's warning"], "finishedAt": "2026-12-01T00:00:00Z"}""");
        }
        await using var service = fixture.WithJobs("jobs-published");
        var client = Client(service: service);
        string[] Warnings(JsonElement job) => job.GetProperty("warnings").EnumerateArray().Select(w => w.GetString()!).ToArray();
        Assert.Equal(["a recipe's warning"], Warnings(await Http.JsonAsync(await client.GetAsync("/training/jobs/zz-here"))));
        var elsewhere = await Http.JsonAsync(await client.GetAsync("/training/jobs/zz-elsewhere"));
        Assert.Equal("succeeded", elsewhere.GetProperty("status").GetString());
        Assert.Equal(["a recipe's warning",
            $"elsewhere@20261201T000000Z is not in this service's model root ({Path.GetFullPath(fixture.Models)}), so this service does not serve it: " +
            "the worker published into another folder (its --models must name this root), or the version was removed since"], Warnings(elsewhere));
    }

    /// <summary>
    /// Only a finished job is removed, with everything in its folder; a queued one is refused until cancelled, and a
    /// folder an earlier removal left behind is deleted at the next.
    /// </summary>
    [Fact]
    public async Task A_finished_job_is_removed_with_its_folder_and_an_unfinished_one_is_refused()
    {
        await using var service = fixture.WithJobs("jobs-removed");
        var jobs = Path.Combine(fixture.Root, "jobs-removed");
        var client = Client(service: service);
        var queued = await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m1", "preset": "smoke"}""")), HttpStatusCode.Accepted);
        var queuedId = queued.GetProperty("id").GetString()!;
        var kept = await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m2", "preset": "smoke"}""")), HttpStatusCode.Accepted);
        var keptId = kept.GetProperty("id").GetString()!;

        var refused = await Http.ProblemAsync(await client.DeleteAsync($"/training/jobs/{queuedId}/folder"), HttpStatusCode.Conflict, "training-job-not-finished");
        Assert.Contains($"Training job {queuedId} is queued: cancel it first (DELETE /training/jobs/{queuedId}), then remove it.", refused.GetProperty("detail").GetString());
        Assert.True(File.Exists(Path.Combine(jobs, queuedId, "job.json")));

        // Cancelled, it is finished: the folder goes with a run folder a worker might have left in it.
        await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{queuedId}"));
        Directory.CreateDirectory(Path.Combine(jobs, queuedId, "run", "checkpoints"));
        File.WriteAllBytes(Path.Combine(jobs, queuedId, "run", "checkpoints", "final.pt"), new byte[1024]);
        // Left by an earlier removal an hour ago: deleted now. One written a moment ago may be another service's at work.
        var leftover = Directory.CreateDirectory(Path.Combine(jobs, ".removing-20261130T080000123Z-00000000-0123")).FullName;
        File.WriteAllText(Path.Combine(leftover, "job.json"), "{}");
        Directory.SetLastWriteTimeUtc(leftover, DateTime.UtcNow.AddHours(-1));
        var underway = Directory.CreateDirectory(Path.Combine(jobs, ".removing-20261130T080000456Z-00000000-4567")).FullName;

        var removed = await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{queuedId}/folder"));
        Assert.Equal(queuedId, removed.GetProperty("id").GetString());
        Assert.Equal("cancelled", removed.GetProperty("status").GetString());
        Assert.Equal([underway, Path.Combine(jobs, keptId)], Directory.EnumerateDirectories(jobs).Order(StringComparer.Ordinal));
        var list = await Http.JsonAsync(await client.GetAsync("/training/jobs"));
        Assert.Equal([keptId], list.EnumerateArray().Select(j => j.GetProperty("id").GetString()));
        await Http.ProblemAsync(await client.GetAsync($"/training/jobs/{queuedId}"), HttpStatusCode.NotFound, "training-job-not-found");
        await Http.ProblemAsync(await client.DeleteAsync($"/training/jobs/{queuedId}/folder"), HttpStatusCode.NotFound, "training-job-not-found");

        // A job whose worker wrote "succeeded" (as a worker does, TRAINING_JOBS.md) is removed too; "running" is refused.
        foreach (var (status, expected) in new[] { ("running", HttpStatusCode.Conflict), ("succeeded", HttpStatusCode.OK), ("failed", HttpStatusCode.OK) })
        {
            var id = (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m3", "preset": "smoke"}""")), HttpStatusCode.Accepted))
                .GetProperty("id").GetString()!;
            File.WriteAllText(Path.Combine(jobs, id, "lease-000001"), "{}");
            File.WriteAllText(Path.Combine(jobs, id, "status.json"), $$"""{"id": "{{id}}", "status": "{{status}}", "attempt": 1}""");
            var response = await client.DeleteAsync($"/training/jobs/{id}/folder");
            Assert.Equal(expected, response.StatusCode);
            Assert.Equal(expected == HttpStatusCode.Conflict, Directory.Exists(Path.Combine(jobs, id)));
            if (expected == HttpStatusCode.Conflict)
            {
                // A running job's worker has to stop it first: the answer says to wait for that, not to remove it at once.
                var problem = await Http.ProblemAsync(response, HttpStatusCode.Conflict, "training-job-not-finished");
                Assert.Contains($"Training job {id} is running: cancel it first (DELETE /training/jobs/{id}), then remove it once its worker has stopped it",
                    problem.GetProperty("detail").GetString());
            }
        }
    }

    /// <summary>A job.json that is not a JSON object still makes a job: listed with empty fields, cancelled and removed.</summary>
    [Fact]
    public async Task A_job_whose_job_json_is_not_an_object_is_listed_and_can_be_cancelled_and_removed()
    {
        await using var service = fixture.WithJobs("jobs-junk");
        var jobs = Path.Combine(fixture.Root, "jobs-junk");
        var client = Client(service: service);
        foreach (var (id, text) in new[] { ("junk-list", "[1, 2]"), ("junk-null", "null"), ("junk-broken", "{bad") })
        {
            Directory.CreateDirectory(Path.Combine(jobs, id));
            File.WriteAllText(Path.Combine(jobs, id, "job.json"), text);
        }
        var list = await Http.JsonAsync(await client.GetAsync("/training/jobs"));
        Assert.Equal(["junk-broken", "junk-list", "junk-null"], list.EnumerateArray().Select(j => j.GetProperty("id").GetString()).Order());
        Assert.All(list.EnumerateArray(), j => Assert.Equal("", j.GetProperty("name").GetString()));
        foreach (var id in new[] { "junk-list", "junk-null", "junk-broken" })
        {
            Assert.Equal("cancelled", (await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{id}"))).GetProperty("status").GetString());
            await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{id}/folder"));
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(jobs));
    }

    /// <summary>
    /// A running job whose worker died (its lease stale) is cancelled at once, as a worker taking it over would, so it can
    /// be removed even when no worker is left; one whose lease beats is left to its worker (202).
    /// </summary>
    [Fact]
    public async Task A_running_job_whose_worker_died_is_cancelled_at_once()
    {
        await using var service = fixture.WithJobs("jobs-dead-worker");
        var jobs = Path.Combine(fixture.Root, "jobs-dead-worker");
        var client = Client(service: service);
        async Task<string> RunningAsync(TimeSpan beatAgo, bool statusWritten = true)
        {
            var id = (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted))
                .GetProperty("id").GetString()!;
            var lease = Path.Combine(jobs, id, "lease-000001");
            File.WriteAllText(lease, """{"owner": "trainer-1:42"}""");
            File.SetLastWriteTimeUtc(lease, DateTime.UtcNow - beatAgo);
            if (statusWritten)
            {
                File.WriteAllText(Path.Combine(jobs, id, "status.json"), $$"""{"id": "{{id}}", "status": "running", "attempt": 1, "worker": "trainer-1:42"}""");
            }
            return id;
        }
        var dead = await RunningAsync(TimeSpan.FromMinutes(5));
        var alive = await RunningAsync(TimeSpan.Zero);
        // A worker that died between taking the lease and writing its first status: the status is still attempt 0's.
        var diedAtOnce = await RunningAsync(TimeSpan.FromMinutes(5), statusWritten: false);
        Assert.Equal("cancelled", (await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{diedAtOnce}"))).GetProperty("status").GetString());

        var cancelled = await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{dead}"));
        Assert.Equal("cancelled", cancelled.GetProperty("status").GetString());
        Assert.Equal(2, cancelled.GetProperty("attempt").GetInt32());
        Assert.Equal("service", cancelled.GetProperty("worker").GetString());
        await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{dead}/folder"));

        var stopping = await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{alive}"), HttpStatusCode.Accepted);
        Assert.Equal("running", stopping.GetProperty("status").GetString());
        Assert.False(File.Exists(Path.Combine(jobs, alive, "lease-000002")));

        // A worker that took the job a moment ago and has not written its first status yet is alive too (its lease is
        // new): the job is its own, and the cancel is left to it, never written over it.
        var justTaken = await RunningAsync(TimeSpan.Zero, statusWritten: false);
        var leftToWorker = await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{justTaken}"), HttpStatusCode.Accepted);
        Assert.True(leftToWorker.GetProperty("cancelRequested").GetBoolean());
        Assert.NotEqual("cancelled", leftToWorker.GetProperty("status").GetString());
        Assert.False(File.Exists(Path.Combine(jobs, justTaken, "lease-000002")));
    }

    /// <summary>
    /// Training:StaleAfterSeconds is the lease's age past which a running job's worker is taken for dead (as the workers'
    /// --stale-after): a beat older than the default 60 s is alive under a longer setting, and a younger one dead under a shorter.
    /// </summary>
    [Theory]
    [InlineData(600, 300, false)]
    [InlineData(10, 30, true)]
    public async Task A_running_jobs_lease_is_judged_stale_by_Training_StaleAfterSeconds(int staleAfter, int beatSecondsAgo, bool stale)
    {
        var jobs = Path.Combine(fixture.Root, $"jobs-stale-after-{staleAfter}");
        await using var service = ServiceFactory.ForRoot(fixture.Models, ("Security:AdminApiKey", Key), ("Training:JobsRoot", jobs),
            ("Training:StaleAfterSeconds", staleAfter.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var client = Client(service: service);
        var id = (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted))
            .GetProperty("id").GetString()!;
        var lease = Path.Combine(jobs, id, "lease-000001");
        File.WriteAllText(lease, """{"owner": "trainer-1:42"}""");
        File.SetLastWriteTimeUtc(lease, DateTime.UtcNow.AddSeconds(-beatSecondsAgo));
        File.WriteAllText(Path.Combine(jobs, id, "status.json"), $$"""{"id": "{{id}}", "status": "running", "attempt": 1, "worker": "trainer-1:42"}""");

        var job = await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{id}"), stale ? HttpStatusCode.OK : HttpStatusCode.Accepted);
        Assert.Equal(stale ? "cancelled" : "running", job.GetProperty("status").GetString());
        // Cancelled at once only by taking the next lease, as a worker taking the job over would.
        Assert.Equal(stale, File.Exists(Path.Combine(jobs, id, "lease-000002")));
    }

    /// <summary>A job that has ended otherwise than cancelled is a 409 saying how it ended, and gets no cancel marker (which a page reads as "cancelling").</summary>
    [Theory]
    [InlineData("succeeded")]
    [InlineData("failed")]
    public async Task A_finished_job_is_not_cancelled_and_gets_no_cancel_marker(string status)
    {
        await using var service = fixture.WithJobs($"jobs-ended-{status}");
        var jobs = Path.Combine(fixture.Root, $"jobs-ended-{status}");
        var client = Client(service: service);
        var id = (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted))
            .GetProperty("id").GetString()!;
        File.WriteAllText(Path.Combine(jobs, id, "lease-000001"), "{}");
        File.WriteAllText(Path.Combine(jobs, id, "status.json"),
            $$"""{"id": "{{id}}", "status": "{{status}}", "attempt": 1, "finishedAt": "2026-11-30T09:00:00Z"}""");

        var problem = await Http.ProblemAsync(await client.DeleteAsync($"/training/jobs/{id}"), HttpStatusCode.Conflict, "training-job-finished");
        Assert.Contains($"Training job {id} has already {status}", problem.GetProperty("detail").GetString());
        Assert.False(File.Exists(Path.Combine(jobs, id, "cancel")), "a finished job was marked for cancelling");
        var job = await Http.JsonAsync(await client.GetAsync($"/training/jobs/{id}"));
        Assert.Equal(status, job.GetProperty("status").GetString());
        Assert.False(job.GetProperty("cancelRequested").GetBoolean());
    }

    /// <summary>A page following a running job sees the cancel it asked for at once (an event with cancelRequested), not only when the worker stops it.</summary>
    [Fact]
    public async Task A_follower_of_a_running_job_sees_its_cancel_requested()
    {
        await using var service = fixture.WithJobs("jobs-cancel-followed");
        var jobs = Path.Combine(fixture.Root, "jobs-cancel-followed");
        var client = Client(service: service);
        // A worker alive (its lease beat just now), so the cancel is left to it: the job stays running.
        var id = await SubmitJobAWorkerHoldsAsync(client, jobs);
        File.WriteAllText(Path.Combine(jobs, id, "status.json"), $$"""{"id": "{{id}}", "status": "running", "attempt": 1, "worker": "trainer-1:42"}""");

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{id}/events");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var first = await NextEventAsync(reader);
        Assert.Equal("running", first.GetProperty("status").GetString());
        Assert.False(first.GetProperty("cancelRequested").GetBoolean());

        await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{id}"), HttpStatusCode.Accepted);
        var cancelling = await NextEventAsync(reader);
        Assert.Equal("running", cancelling.GetProperty("status").GetString());
        Assert.True(cancelling.GetProperty("cancelRequested").GetBoolean());
    }

    /// <summary>A job whose folder is removed (by hand, or by another service on the same folder) ends its events stream: nothing will change it again.</summary>
    [Fact]
    public async Task An_events_stream_ends_when_the_jobs_folder_is_removed()
    {
        await using var service = fixture.WithJobs("jobs-vanishing");
        var jobs = Path.Combine(fixture.Root, "jobs-vanishing");
        // Queued, with no worker: only the folder's removal can end its stream.
        var id = (await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted))
            .GetProperty("id").GetString()!;
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{id}/events");
        using var response = await Client(service: service).SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("event:", await reader.ReadLineAsync());

        Directory.Delete(Path.Combine(jobs, id), recursive: true);
        var rest = reader.ReadToEndAsync();
        Assert.Same(rest, await Task.WhenAny(rest, Task.Delay(TimeSpan.FromSeconds(10))));
    }

    /// <summary>A model name may be 128 characters long (one more is refused: A_bad_job_is_a_400_problem_naming_the_field).</summary>
    [Fact]
    public async Task A_model_name_of_128_characters_is_accepted()
    {
        await using var service = fixture.WithJobs("jobs-long-name");
        var job = await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs", Body($$"""{"name": "{{Name128}}", "preset": "smoke"}""")),
            HttpStatusCode.Accepted);
        Assert.Equal(Name128, job.GetProperty("name").GetString());
    }

    /// <summary>With Training:KeepFinishedJobs, a finished job goes once that long has passed; queued and running ones stay.</summary>
    [Fact]
    public async Task Finished_jobs_are_removed_once_kept_for_Training_KeepFinishedJobs()
    {
        var jobs = Path.Combine(fixture.Root, "jobs-kept");
        await using var service = ServiceFactory.ForRoot(fixture.Models, ("Security:AdminApiKey", Key), ("Training:JobsRoot", jobs),
            ("Training:KeepFinishedJobs", "00:00:03"));
        var client = Client(service: service);
        async Task<string> SubmitAsync() => (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")),
            HttpStatusCode.Accepted)).GetProperty("id").GetString()!;
        var queued = await SubmitAsync();
        var cancelled = await SubmitAsync();
        // Timed from the service's own stamp: a clock read here, after the answer, could be late by as long as this
        // process took to read it.
        var cancelledAt = (await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{cancelled}"))).GetProperty("finishedAt").GetDateTimeOffset().UtcDateTime;

        async Task<string[]> ListedAsync() => (await Http.JsonAsync(await client.GetAsync("/training/jobs"))).EnumerateArray()
            .Select(j => j.GetProperty("id").GetString()!).ToArray();
        while ((await ListedAsync()).Contains(cancelled))
        {
            Assert.True(DateTime.UtcNow - cancelledAt < TimeSpan.FromSeconds(30), "the finished job was never removed");
            await Task.Delay(200);
        }
        Assert.True(DateTime.UtcNow - cancelledAt >= TimeSpan.FromSeconds(3), $"removed after {DateTime.UtcNow - cancelledAt}, before its 3 s");
        Assert.Equal([queued], await ListedAsync());
        Assert.False(Directory.Exists(Path.Combine(jobs, cancelled)));
    }

    /// <summary>A jobs folder the service cannot write is a 503 naming it, never a 500.</summary>
    [Fact]
    public async Task A_jobs_folder_that_cannot_be_written_is_a_503_naming_it()
    {
        // A file where the jobs folder should be: no folder can be made there (root ignores permissions).
        var notAFolder = Path.Combine(fixture.Root, "jobs-a-file");
        File.WriteAllText(notAFolder, "");
        await using (var service = fixture.WithJobs("jobs-a-file"))
        {
            var response = await Client(service: service).PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}"""));
            var refused = await Http.ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "training-folder-unavailable");
            Assert.Contains(notAFolder, refused.GetProperty("detail").GetString());
            Assert.False(response.Headers.Contains("Retry-After"), "waiting does not mend a folder that cannot be written");
            // Listing it is no empty list either.
            var listed = await Http.ProblemAsync(await Client(service: service).GetAsync("/training/jobs"), HttpStatusCode.ServiceUnavailable,
                "training-folder-unavailable");
            Assert.Contains("is a file, not a folder", listed.GetProperty("detail").GetString());
        }

        // A file where a folder above the jobs folder should be: the folder's path cannot be made.
        File.WriteAllText(Path.Combine(fixture.Root, "jobs-parent-a-file"), "");
        await using (var service = fixture.WithJobs(Path.Combine("jobs-parent-a-file", "jobs")))
        {
            var response = await Client(service: service).PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}"""));
            var refused = await Http.ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "training-folder-unavailable");
            Assert.Contains(Path.Combine(fixture.Root, "jobs-parent-a-file"), refused.GetProperty("detail").GetString());
        }

        // A cancel marker that cannot be written (a folder stands in its place).
        await using var writable = fixture.WithJobs("jobs-cancel-blocked");
        var client = Client(service: writable);
        var job = await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted);
        var id = job.GetProperty("id").GetString()!;
        Directory.CreateDirectory(Path.Combine(fixture.Root, "jobs-cancel-blocked", id, "cancel"));
        var problem = await Http.ProblemAsync(await client.DeleteAsync($"/training/jobs/{id}"), HttpStatusCode.ServiceUnavailable, "training-folder-unavailable");
        Assert.Contains(Path.Combine(fixture.Root, "jobs-cancel-blocked"), problem.GetProperty("detail").GetString());
    }

    /// <summary>Bytes that are not UTF-8 inside a string: a 400 naming the field (the parser leaves strings undecoded).</summary>
    [Fact]
    public async Task A_string_that_is_not_utf8_is_a_400_naming_the_field()
    {
        var body = new ByteArrayContent([.. """{"name": "m", "preset": "smo"""u8, 0xFF, .. "\"}"u8]);
        body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var problem = await Http.ProblemAsync(await Client().PostAsync("/training/jobs", body), HttpStatusCode.BadRequest, "invalid-training-job");
        Assert.Equal("preset", problem.GetProperty("field").GetString());
        Assert.Contains("not valid text", problem.GetProperty("detail").GetString());
    }

    /// <summary>An open events stream (a queued job, no worker: it would never finish) ends when the service stops, not at its shutdown timeout.</summary>
    [Fact]
    public async Task An_open_events_stream_ends_when_the_service_stops()
    {
        await using var service = fixture.WithJobs("jobs-stopping");
        var job = await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{job.GetProperty("id").GetString()}/events");
        using var response = await Client(service: service).SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("event:", await reader.ReadLineAsync());
        // HEAD would run the stream unseen: the one GET that does not answer it.
        using var head = new HttpRequestMessage(HttpMethod.Head, $"/training/jobs/{job.GetProperty("id").GetString()}/events");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await Client(service: service).SendAsync(head)).StatusCode);

        service.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().StopApplication();
        var rest = reader.ReadToEndAsync();
        Assert.Same(rest, await Task.WhenAny(rest, Task.Delay(TimeSpan.FromSeconds(10))));
    }

    [Theory]
    [InlineData("GET", "/training/jobs/20261130T080000123Z-00000000")]
    [InlineData("GET", "/training/jobs/20261130T080000123Z-00000000/events")]
    [InlineData("DELETE", "/training/jobs/20261130T080000123Z-00000000")]
    [InlineData("DELETE", "/training/jobs/20261130T080000123Z-00000000/folder")]
    [InlineData("DELETE", "/training/jobs/..%2F..%2Fetc/folder")]
    [InlineData("GET", "/training/jobs/..%2F..%2Fetc")]
    public async Task An_unknown_job_is_404(string method, string path)
    {
        await Http.ProblemAsync(await Client().SendAsync(new HttpRequestMessage(new HttpMethod(method), path)), HttpStatusCode.NotFound, "training-job-not-found");
    }

    [Fact]
    public async Task Without_a_jobs_folder_every_training_endpoint_says_training_is_not_configured()
    {
        await using var unconfigured = ServiceFactory.ForRoot(fixture.Models, ("Security:AdminApiKey", Key));
        var client = unconfigured.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", Key);
        foreach (var response in new[]
                 {
                     await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")),
                     await client.GetAsync("/training/jobs"),
                     await client.GetAsync("/training/jobs?status=paused&limit=0"),   // not configured comes first, as elsewhere
                     await client.GetAsync("/training/jobs/20261130T080000123Z-1a2b3c4d"),
                     await client.GetAsync("/training/jobs/20261130T080000123Z-1a2b3c4d/events"),
                     await client.DeleteAsync("/training/jobs/20261130T080000123Z-1a2b3c4d"),
                     await client.DeleteAsync("/training/jobs/20261130T080000123Z-1a2b3c4d/folder"),
                     await client.GetAsync("/training/options"),
                     await client.GetAsync("/training/data"),
                 })
        {
            var problem = await Http.ProblemAsync(response, HttpStatusCode.NotFound, "training-not-configured");
            Assert.Contains("Training:JobsRoot", problem.GetProperty("detail").GetString());
        }
    }

    /// <summary>
    /// Cancelling a cancelled job answers 200 with it again, as the API says, and changes nothing: a page that asks twice
    /// (a double click, a retry after a lost answer) gets no 409, and the job keeps the status the first cancel wrote.
    /// </summary>
    [Fact]
    public async Task Cancelling_a_cancelled_job_again_answers_200_and_changes_nothing()
    {
        await using var service = fixture.WithJobs("jobs-cancelled-twice");
        var folder = Path.Combine(fixture.Root, "jobs-cancelled-twice");
        var client = Client(service: service);
        var id = (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted))
            .GetProperty("id").GetString()!;
        var first = await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{id}"));
        Assert.Equal("cancelled", first.GetProperty("status").GetString());
        var written = File.ReadAllText(Path.Combine(folder, id, "status.json"));

        var again = await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{id}"));
        Assert.Equal("cancelled", again.GetProperty("status").GetString());
        Assert.Equal(1, again.GetProperty("attempt").GetInt32());
        Assert.Equal(first.GetProperty("finishedAt").GetDateTimeOffset(), again.GetProperty("finishedAt").GetDateTimeOffset());
        Assert.Equal(written, File.ReadAllText(Path.Combine(folder, id, "status.json")));
        Assert.Equal(["lease-000001"], Directory.GetFiles(Path.Combine(folder, id), "lease-*").Select(Path.GetFileName));
    }

    /// <summary>
    /// Each field of a worker's status.json is answered under its own name: fields of one type side by side (the train
    /// and test accuracy of an epoch, the images checked and to check, the heartbeat and the estimated finish) are
    /// not mixed up, which a page's accuracy curve and progress bar would show without a word.
    /// </summary>
    [Fact]
    public async Task Each_field_of_a_workers_status_is_answered_under_its_own_name()
    {
        var jobs = Path.Combine(fixture.Root, "jobs-fields");
        Directory.CreateDirectory(Path.Combine(jobs, "zz-fields"));
        File.WriteAllText(Path.Combine(jobs, "zz-fields", "job.json"),
            """{"name": "m", "preset": "smoke", "dataset": "imagefolder", "data": "photos", "options": {"epochs": 3}, "createdAt": "2026-12-01T09:00:00Z"}""");
        File.WriteAllText(Path.Combine(jobs, "zz-fields", "status.json"), """
            {"status": "running", "attempt": 2, "worker": "trainer-2:7", "resumedFromEpoch": 1,
             "startedAt": "2026-12-01T10:00:00Z", "heartbeatAt": "2026-12-01T10:05:00Z", "estimatedFinishAt": "2026-12-01T11:00:00Z",
             "progress": {"stage": "checking-images", "epoch": 2, "epochs": 3, "fraction": 0.25, "imagesChecked": 120, "imagesToCheck": 480},
             "metrics": {"testAccuracy": 0.75},
             "history": [{"epoch": 1, "phase": "warm", "trainAccuracy": 0.6, "testAccuracy": 0.55}]}
            """);
        await using var service = fixture.WithJobs("jobs-fields");
        var job = await Http.JsonAsync(await Client(service: service).GetAsync("/training/jobs/zz-fields"));

        Assert.Equal(("running", 2, "trainer-2:7", 1), (job.GetProperty("status").GetString(), job.GetProperty("attempt").GetInt32(),
            job.GetProperty("worker").GetString(), job.GetProperty("resumedFromEpoch").GetInt32()));
        Assert.Equal(("imagefolder", "photos", 3), (job.GetProperty("dataset").GetString(), job.GetProperty("data").GetString(),
            job.GetProperty("options").GetProperty("epochs").GetInt32()));
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T09:00:00Z", System.Globalization.CultureInfo.InvariantCulture), job.GetProperty("createdAt").GetDateTimeOffset());
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), job.GetProperty("startedAt").GetDateTimeOffset());
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T10:05:00Z", System.Globalization.CultureInfo.InvariantCulture), job.GetProperty("heartbeatAt").GetDateTimeOffset());
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T11:00:00Z", System.Globalization.CultureInfo.InvariantCulture), job.GetProperty("estimatedFinishAt").GetDateTimeOffset());
        Assert.Equal(JsonValueKind.Null, job.GetProperty("finishedAt").ValueKind);
        var progress = job.GetProperty("progress");
        Assert.Equal(("checking-images", 2, 3, 0.25, 120, 480), (progress.GetProperty("stage").GetString(), progress.GetProperty("epoch").GetInt32(),
            progress.GetProperty("epochs").GetInt32(), progress.GetProperty("fraction").GetDouble(), progress.GetProperty("imagesChecked").GetInt32(),
            progress.GetProperty("imagesToCheck").GetInt32()));
        Assert.Equal(0.75, job.GetProperty("metrics").GetProperty("testAccuracy").GetDouble());
        var epoch = Assert.Single(job.GetProperty("history").EnumerateArray());
        Assert.Equal((1, "warm", 0.6, 0.55), (epoch.GetProperty("epoch").GetInt32(), epoch.GetProperty("phase").GetString(),
            epoch.GetProperty("trainAccuracy").GetDouble(), epoch.GetProperty("testAccuracy").GetDouble()));
    }

    /// <summary>
    /// The limits GET /training/options gives are inclusive, as it says and as the trainer takes them: a value at an
    /// option's minimum or maximum, and a list of maxItems integers, are queued as given.
    /// </summary>
    [Theory]
    [InlineData("""{"epochs": 1}""")]
    [InlineData("""{"epochs": 1000}""")]
    [InlineData("""{"lrTrunk": 0}""")]
    [InlineData("""{"lrGamma": 1}""")]
    [InlineData("""{"onecyclePctStart": 0.01, "unfamiliarShare": 0.5}""")]
    [InlineData("""{"smallCnnWidths": [1, 2, 3, 4, 5, 6, 7, 4096]}""")]
    public async Task An_option_at_the_edge_of_its_range_is_accepted(string options)
    {
        await using var service = fixture.WithJobs("jobs-edges");
        var job = await Http.JsonAsync(await Client(service: service).PostAsync("/training/jobs",
            Body($$"""{"name": "m", "preset": "smoke", "options": {{options}}}""")), HttpStatusCode.Accepted);
        var given = JsonDocument.Parse(options).RootElement;
        var stored = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture.Root, "jobs-edges", job.GetProperty("id").GetString()!, "job.json")))
            .RootElement.GetProperty("options");
        Assert.True(JsonElement.DeepEquals(given, stored), $"stored {stored}, given {given}");
    }

    /// <summary>
    /// Training:KeepFinishedJobs counts from when a job finished, not from when it was queued: a job that waited and
    /// trained for longer than the keeping time is kept the whole of it once it ends, not removed the moment it ends.
    /// </summary>
    [Fact]
    public async Task A_finished_job_is_kept_for_Training_KeepFinishedJobs_from_when_it_finished()
    {
        var jobs = Path.Combine(fixture.Root, "jobs-kept-long-run");
        var now = DateTime.UtcNow;
        foreach (var (id, created, finished) in new[] { ("zz-long-run", now.AddHours(-4), now.AddMinutes(-1)), ("zz-long-ago", now.AddHours(-5), now.AddHours(-3)) })
        {
            Directory.CreateDirectory(Path.Combine(jobs, id));
            File.WriteAllText(Path.Combine(jobs, id, "job.json"), $$"""{"name": "m", "preset": "smoke", "createdAt": "{{created:O}}"}""");
            File.WriteAllText(Path.Combine(jobs, id, "status.json"), $$"""{"status": "succeeded", "attempt": 1, "finishedAt": "{{finished:O}}"}""");
        }
        await using var service = ServiceFactory.ForRoot(fixture.Models, ("Security:AdminApiKey", Key), ("Training:JobsRoot", jobs),
            ("Training:KeepFinishedJobs", "02:00:00"));
        var client = Client(service: service);

        // The sweep at the start goes through the jobs newest first: the one that finished long ago is removed after the other is passed over.
        await Eventually.TrueAsync(() => !Directory.Exists(Path.Combine(jobs, "zz-long-ago")), "the job that finished 3 hours ago was not removed");
        Assert.True(Directory.Exists(Path.Combine(jobs, "zz-long-run")), "the job that finished a minute ago was removed for having been queued 4 hours ago");
        Assert.Equal("succeeded", (await Http.JsonAsync(await client.GetAsync("/training/jobs/zz-long-run"))).GetProperty("status").GetString());
    }

    /// <summary>The events stream of a finished job sends the job once and ends: nothing will change it again, and a page reading it to its end is not left waiting.</summary>
    [Fact]
    public async Task The_events_stream_of_a_finished_job_sends_it_once_and_ends()
    {
        await using var service = fixture.WithJobs("jobs-finished-stream");
        var client = Client(service: service);
        var id = (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted))
            .GetProperty("id").GetString()!;
        await Http.JsonAsync(await client.DeleteAsync($"/training/jobs/{id}"));

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{id}/events");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var rest = reader.ReadToEndAsync();
        Assert.True(rest == await Task.WhenAny(rest, Task.Delay(TimeSpan.FromSeconds(10))), "the events stream of a cancelled job did not end within 10 s");
        var events = (await rest).Split('\n').Where(line => line.StartsWith("data: ", StringComparison.Ordinal)).ToArray();
        Assert.Equal("cancelled", JsonDocument.Parse(Assert.Single(events)["data: ".Length..]).RootElement.GetProperty("status").GetString());
    }

    /// <summary>
    /// A follower gets no event for a heartbeat alone (a worker beats every few seconds through an epoch of minutes):
    /// after polls that saw only a new heartbeat, the next event is the one for what changed next.
    /// </summary>
    [Fact]
    public async Task A_follower_gets_no_event_for_a_heartbeat_alone()
    {
        await using var service = fixture.WithJobs("jobs-heartbeat-followed");
        var folder = Path.Combine(fixture.Root, "jobs-heartbeat-followed");
        var client = Client(service: service);
        var id = await SubmitJobAWorkerHoldsAsync(client, folder);
        string Status(int epoch, string beat) =>
            $$$"""{"id": "{{{id}}}", "status": "running", "attempt": 1, "heartbeatAt": "{{{beat}}}", "progress": {"stage": "joint", "epoch": {{{epoch}}}, "epochs": 4, "fraction": 0.5}}""";
        WriteStatus(Path.Combine(folder, id), Status(2, "2026-12-01T10:00:00Z"));

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{id}/events");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal(2, (await NextEventAsync(reader)).GetProperty("progress").GetProperty("epoch").GetInt32());

        WriteStatus(Path.Combine(folder, id), Status(2, "2026-12-01T10:00:05Z"));
        await Task.Delay(1500);   // three polls (500 ms each) see the new heartbeat
        WriteStatus(Path.Combine(folder, id), Status(3, "2026-12-01T10:00:05Z"));
        Assert.Equal(3, (await NextEventAsync(reader)).GetProperty("progress").GetProperty("epoch").GetInt32());
    }

    /// <summary>
    /// A follower sees the check of a job's image files advance (a large folder's check takes minutes, and only the
    /// count of images checked changes meanwhile: the trainer does not exist yet to report a fraction).
    /// </summary>
    [Fact]
    public async Task A_follower_sees_the_image_check_advance()
    {
        await using var service = fixture.WithJobs("jobs-check-followed");
        var folder = Path.Combine(fixture.Root, "jobs-check-followed");
        var client = Client(service: service);
        var id = await SubmitJobAWorkerHoldsAsync(client, folder);
        string Status(int checkedImages) =>
            $$$"""{"id": "{{{id}}}", "status": "running", "attempt": 1, "progress": {"stage": "checking-images", "imagesChecked": {{{checkedImages}}}, "imagesToCheck": 1000}}""";
        WriteStatus(Path.Combine(folder, id), Status(100));

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/training/jobs/{id}/events");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal(100, (await NextEventAsync(reader)).GetProperty("progress").GetProperty("imagesChecked").GetInt32());

        WriteStatus(Path.Combine(folder, id), Status(200));
        Assert.Equal(200, (await NextEventAsync(reader)).GetProperty("progress").GetProperty("imagesChecked").GetInt32());
    }

    /// <summary>A smoke job submitted, and its lease just taken by a live worker (trainer-1:42): the job is that worker's to run or cancel.</summary>
    private static async Task<string> SubmitJobAWorkerHoldsAsync(HttpClient client, string jobs)
    {
        var id = (await Http.JsonAsync(await client.PostAsync("/training/jobs", Body("""{"name": "m", "preset": "smoke"}""")), HttpStatusCode.Accepted))
            .GetProperty("id").GetString()!;
        File.WriteAllText(Path.Combine(jobs, id, "lease-000001"), """{"owner": "trainer-1:42"}""");
        return id;
    }

    /// <summary>A job's status.json as a worker writes it: whole or not at all (written beside, renamed over), so a poll never reads half of it.</summary>
    private static void WriteStatus(string jobFolder, string json)
    {
        var beside = Path.Combine(jobFolder, ".status.json.test.tmp");
        File.WriteAllText(beside, json);
        File.Move(beside, Path.Combine(jobFolder, "status.json"), overwrite: true);
    }

    /// <summary>The next event's job; fails when none comes within 10 s (several polls of 500 ms: a busy machine may be slow, but not this slow) or the stream ends.</summary>
    private static async Task<JsonElement> NextEventAsync(StreamReader reader)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            while (await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal)) return JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone();
            }
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException("no event came within 10 s");
        }
        throw new Xunit.Sdk.XunitException("the events stream ended");
    }
}
