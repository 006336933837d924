using ProtoPNet.Inference.Bundles;
using ProtoPNet.Inference.Runtime;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>
/// Sessions of one batch size, as a version on CUDA is served (a change of batch size costs there about as much as a
/// first run): run here on the CPU with the real smoke bundle, where the outputs must be those of each image run alone,
/// whatever the padding, and every network run must be of that size.
/// </summary>
[Collection(BundlesCollection.Name)]
public class FixedBatchSizeTests(TrainerBundles bundles)
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(6)]
    [InlineData(9)]
    public void EveryRunIsOfTheFixedSizeAndEachImageGetsItsOwnOutputs(int count)
    {
        using var reference = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        bundle.Session.FixBatchSize(4);
        var elements = bundle.Session.ImageElementCount;
        // Exactly count rows: the session pads from a copy (the caller's buffer is not written).
        var images = new float[count * elements];
        for (var i = 0; i < count; i++) Array.Copy(InferenceBatcherTests.Pattern(bundle, shift: 31 * i), 0, images, i * elements, elements);
        var unchanged = images.ToArray();

        using var outputs = bundle.Session.Run(images, count);

        Assert.Equal(4, bundle.Session.LatestRunRows);
        Assert.Equal(unchanged, images);
        Assert.Equal(count, outputs.Count);
        for (var i = 0; i < count; i++)
        {
            using var alone = reference.Session.Run(InferenceBatcherTests.Pattern(bundle, shift: 31 * i), 1);
            AssertClose(alone.LogitsOf(0), outputs.LogitsOf(i), $"image {i} logit");
            AssertClose(alone.SimilaritiesOf(0), outputs.SimilaritiesOf(i), $"image {i} similarity");
            for (var m = 0; m < bundle.PrototypeCount; m += 7) AssertClose(alone.MapOf(0, m), outputs.MapOf(i, m), $"image {i} map {m}");
        }
    }

    /// <summary>
    /// A caller's buffer that already holds the padded rows (as the batcher rents it), its padding rows NaN: no image's
    /// outputs see them, without maps too. Whether the run reads that buffer in place or a copy is not visible here; the
    /// outputs being right either way is what is checked.
    /// </summary>
    [Fact]
    public void PaddingRowsOfAnythingLeaveEachImagesOutputsAloneWithoutMapsToo()
    {
        using var reference = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        bundle.Session.FixBatchSize(4);
        Assert.Equal(8, bundle.Session.RowsToRun(5));
        Assert.Equal(4, bundle.Session.RowsToRun(4));
        Assert.Equal(4, bundle.Session.RowsToRun(1));
        Assert.Equal(5, reference.Session.RowsToRun(5));
        var elements = bundle.Session.ImageElementCount;
        var images = new float[bundle.Session.RowsToRun(5) * elements];
        for (var i = 0; i < 5; i++) Array.Copy(InferenceBatcherTests.Pattern(bundle, shift: 13 * i), 0, images, i * elements, elements);
        Array.Fill(images, float.NaN, 5 * elements, 3 * elements);   // padding rows of anything: no other row sees them

        using var outputs = bundle.Session.Run(images, 5, withMaps: false);

        Assert.False(outputs.HasMaps);
        Assert.Equal(4, bundle.Session.LatestRunRows);
        for (var i = 0; i < 5; i++)
        {
            using var alone = reference.Session.Run(InferenceBatcherTests.Pattern(bundle, shift: 13 * i), 1, withMaps: false);
            AssertClose(alone.LogitsOf(0), outputs.LogitsOf(i), $"image {i} logit");
            AssertClose(alone.SimilaritiesOf(0), outputs.SimilaritiesOf(i), $"image {i} similarity");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => bundle.Session.FixBatchSize(0));
    }

    [Fact]
    public void TheWarmUpRunsTheFixedSizeOnceAndLeavesTheAnswersAsBefore()
    {
        using var bundle = ServiceFactory.LoadAsServed(bundles.SmokeBundle);
        bundle.Session.FixBatchSize(3);
        var input = InferenceBatcherTests.Pattern(bundle);
        float[] before;
        using (var outputs = bundle.Session.Run(input, 1)) before = outputs.LogitsOf(0).ToArray();

        var milliseconds = bundle.Session.WarmUp();

        Assert.True(milliseconds > 0, "the warm-up ran");
        Assert.Equal(3, bundle.Session.LatestRunRows);
        using var after = bundle.Session.Run(input, 1);
        Assert.Equal(before, after.LogitsOf(0).ToArray());
    }

    /// <summary>
    /// Served as on CUDA (batches of exactly 4 on the bundle's session, single images on one of size 1): single images run
    /// on the single-image session whether or not another request is in progress, batches on the other, each padded
    /// to 4, and every request gets its own image's outputs.
    /// </summary>
    [Fact]
    public async Task TheBatcherRunsSingleImagesOnTheirSessionAndBatchesPadded()
    {
        var loader = new BundleLoader(new SessionFactory(new InferenceOptions { ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 1 }));
        using var reference = loader.Load(bundles.SmokeBundle);
        using var bundle = loader.Load(bundles.SmokeBundle);
        var single = loader.LoadSession(bundle, 1);
        bundle.Session.FixBatchSize(4);
        single.FixBatchSize(1);
        bundle.ServeWith(bundle.Session, single);
        Assert.Same(single, bundle.SessionFor(1, alone: false));
        Assert.Same(bundle.Session, bundle.SessionFor(2, alone: true));
        using var metrics = InferenceBatcherTests.NewMetrics();
        var requests = InferenceBatcherTests.InProgress(3);   // more than the one run, and a queue delay: requests queue and share batches
        using var batcher = new InferenceBatcher(bundle, new ExecutionStrategy(4, 1, 1, "cuda"), new BatchingOptions { MaxBatchSize = 4, MaxQueueDelayMs = 200 }, metrics, requests);

        var inputs = Enumerable.Range(0, 7).Select(i => InferenceBatcherTests.Pattern(bundle, shift: 101 * i)).ToArray();
        var runs = await Task.WhenAll(inputs.Select(input => Task.Run(() => batcher.RunAsync(input, 1, CancellationToken.None))));
        try
        {
            Assert.Contains(runs, run => run.BatchSize > 1);
            Assert.All(runs, run => Assert.Equal(run.BatchSize == 1, run.Alone));
            for (var i = 0; i < inputs.Length; i++)
            {
                using var alone = reference.Session.Run(inputs[i], 1);
                AssertClose(alone.LogitsOf(0), runs[i].Outputs.LogitsOf(runs[i].FirstRow), $"request {i} logit");
            }
            Assert.Equal(4, bundle.Session.LatestRunRows);
        }
        finally
        {
            foreach (var run in runs) run.Dispose();
        }

        // The only request again (and soon after others: a fixed session of one image runs it all the same).
        requests.Leave();
        requests.Leave();
        using var lone = await batcher.RunAsync(inputs[0], 1, CancellationToken.None);
        Assert.True(lone.Alone);
        Assert.Equal(1, single.LatestRunRows);
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var k = 0; k < expected.Length; k++)
        {
            Assert.True(BundleLoader.WithinTolerance(actual[k], expected[k]), $"{what} {k}: {actual[k]} vs {expected[k]}");
        }
    }
}
