using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// The warm-up a version gets on CUDA before it serves (one run at each batch size the batcher can form), run here on
/// the CPU with the real smoke bundle: it runs every size, leaves the session answering as before and stops on shutdown.
/// </summary>
[Collection(BundlesCollection.Name)]
public class BatchSizeWarmUpTests(TrainerBundles bundles)
{
    [Fact]
    public void EveryBatchSizeRunsOnceAndTheSessionAnswersAsBefore()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        var input = new float[bundle.Session.ImageElementCount];
        for (var i = 0; i < input.Length; i++) input[i] = (i % 17 - 8) / 8f;
        float[] before;
        using (var outputs = bundle.Session.Run(input, 1)) before = outputs.LogitsOf(0).ToArray();

        var milliseconds = bundle.Session.WarmUpBatchSizes(5);

        Assert.Equal(5, milliseconds.Length);
        Assert.All(milliseconds, ms => Assert.True(ms > 0, "each batch size ran"));
        using var after = bundle.Session.Run(input, 1);
        Assert.Equal(before, after.LogitsOf(0).ToArray());
    }

    [Fact]
    public void AShutdownStopsIt()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        Assert.Throws<OperationCanceledException>(() => bundle.Session.WarmUpBatchSizes(4, new CancellationToken(canceled: true)));
        Assert.Throws<ArgumentOutOfRangeException>(() => bundle.Session.WarmUpBatchSizes(0));
    }
}
