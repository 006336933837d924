using Microsoft.Extensions.Logging;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>This machine has no CUDA: auto falls back to the CPU with a warning, cuda refuses to start, cpu just runs.</summary>
[Collection(BundlesCollection.Name)]
public class ExecutionProviderTests(TrainerBundles bundles)
{
    [Fact]
    public async Task AutoFallsBackToCpuWithAWarningNamingTheReason()
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)), ("Inference:ExecutionProvider", "auto"));
        var client = factory.CreateClient();
        var models = await Http.JsonAsync(await client.GetAsync("/models"));
        Assert.Equal(SessionFactory.CpuProvider, models.GetProperty("executionProvider").GetString());
        Assert.Equal(SessionFactory.CpuProvider, models.GetProperty("models")[0].GetProperty("executionProvider").GetString());
        var reason = models.GetProperty("executionProviderFallbackReason").GetString();
        Assert.False(string.IsNullOrWhiteSpace(reason));

        var ready = await Http.JsonAsync(await client.GetAsync("/health/ready"));
        Assert.Equal(SessionFactory.CpuProvider, ready.GetProperty("executionProvider").GetString());

        var warning = Assert.Single(factory.Logs.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("falling back to") && e.Message.Contains("CPUExecutionProvider"));
        Assert.Contains(reason!, warning.Message);
        Assert.Contains("CUDA", warning.Message);
    }

    [Fact]
    public void CudaRequiredFailsTheStart()
    {
        var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)), ("Inference:ExecutionProvider", "cuda"));
        var error = Assert.ThrowsAny<Exception>(() => factory.CreateClient());
        var unavailable = Assert.IsType<ExecutionProviderUnavailableException>(Unwrap(error));
        Assert.Contains("'cuda'", unavailable.Message);
        factory.Dispose();
    }

    [Fact]
    public async Task CpuRunsWithoutAWarning()
    {
        await using var factory = ServiceFactory.ForRoot(bundles.NewRoot((bundles.SmokeBundle, "smoke", null)), ("Inference:ExecutionProvider", "cpu"));
        var models = await Http.JsonAsync(await factory.CreateClient().GetAsync("/models"));
        Assert.Equal(SessionFactory.CpuProvider, models.GetProperty("executionProvider").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, models.GetProperty("executionProviderFallbackReason").ValueKind);
        Assert.DoesNotContain(factory.Logs.Entries, e => e.Message.Contains("falling back"));
    }

    private static Exception Unwrap(Exception error)
    {
        while (error is not ExecutionProviderUnavailableException && error.InnerException is not null) error = error.InnerException;
        if (error is AggregateException aggregate) return aggregate.InnerExceptions.First();
        return error;
    }
}
