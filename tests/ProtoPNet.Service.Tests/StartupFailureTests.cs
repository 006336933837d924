using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// The service as a user starts it stops on a bad setting with exit status 1 and one line that names the setting, not
/// an unhandled exception's stack trace: a value out of its range, a word where a number belongs, an unknown name.
/// </summary>
[Collection(BundlesCollection.Name)]
public class StartupFailureTests(TrainerBundles bundles)
{
    [Theory]
    [InlineData("Batching__MaxBatchSize", "0", "MaxBatchSize")]
    [InlineData("Images__MaxBytes", "twenty", "Images:MaxBytes")]
    [InlineData("Batching__Strategy", "fastest", "Batching:Strategy")]
    [InlineData("Logging__Format", "xml", "Logging:Format")]
    public async Task BadSettingStopsTheStartWithOneLineNamingIt(string key, string value, string named)
    {
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot(),
            [key] = value,
        });
        await using (service)
        {
            Assert.False(ready, "the service started with a bad setting");
            Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
            var output = string.Join('\n', service.Output);
            var line = Assert.Single(service.Output, l => l.StartsWith("ProtoPNet Service cannot start:", StringComparison.Ordinal));
            Assert.Contains(named, line);
            Assert.DoesNotContain("Unhandled exception", output);
            Assert.DoesNotContain("   at ", output);
        }
    }
}
