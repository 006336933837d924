using Microsoft.Extensions.Options;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Training;

/// <summary>
/// Says at start where training jobs go, as full paths: a relative Training:JobsRoot is relative to the service's working
/// directory, which <c>dotnet run --project</c> sets to the project's folder, and a worker watching another folder would
/// leave every job queued without a word. Also what /training answers when jobs cannot be submitted: without an admin
/// key, 403 admin-disabled comes before anything else.
/// </summary>
public sealed class TrainingStartReport(IOptions<TrainingOptions> options, IOptions<SecurityOptions> security, Models.ModelRegistry models,
    ILogger<TrainingStartReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var training = options.Value;
        var adminDisabled = security.Value.AdminDisabled;
        if (string.IsNullOrWhiteSpace(training.JobsRoot))
        {
            if (adminDisabled) logger.LogInformation("Training jobs are off (Training:JobsRoot is empty), and so are the administrative endpoints (Security:AdminApiKey is empty): /training answers 403 admin-disabled");
            else logger.LogInformation("Training jobs are off (Training:JobsRoot is empty): /training answers 404 training-not-configured");
            return Task.CompletedTask;
        }
        var jobs = Path.GetFullPath(training.JobsRoot);
        var data = string.IsNullOrWhiteSpace(training.DataRoot) ? null : Path.GetFullPath(training.DataRoot);
        // A worker publishing elsewhere ends its jobs succeeded with a version this service never serves (each such job says so too).
        logger.LogInformation("Training jobs are queued in {JobsRoot} (Training:JobsRoot; the training workers' --jobs must name this folder, and their --models this service's model root, {ModelRoot}, or what they publish is not served); jobs may name data under {DataRoot}",
            jobs, models.Root, data ?? "no folder (Training:DataRoot is empty)");
        if (adminDisabled)
        {
            logger.LogWarning("Security:AdminApiKey is empty, so /training answers 403 admin-disabled: no job can be submitted or followed through this service (workers still train what the jobs folder holds)");
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
