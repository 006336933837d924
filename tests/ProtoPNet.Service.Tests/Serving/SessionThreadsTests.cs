using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// A session of one thread per core (Inference:IntraOpThreads 0) is given that number: ONNX Runtime's own default
/// for 0 pins each of its threads to a core, and a two-thread session so made answered a lone image slowly in 11 of 25
/// of the development machine's starts (docs/PERFORMANCE.md, thirty-second session).
/// </summary>
[Collection(BundlesCollection.Name)]
public class SessionThreadsTests(TrainerBundles bundles)
{
    [Fact]
    public void ASessionOfOneThreadPerCoreLeavesItsThreadsFreeToRunOnAnyCore()
    {
        var processCpus = CpusAllowed("/proc/self/status") ?? throw new InvalidOperationException("no /proc/self/status");
        var before = ThreadIds();
        var loader = new BundleLoader(new SessionFactory(new InferenceOptions { ExecutionProvider = ExecutionProviderKind.Cpu }));
        using var bundle = loader.Load(bundles.SmokeBundle);
        using (bundle.Session.Run(InferenceBatcherTests.Pattern(bundle), 1)) { }

        // ONNX Runtime's pool: one thread per core beside the caller's (other tests may start threads meanwhile).
        var started = ThreadIds().Except(before).ToArray();
        Assert.True(started.Length >= Environment.ProcessorCount - 1, $"{started.Length} threads started for {Environment.ProcessorCount} cores");
        foreach (var thread in started)
        {
            // A thread that has ended meanwhile (another test's) has nothing left to check.
            if (CpusAllowed($"/proc/self/task/{thread}/status") is { } threadCpus) Assert.Equal(processCpus, threadCpus);
        }
    }

    private static HashSet<string> ThreadIds() => Directory.GetDirectories("/proc/self/task").Select(Path.GetFileName).OfType<string>().ToHashSet();

    /// <summary>The status file's <c>Cpus_allowed_list</c> line; null when the thread has ended.</summary>
    private static string? CpusAllowed(string status)
    {
        try
        {
            return File.ReadLines(status).Single(line => line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return null;
        }
    }
}
