namespace ProtoPNet.Service.Models;

/// <summary>Loads the bundles before the server accepts requests; a required provider that is missing stops the start.</summary>
public sealed class ModelLoadingService(ModelRegistry registry) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        registry.LoadAll();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
