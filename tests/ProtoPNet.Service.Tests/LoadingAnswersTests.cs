using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ProtoPNet.Service.Models;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// The service listens before its models load. Meanwhile every lookup of a model answers that it is loading, whatever
/// the name (a name that will load is not 404 "not loaded"): 503 no-model-ready with Retry-After for the JSON API and
/// v2 metadata, 400 for v2 model readiness (the protocol answers "not ready" with a 4xx). Once loaded, the same requests
/// are answered. The loading is held here by a gate in place of the service's own loading service.
/// </summary>
[Collection(BundlesCollection.Name)]
public class LoadingAnswersTests(TrainerBundles bundles)
{
    private sealed class GatedLoading(ModelRegistry registry, TaskCompletionSource gate) : IHostedService
    {
        private Task? _loading;

        public Task StartAsync(CancellationToken cancellationToken)
        {
            _loading = Task.Run(async () =>
            {
                await gate.Task;
                registry.LoadAll();
            }, CancellationToken.None);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            gate.TrySetResult();
            return _loading ?? Task.CompletedTask;
        }
    }

    [Fact]
    public async Task ModelLookupsWhileTheModelsLoadSayTheServiceIsLoading()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)));
        factory.Replacing = services =>
        {
            services.Remove(services.Single(descriptor => descriptor.ImplementationType == typeof(ModelLoadingService)));
            services.AddSingleton<IHostedService>(provider => new GatedLoading(provider.GetRequiredService<ModelRegistry>(), gate));
        };
        using var client = factory.CreateClient();
        var version = Path.GetFileName(bundles.SmokeBundle);
        string[] problemPaths =
        [
            "/models/smoke", $"/models/smoke/versions/{version}", $"/models/smoke/versions/{version}/prototypes",
            $"/models/smoke/versions/{version}/prototypes/0/patch.png", $"/models/smoke/versions/{version}/examples/0",
            "/models/never-published",
        ];

        foreach (var path in problemPaths)
        {
            using var answer = await client.GetAsync(path);
            Assert.True(answer.StatusCode == HttpStatusCode.ServiceUnavailable, $"{path}: {answer.StatusCode}");
            Assert.Equal(TimeSpan.FromSeconds(5), answer.Headers.RetryAfter?.Delta);
            var problem = JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("urn:protopnet:problem:no-model-ready", problem.GetProperty("type").GetString());
            Assert.Contains("loading its models", problem.GetProperty("detail").GetString());
        }
        using (var metadata = await client.GetAsync("/v2/models/smoke"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, metadata.StatusCode);
            Assert.Contains("loading its models", JsonDocument.Parse(await metadata.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        }
        foreach (var path in (string[])["/v2/models/smoke/ready", $"/v2/models/smoke/versions/{version}/ready"])
        {
            using var ready = await client.GetAsync(path);
            Assert.True(ready.StatusCode == HttpStatusCode.BadRequest, $"{path}: {ready.StatusCode}");
            Assert.Contains("loading its models", JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
        }
        using (var invalid = await client.GetAsync("/v2/models/smoke/versions/..%2F/ready"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);   // the name rule first, loading or not
            Assert.DoesNotContain("loading", await invalid.Content.ReadAsStringAsync());
        }

        gate.SetResult();
        var registry = factory.Services.GetRequiredService<ModelRegistry>();
        var loaded = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (registry.Catalog.IsLoading && DateTime.UtcNow < loaded) await Task.Delay(20);
        Assert.False(registry.Catalog.IsLoading);
        foreach (var path in problemPaths.SkipLast(1).Append("/v2/models/smoke").Append("/v2/models/smoke/ready"))
        {
            using var answer = await client.GetAsync(path);
            Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{path} once loaded: {answer.StatusCode}");
        }
        using var unknown = await client.GetAsync("/models/never-published");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        using var unknownReady = await client.GetAsync("/v2/models/never-published/ready");
        Assert.Equal(HttpStatusCode.NotFound, unknownReady.StatusCode);
    }
}
