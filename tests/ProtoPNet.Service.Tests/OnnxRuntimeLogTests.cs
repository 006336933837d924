using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Hosting;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// ONNX Runtime's own lines go into the service's structured log (category OnnxRuntime), not to stderr in the runtime's
/// colours: with Serilog:MinimumLevel:Override:OnnxRuntime=Debug the runtime's informational lines about each session
/// appear as JSON events at Debug, and no line of the output is anything but JSON.
/// </summary>
[Collection(BundlesCollection.Name)]
public class OnnxRuntimeLogTests(TrainerBundles bundles)
{
    [Fact]
    public async Task TheRuntimesLinesAreEventsOfTheServicesLogAtTheLevelTheOperatorAskedFor()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Logging__Format", "json"), ("Inference__ExecutionProvider", "cpu"),
            ("Serilog__MinimumLevel__Override__OnnxRuntime", "Debug"));
        service.Terminate();
        Assert.Equal(0, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));

        var events = service.JsonEvents();
        var runtime = events.Where(e => e.TryGetProperty("SourceContext", out var source) && source.GetString() == OnnxRuntimeLogForwarder.Category).ToArray();
        var initializing = runtime.Where(e => e.GetProperty("@m").GetString()!.StartsWith("Initializing session.", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(initializing);
        Assert.All(initializing, e => Assert.Equal("Debug", e.GetProperty("@l").GetString()));
        Assert.All(initializing, e => Assert.Contains("inference_session.cc", e.GetProperty("RuntimeLocation").GetString(), StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.GetProperty("@m").GetString()!.Contains("environment was made before the service's", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ByDefaultTheRuntimeSaysNothingOnTheCpu()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Logging__Format", "json"), ("Inference__ExecutionProvider", "cpu"));
        service.Terminate();
        Assert.Equal(0, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));

        var events = service.JsonEvents();
        Assert.Contains(events, e => e.GetProperty("@m").GetString()!.StartsWith("Loaded model smoke@", StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.TryGetProperty("SourceContext", out var source) && source.GetString() == OnnxRuntimeLogForwarder.Category);
    }

    [Theory]
    [InlineData(OrtLoggingLevel.ORT_LOGGING_LEVEL_VERBOSE, "Node placements", LogLevel.Trace)]
    [InlineData(OrtLoggingLevel.ORT_LOGGING_LEVEL_INFO, "Initializing session.", LogLevel.Debug)]
    [InlineData(OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, "Some nodes were not assigned to the preferred execution providers which may or may not have an negative impact on performance.", LogLevel.Information)]
    [InlineData(OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, "Rerunning with verbose output on a non-minimal build will show node assignments.", LogLevel.Information)]
    [InlineData(OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, "Removing initializer 'w'. It is not used by any node and should be removed from the model.", LogLevel.Warning)]
    [InlineData(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, "Failed to load library", LogLevel.Error)]
    [InlineData(OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL, "Out of memory", LogLevel.Critical)]
    public void TheCudaPlacementNoteIsInformationAndOtherLinesKeepTheRuntimesSeverity(OrtLoggingLevel severity, string text, LogLevel expected) =>
        Assert.Equal(expected, OnnxRuntimeLogForwarder.LevelOf(new OnnxRuntimeMessage(severity, "onnxruntime", "graph.cc:1", text)));
}
