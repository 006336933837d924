using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Training;

/// <summary>
/// With <c>Training:KeepFinishedJobs</c> set, removes finished jobs (succeeded, failed, cancelled) that finished longer ago
/// than that, as <c>DELETE /training/jobs/{id}/folder</c> would: their folders and run folders, never the models they
/// published. Off by default: nothing is removed that nobody asked to remove.
/// </summary>
public sealed class FinishedJobRetention(TrainingJobStore store, IOptions<TrainingOptions> options, TimeProvider time,
    ILogger<FinishedJobRetention> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var keep = options.Value.KeepFinishedJobs;
        if (keep is not { } age || !store.IsConfigured) return;
        // Often enough that a job goes within a tenth of its keeping time, at most hourly.
        var every = TimeSpan.FromTicks(Math.Clamp(age.Ticks / 10, TimeSpan.FromSeconds(1).Ticks, TimeSpan.FromHours(1).Ticks));
        using var timer = new PeriodicTimer(every, time);
        do
        {
            RemoveExpired(age);
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>One sweep: every job finished more than <paramref name="age"/> ago is removed; a failure is logged and tried again next time.</summary>
    internal void RemoveExpired(TimeSpan age)
    {
        var before = time.GetUtcNow() - age;
        try
        {
            foreach (var job in store.List().Where(job => job.IsFinished && (job.FinishedAt ?? job.CreatedAt) < before))
            {
                try
                {
                    store.Remove(job.Id);
                }
                catch (Exception error) when (error is not OutOfMemoryException)
                {
                    logger.LogWarning("Training job {JobId} finished over {KeepFinishedJobs} ago but cannot be removed: {Reason}", job.Id, age, error.Message);
                }
            }
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // Whatever happened, the next sweep tries again: a fault here must never stop the service (a background
            // service's exception stops the host).
            logger.LogWarning("The jobs folder cannot be listed for finished jobs to remove: {Reason}", error.Message);
        }
    }
}
