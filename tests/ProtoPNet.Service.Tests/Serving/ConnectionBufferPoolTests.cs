using System.Runtime.InteropServices;
using ProtoPNet.Service.Hosting;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>Kestrel's connection buffers come from the service's pool of large blocks: fewer socket reads per upload.</summary>
[Collection(BundlesCollection.Name)]
public class ConnectionBufferPoolTests(TrainerBundles bundles)
{
    private static byte[] ArrayOf(System.Buffers.IMemoryOwner<byte> block) => MemoryMarshal.TryGetArray<byte>(block.Memory, out var segment) ? segment.Array! : throw new InvalidOperationException();

    [Fact]
    public void ABlockIsReusedOnceGivenBackAndNeverLentTwice()
    {
        using var pool = new ConnectionBufferPool();
        var first = pool.Rent();
        Assert.Equal(ConnectionBufferPool.BlockSize, first.Memory.Length);
        Assert.Equal(pool.MaxBufferSize, first.Memory.Length);
        var array = ArrayOf(first);
        Assert.Equal(1, pool.BlocksInUse);

        first.Dispose();
        first.Dispose();   // a second dispose gives nothing back
        Assert.Equal(0, pool.BlocksInUse);
        using var again = pool.Rent();
        using var other = pool.Rent();
        Assert.Same(array, ArrayOf(again));
        Assert.NotSame(array, ArrayOf(other));
        Assert.Equal(2, pool.BlocksInUse);

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(ConnectionBufferPool.BlockSize + 1));
        pool.Rent(ConnectionBufferPool.BlockSize).Dispose();
    }

    [Fact]
    public void AtMostMostKeptFreeBlocksAreKept()
    {
        using var pool = new ConnectionBufferPool();
        var count = ConnectionBufferPool.MostKept + 10;
        var blocks = Enumerable.Range(0, count).Select(_ => pool.Rent()).ToList();
        var arrays = blocks.Select(ArrayOf).ToHashSet();
        foreach (var block in blocks) block.Dispose();

        var reused = Enumerable.Range(0, count).Select(_ => pool.Rent()).Count(block => arrays.Contains(ArrayOf(block)));
        Assert.Equal(ConnectionBufferPool.MostKept, reused);
    }

    [Fact]
    public async Task BlocksRentedAtTheSameTimeAreNeverShared()
    {
        using var pool = new ConnectionBufferPool();
        var workers = Enumerable.Range(1, 8).Select(worker => Task.Run(() =>
        {
            for (var i = 0; i < 2000; i++)
            {
                using var block = pool.Rent();
                var span = block.Memory.Span;
                span[..64].Fill((byte)worker);
                Thread.SpinWait(50);
                Assert.True(span[..64].IndexOfAnyExcept((byte)worker) < 0, "another renter wrote into this block");
            }
        })).ToArray();
        await Task.WhenAll(workers);
        Assert.Equal(0, pool.BlocksInUse);
    }

    /// <summary>The service as a user starts it (WebApplicationFactory's own Kestrel would register Kestrel's default pool after the service's).</summary>
    [Fact]
    public async Task TheServiceAsStartedReadsUploadsIntoItsLargeBlocks()
    {
        await using var service = await bundles.StartReadySmokeProcessAsync(("Inference__ExecutionProvider", "cpu"), ("Batching__Strategy", "fixed"));

        // Noise barely compresses: a 300 KB upload, read into several blocks.
        var random = new Random(3);
        using var noise = new Image<Rgb24>(320, 320);
        noise.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++) random.NextBytes(MemoryMarshal.AsBytes(rows.GetRowSpan(y)));
        });
        var upload = Http.Encode(noise, new PngEncoder());
        Assert.True(upload.Length > 300_000, $"{upload.Length} bytes");
        for (var i = 0; i < 3; i++)
        {
            var answer = await Http.JsonAsync(await service.Client.PostAsync("/classify", Http.Raw(upload, "image/png")));
            Assert.Equal(320, answer.GetProperty("image").GetProperty("width").GetInt32());
        }

        // The blocks it read them into are the service's (Kestrel's own pool would leave this at 0), kept for the next.
        var held = PrometheusText.Sum(await PrometheusText.ScrapeAsync(service.Client), "protopnet_connection_buffer_bytes");
        Assert.True(held >= ConnectionBufferPool.BlockSize, $"protopnet_connection_buffer_bytes {held}");
        Assert.Equal(0, held % ConnectionBufferPool.BlockSize);
    }
}
