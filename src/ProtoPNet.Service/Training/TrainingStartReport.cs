using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Training;

/// <summary>
/// Says at start where training jobs go, as full paths: a relative Training:JobsRoot is relative to the service's working
/// directory, which <c>dotnet run --project</c> sets to the project's folder, and a worker watching another folder would
/// leave every job queued without a word.
/// </summary>
public sealed class TrainingStartReport(IOptions<TrainingOptions> options, ILogger<TrainingStartReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var training = options.Value;
        if (string.IsNullOrWhiteSpace(training.JobsRoot))
        {
            logger.LogInformation("Training jobs are off (Training:JobsRoot is empty): /training answers 404");
            return Task.CompletedTask;
        }
        var jobs = Path.GetFullPath(training.JobsRoot);
        var data = string.IsNullOrWhiteSpace(training.DataRoot) ? null : Path.GetFullPath(training.DataRoot);
        logger.LogInformation("Training jobs are queued in {JobsRoot} (Training:JobsRoot; the training workers' --jobs must name this folder); jobs may name data under {DataRoot}",
            jobs, data ?? "no folder (Training:DataRoot is empty)");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
