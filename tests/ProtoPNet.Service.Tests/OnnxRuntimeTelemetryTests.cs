using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// ONNX Runtime's usage telemetry stays off in the service: its collector, on unless ORT_DISABLE_TELEMETRY is set when
/// the runtime starts, leaves a device identifier under the user's cache folder, which shows whether it ran. The
/// service sets the variable itself; a value the operator gave is kept (which also shows what the check would see).
/// </summary>
[Collection(BundlesCollection.Name)]
public class OnnxRuntimeTelemetryTests(TrainerBundles bundles)
{
    [Theory]
    [InlineData(null, false)]
    [InlineData("0", true)]
    public async Task TheServiceLeavesNoTelemetryIdentifierUnlessTheOperatorAsksForTelemetry(string? operatorValue, bool expected)
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
            }
            var identifiers = Directory.EnumerateDirectories(home, ".onnxruntime", SearchOption.AllDirectories).ToArray();
            Assert.Equal(expected, identifiers.Length > 0);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }
}
