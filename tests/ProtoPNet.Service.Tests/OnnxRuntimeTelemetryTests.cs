using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// ONNX Runtime's usage telemetry stays off in the service: the service sets ORT_DISABLE_TELEMETRY in the process's own
/// environment (where the native runtime reads it; .NET's copy would not reach it) unless the operator set a value, and
/// says at start which value the runtime sees. Where the runtime's collector runs (whether it does depends on the host:
/// it looks at CI variables, containers and CA bundles), it leaves a device identifier under the user's cache folder;
/// with the variable set there is none.
/// </summary>
[Collection(BundlesCollection.Name)]
public class OnnxRuntimeTelemetryTests(TrainerBundles bundles)
{
    [Theory]
    [InlineData(null, "ONNX Runtime usage telemetry is off (ORT_DISABLE_TELEMETRY=1)")]
    [InlineData("0", "ONNX Runtime usage telemetry may be on: ORT_DISABLE_TELEMETRY=0, as the operator set it")]
    public async Task TheServiceTurnsTheRuntimesTelemetryOffUnlessTheOperatorSetItAndSaysWhich(string? operatorValue, string expectedLine)
    {
        var home = Directory.CreateTempSubdirectory("protopnet-telemetry-home-").FullName;
        try
        {
            var settings = new List<(string, string)> { ("HOME", home), ("XDG_CACHE_HOME", Path.Combine(home, ".cache")) };
            if (operatorValue is not null) settings.Add(("ORT_DISABLE_TELEMETRY", operatorValue));
            await using (var service = await bundles.StartReadySmokeProcessAsync([.. settings]))
            {
                var answer = await service.Client.PostAsync("/classify", Http.Image(Http.BundleImage(bundles.SmokeBundle, 0)));
                Assert.Equal(System.Net.HttpStatusCode.OK, answer.StatusCode);
                Assert.True(service.Output.Any(line => line.Contains(expectedLine, StringComparison.Ordinal)),
                    $"no line saying '{expectedLine}':\n" + string.Join('\n', service.Output));
            }
            if (operatorValue is null)
                Assert.Empty(Directory.EnumerateDirectories(home, ".onnxruntime", SearchOption.AllDirectories));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }
}
