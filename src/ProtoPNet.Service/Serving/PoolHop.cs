using System.Runtime.CompilerServices;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Awaited (<c>await PoolHop.OffSocketThread()</c>), goes on on the thread pool when on a socket thread (those are not
/// pool threads; see Hosting/InlineScheduling.cs), and at once on a pool thread. It must be awaited where the work is: an
/// async method that awaited it inside would finish on the pool, but its caller could find it finished already and go
/// on, synchronously, on the socket thread.
/// </summary>
public readonly struct PoolHop : ICriticalNotifyCompletion
{
    public static PoolHop OffSocketThread() => default;

    public PoolHop GetAwaiter() => this;

    public bool IsCompleted => Thread.CurrentThread.IsThreadPoolThread;

    public void GetResult()
    {
    }

    public void OnCompleted(Action continuation) => ThreadPool.QueueUserWorkItem(static run => run(), continuation, preferLocal: false);

    public void UnsafeOnCompleted(Action continuation) => ThreadPool.UnsafeQueueUserWorkItem(static run => run(), continuation, preferLocal: false);
}
