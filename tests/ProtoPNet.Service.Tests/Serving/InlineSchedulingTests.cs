using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Hosting;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Tests.Infrastructure;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ProtoPNet.Service.Tests.Serving;

/// <summary>Small /classify requests run on the socket thread that read them; anything larger leaves it first.</summary>
[Collection(BundlesCollection.Name)]
public class InlineSchedulingTests(TrainerBundles bundles)
{
    [Theory]
    [InlineData(null, true)]
    [InlineData("true", true)]
    [InlineData("false", false)]
    public void KestrelSchedulesInlineUnlessConfiguredOff(string? setting, bool inline)
    {
        using var factory = setting is null ? bundles.SmokeService() : bundles.SmokeService(("Classify:InlineSmallRequests", setting));
        var transport = factory.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value;
        Assert.Equal(inline, transport.UnsafePreferInlineScheduling);
    }

    /// <summary>From a thread of its own (as a socket thread is) the code after the await runs on the pool; on the pool it goes on at once.</summary>
    [Fact]
    public async Task LeavingTheSocketThreadContinuesOnThePool()
    {
        var moved = new TaskCompletionSource<(bool Before, bool After)>();
        async Task LeaveAsync()
        {
            var before = Thread.CurrentThread.IsThreadPoolThread;
            await PoolHop.OffSocketThread();
            moved.SetResult((before, Thread.CurrentThread.IsThreadPoolThread));
        }
        var socketLike = new Thread(() => _ = LeaveAsync());
        socketLike.Start();
        Assert.Equal((false, true), await moved.Task);

        Assert.True(await Task.Run(() => PoolHop.OffSocketThread().IsCompleted), "on a pool thread there is nothing to leave");
    }

    /// <summary>
    /// A read that a socket thread completes (here: a thread of its own, as a socket thread is) goes on on the pool
    /// through <see cref="PoolResumingRequestBody"/>; through the bare stream, on that thread.
    /// </summary>
    [Fact]
    public async Task AReadThatEndsOnASocketThreadGoesOnOnThePool()
    {
        static async Task<bool> OnPoolAfterReadingAsync(Stream body)
        {
            Assert.Equal(1, await body.ReadAsync(new byte[1]));
            return Thread.CurrentThread.IsThreadPoolThread;
        }
        Assert.False(await OnPoolAfterReadingAsync(new ReadOnItsOwnThread()), "the bare stream's reader should go on on the completing thread");
        Assert.True(await OnPoolAfterReadingAsync(new PoolResumingRequestBody(new ReadOnItsOwnThread())));
    }

    /// <summary>
    /// One socket thread for all connections (DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT=1), and a request far from small on
    /// a connection that has served one before (so it starts on the socket thread): other connections are answered while
    /// it is read, decoded, run, explained and drawn, and the socket thread spends little CPU time on it. Had it stayed on
    /// the socket thread, that thread could not even read them.
    /// </summary>
    [Fact]
    public async Task ALargeRequestLeavesTheSocketThreadSoOtherConnectionsAreServedMeanwhile()
    {
        await using var service = await StartWithOneSocketThreadAsync();
        using var oneConnection = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 })
        {
            BaseAddress = service.Client.BaseAddress, Timeout = TimeSpan.FromMinutes(2),
        };
        using var small = new Image<Rgb24>(32, 32, new Rgb24(200, 40, 40));
        await Http.JsonAsync(await oneConnection.PostAsync("/classify", Http.Raw(Http.Encode(small, new PngEncoder()), "image/png")));
        var socketThread = ThreadSchedule.PathOf(service.ProcessId, SocketThreadName);

        var upload = Http.Raw(LargeUpload(), "image/png");
        var socketBefore = ThreadSchedule.Read(socketThread);
        var started = Stopwatch.StartNew();
        var working = oneConnection.PostAsync(LargeRequest, upload);
        var tookFor = working.ContinueWith(_ => started.Elapsed, TaskContinuationOptions.ExecuteSynchronously);   // not the parse below
        var probes = await AskWhileAsync(service, socketThread, working);
        var answer = await Http.JsonAsync(await working);
        var took = await tookFor;
        var socketRan = (ThreadSchedule.Read(socketThread) - socketBefore).Ran;
        Assert.Equal(6000, answer.GetProperty("image").GetProperty("width").GetInt32());
        Assert.True(took > TimeSpan.FromSeconds(1), $"the large request took {took.TotalMilliseconds:0} ms: too quick to show anything");

        // Decoding, drawing and encoding 36 megapixels take seconds of CPU; reading the upload and answering the probes, ms.
        var during = $"a request of {took.TotalMilliseconds:0} ms; the socket thread ran {socketRan.TotalMilliseconds:0} ms meanwhile; " +
                     $"{probes.Asked} /health/live answers, the slowest {probes.Slowest.TotalMilliseconds:0} ms " +
                     $"(after {probes.WaitedForCpu.TotalMilliseconds:0} ms that the socket thread and the asking thread waited for a CPU)";
        Assert.True(socketRan < took / 10, $"the socket thread did the request's work: {during}");
        // Had the request kept the socket thread, the first probe during it would wait until it ends, and few would be
        // asked. Each answer is timed without the time the two threads it needed were ready but waited for a CPU: on a
        // 2-core machine running the other tests and building images, a runnable thread can wait half a second for one.
        Assert.True(probes.Asked >= took.TotalMilliseconds / 200, $"too few answers: {during}");
        Assert.True(probes.Slowest < took / 4, $"an answer waited too long: {during}");
    }

    /// <summary>The name Linux gives .NET's socket thread (its comm).</summary>
    private const string SocketThreadName = ".NET Sockets";

    private const string LargeRequest = "/classify?heatmaps=png&topPrototypes=10";

    private Task<ServiceProcess> StartWithOneSocketThreadAsync() => bundles.StartReadySmokeProcessAsync(
        ("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", "1"), ("Inference__ExecutionProvider", "cpu"), ("Batching__Strategy", "fixed"));

    /// <summary>36 megapixels that compress well: with ten heatmaps drawn, seconds of work and an answer of megabytes.</summary>
    private static byte[] LargeUpload()
    {
        using var large = new Image<Rgb24>(6000, 6000);
        large.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++) row[x] = new Rgb24((byte)(x / 24), (byte)(y / 24), 90);
            }
        });
        return Http.Encode(large, new PngEncoder());
    }

    /// <summary>
    /// Another connection asks /health/live every 50 ms until <paramref name="working"/> ends: how many answers, and the
    /// slowest, timed without the time that the service's socket thread (its schedstat file <paramref name="socketThread"/>)
    /// and the asking thread were ready to go on but waited for a CPU meanwhile. It asks from a thread of its own,
    /// synchronously, so that what it times is the service's answer and not a wait for this test process's thread pool,
    /// which the tests running beside it can keep busy for hundreds of ms on 2 cores.
    /// </summary>
    private static Task<(int Asked, TimeSpan Slowest, TimeSpan WaitedForCpu)> AskWhileAsync(ServiceProcess service, string socketThread, Task working) =>
        Task.Factory.StartNew(() =>
        {
            using var other = new HttpClient { BaseAddress = service.Client.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
            var (asked, slowest, waitedForCpu) = (0, TimeSpan.Zero, TimeSpan.Zero);
            while (!working.IsCompleted)
            {
                var (ownBefore, socketBefore) = (ThreadSchedule.OfThisThread(), ThreadSchedule.Read(socketThread));
                var sent = Stopwatch.GetTimestamp();
                using (var live = new HttpRequestMessage(HttpMethod.Get, "/health/live"))
                using (var answer = other.Send(live))
                {
                    Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
                }
                var elapsed = Stopwatch.GetElapsedTime(sent);
                var waited = (ThreadSchedule.OfThisThread() - ownBefore).WaitedForCpu + (ThreadSchedule.Read(socketThread) - socketBefore).WaitedForCpu;
                if (elapsed - waited > slowest) (slowest, waitedForCpu) = (elapsed - waited, waited);
                asked++;
                Thread.Sleep(50);
            }
            return (asked, slowest, waitedForCpu);
        }, TaskCreationOptions.LongRunning);   // a thread of its own

    /// <summary>A body whose every read completes 20 ms later on a new thread, running what awaited it there.</summary>
    private sealed class ReadOnItsOwnThread : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var done = new TaskCompletionSource<int>();   // continuations run on the completing thread
            new Thread(() =>
            {
                Thread.Sleep(20);
                done.SetResult(1);
            }).Start();
            return new ValueTask<int>(done.Task);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override void Flush() => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
