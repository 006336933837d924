using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// What a shutdown (SIGTERM) does, said in the log: first the drain (<see cref="ShutdownOptions.DrainSeconds"/>), when
/// one is configured, in which requests are still accepted while /health/ready answers 503 shutting-down; then the
/// server stops accepting, and the requests in progress have the rest of the host's shutdownTimeoutSeconds (30 by
/// default) to finish: how many there are, how many finished, and how many were still running when that time ran out,
/// whose connections the server then closes without an answer. Without it a stop that cut requests off left no line about them.
/// </summary>
/// <remarks>
/// The host calls every service's <see cref="StoppingAsync"/> before it stops any (the web server among them), and
/// after SIGTERM has signalled ApplicationStopping: the server keeps accepting until the drain there is over.
/// </remarks>
public sealed class ShutdownReport(IHostApplicationLifetime lifetime, InferenceRequests requests, IOptions<HostOptions> host,
    IOptions<ShutdownOptions> options, ILogger<ShutdownReport> logger) : IHostedLifecycleService
{
    private TimeSpan Timeout => host.Value.ShutdownTimeout;
    private TimeSpan Drain => TimeSpan.FromSeconds(options.Value.DrainSeconds);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopping.Register(() =>
        {
            if (Drain <= TimeSpan.Zero) return;
            logger.LogInformation(
                "Shutting down: for {DrainSeconds} s (Shutdown:DrainSeconds) requests are still accepted while /health/ready answers 503 shutting-down; {InProgress} inference requests in progress",
                Drain.TotalSeconds, requests.InProgress);
        });
        lifetime.ApplicationStopped.Register(() =>
        {
            // Those the server has cut off, and those still running, whose connections it has closed too.
            var cutOff = requests.CutOffByShutdown + requests.InProgress;
            if (cutOff > 0)
            {
                logger.LogWarning("{CutOff} inference requests were still in progress when the {ShutdownSeconds:0} s of the shutdown ran out: their connections were closed without a whole answer (logged as 503). A longer shutdownTimeoutSeconds (ASPNETCORE_SHUTDOWNTIMEOUTSECONDS), and the platform's grace period with it, lets heavy requests finish. {Finished} others finished",
                    cutOff, Timeout.TotalSeconds, requests.FinishedAfterClosing);
            }
            else
            {
                // The count at the start leaves out requests not yet read from their connections; this one has them all.
                logger.LogInformation("Shut down: {Finished} inference requests finished after the server stopped accepting, none cut off",
                    requests.FinishedAfterClosing);
            }
        });
        return Task.CompletedTask;
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        if (Drain > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(Drain, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // The shutdown's own time ran out (validation keeps the drain shorter; a second signal may still end it).
            }
        }
        requests.ServerCloses();
        logger.LogInformation(
            "Shutting down: no more connections are accepted; {InProgress} inference requests in progress have up to {ShutdownSeconds:0} s to finish (shutdownTimeoutSeconds)",
            requests.InProgress, (Timeout - Drain).TotalSeconds);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
