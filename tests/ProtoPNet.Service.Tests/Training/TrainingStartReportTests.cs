using System.Net;
using System.Text;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Training;

/// <summary>
/// The service says at start, as a full path, where it queues training jobs: a relative Training:JobsRoot is relative to
/// its working directory (under <c>dotnet run --project</c>, the project's folder), and a worker watching another folder
/// would leave every job queued without a word.
/// </summary>
[Collection(BundlesCollection.Name)]
public class TrainingStartReportTests(TrainerBundles bundles)
{
    private const string AdminKey = "start-report-admin-key";

    /// <summary>
    /// Without a jobs folder the start says training is off, with the answer /training really gives: 403 admin-disabled
    /// while the admin key is missing too, which comes first (it said 404 whatever the key).
    /// </summary>
    [Theory]
    [InlineData(null, HttpStatusCode.Forbidden, "admin-disabled")]
    [InlineData(AdminKey, HttpStatusCode.NotFound, "training-not-configured")]
    public async Task Without_a_jobs_folder_the_start_says_what_training_answers(string? adminKey, HttpStatusCode status, string problem)
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)), ("Security:AdminApiKey", adminKey));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/training/jobs");
        if (adminKey is not null) request.Headers.Add("X-Api-Key", adminKey);
        await Http.ProblemAsync(await factory.CreateClient().SendAsync(request), status, problem);
        Assert.Single(factory.Logs.Entries, e => e.Message.StartsWith("Training jobs are off", StringComparison.Ordinal)
            && e.Message.EndsWith($"/training answers {(int)status} {problem}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_start_names_the_full_path_where_jobs_are_queued_and_they_are_queued_there()
    {
        var relative = $"jobs-start-report-{Guid.NewGuid():N}";
        var jobs = Path.Combine(ServiceProcess.ServiceDirectory(), relative);
        try
        {
            await using var service = await bundles.StartReadySmokeProcessAsync(("Training__JobsRoot", relative), ("Security__AdminApiKey", AdminKey));
            var said = $"Training jobs are queued in {jobs} (Training:JobsRoot; the training workers' --jobs must name this folder, and their --models this service's model root, ";
            Assert.True(service.Output.Any(line => line.Contains(said, StringComparison.Ordinal)
                && line.Contains(", or what they publish is not served)", StringComparison.Ordinal)), $"no line saying '{said}':\n" + string.Join('\n', service.Output));
            Assert.True(service.Output.Any(line => line.Contains(said, StringComparison.Ordinal)), $"no line saying '{said}':\n" + string.Join('\n', service.Output));

            using var request = new HttpRequestMessage(HttpMethod.Post, "/training/jobs")
            {
                Content = new StringContent("""{"name": "m", "preset": "smoke"}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("X-Api-Key", AdminKey);
            var answer = await service.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode);
            var id = System.Text.Json.JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
            Assert.True(File.Exists(Path.Combine(jobs, id, "job.json")), $"the job is not in {jobs}");
        }
        finally
        {
            if (Directory.Exists(jobs)) Directory.Delete(jobs, recursive: true);
        }
    }
}
