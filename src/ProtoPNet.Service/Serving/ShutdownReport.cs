using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Says what a shutdown does to the requests in progress: how many there are when it starts and how long they have
/// (the host's shutdownTimeoutSeconds, 30 by default), and how many were still running when that time ran out, whose connections the server
/// then closes without an answer. Without it a stop that cut requests off left no line about them.
/// </summary>
public sealed class ShutdownReport(IHostApplicationLifetime lifetime, InferenceRequests requests, IOptions<HostOptions> host,
    ILogger<ShutdownReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var timeout = host.Value.ShutdownTimeout;
        lifetime.ApplicationStopping.Register(() => logger.LogInformation(
            "Shutting down: {InProgress} inference requests in progress have up to {ShutdownSeconds:0} s to finish (shutdownTimeoutSeconds); /health/ready answers 503 shutting-down meanwhile",
            requests.InProgress, timeout.TotalSeconds));
        lifetime.ApplicationStopped.Register(() =>
        {
            // Those the server has cut off, and those still running, whose connections it has closed too.
            var cutOff = requests.CutOffByShutdown + requests.InProgress;
            if (cutOff > 0)
            {
                logger.LogWarning("{CutOff} inference requests were still in progress when the {ShutdownSeconds:0} s of the shutdown ran out: their connections were closed without a whole answer (logged as 503). A longer shutdownTimeoutSeconds (ASPNETCORE_SHUTDOWNTIMEOUTSECONDS), and the platform's grace period with it, lets heavy requests finish",
                    cutOff, timeout.TotalSeconds);
            }
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
