using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Admission to the CPU work before a request reaches its model's batcher (decoding the uploads, writing the input
/// tensor): one request per core at a time, the others wait in arrival order. A request that finds
/// <see cref="BatchingOptions.MaxQueueSize"/> requests waiting is refused at once, and one that waits longer than
/// <see cref="BatchingOptions.QueueTimeoutMs"/> is refused then, both "overloaded" (503, as from a full model queue).
/// Without it an overload of large photos was decoded all at once, time-sliced, so every request got slow and none was
/// refused: 12-megapixel JPEGs at concurrency 64 on 2 cores waited 5 s (p50) to 15 s (p99).
/// </summary>
public sealed class PreprocessingGate : IDisposable
{
    private readonly ConcurrencyLimiter _limiter;
    private readonly int _queueLimit;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _stuckAfter;
    private readonly Lock _progressLock = new();
    private (long Turns, DateTime SinceUtc) _progress = (-1, DateTime.MinValue);
    private volatile bool _disposed;

    public PreprocessingGate(IOptions<BatchingOptions> options)
    {
        _queueLimit = options.Value.MaxQueueSize;
        _timeout = TimeSpan.FromMilliseconds(options.Value.QueueTimeoutMs);
        _stuckAfter = TimeSpan.FromSeconds(options.Value.DecodeStuckSeconds);
        _limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = Turns,
            QueueLimit = _queueLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
    }

    /// <summary>Turns given since the start (a request of several images takes one per image).</summary>
    public long TurnsGiven => _disposed ? 0 : _limiter.GetStatistics()?.TotalSuccessfulLeases ?? 0;

    /// <summary>Requests waiting for a turn now.</summary>
    public long Waiting => _disposed ? 0 : _limiter.GetStatistics()?.CurrentQueuedCount ?? 0;

    /// <summary>
    /// How long every turn has been held with none given since, once that is <see cref="BatchingOptions.DecodeStuckSeconds"/>
    /// or more (decodes that never return); null otherwise. Measured from the first call that saw the turns so, which the
    /// liveness probe makes every few seconds: no clock is read on a request's path.
    /// </summary>
    public TimeSpan? StuckFor(DateTime utcNow)
    {
        if (_disposed) return null;
        var statistics = _limiter.GetStatistics();
        lock (_progressLock)
        {
            if (statistics is null || statistics.CurrentAvailablePermits > 0 || statistics.TotalSuccessfulLeases != _progress.Turns)
            {
                _progress = (statistics?.CurrentAvailablePermits > 0 ? -1 : statistics?.TotalSuccessfulLeases ?? -1, utcNow);
                return null;
            }
            var held = utcNow - _progress.SinceUtc;
            return held >= _stuckAfter ? held : null;
        }
    }

    /// <summary>The turns to decode at once (one per core).</summary>
    public static int Turns => Environment.ProcessorCount;

    /// <summary>Waits for a turn; dispose the result when the images are prepared.</summary>
    public async ValueTask<IDisposable> EnterAsync(CancellationToken cancellationToken)
    {
        if (_disposed) throw ProblemCatalog.OverloadedByShutdown();
        // A client that has left gets no turn, even a free one: a batch's next image is then not decoded for nobody.
        cancellationToken.ThrowIfCancellationRequested();
        // The usual case, a free turn: no timer, no allocation beyond the lease.
        RateLimitLease lease;
        try
        {
            lease = _limiter.AttemptAcquire();
        }
        catch (ObjectDisposedException)
        {
            throw ProblemCatalog.OverloadedByShutdown();
        }
        if (lease.IsAcquired) return lease;
        lease.Dispose();
        return await WaitAsync(cancellationToken);
    }

    private async ValueTask<RateLimitLease> WaitAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        RateLimitLease lease;
        try
        {
            lease = await _limiter.AcquireAsync(1, timeout.Token);
        }
        catch (ObjectDisposedException)
        {
            throw ProblemCatalog.OverloadedByShutdown();
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Overloaded(
                $"The request waited {_timeout.TotalMilliseconds:0} ms in the queue for decoding its images (Batching:QueueTimeoutMs). Retry shortly.");
        }
        if (lease.IsAcquired) return lease;
        lease.Dispose();
        if (_disposed) throw ProblemCatalog.OverloadedByShutdown();   // disposing the limiter fails every waiting request's lease
        throw Overloaded(
            $"The service is overloaded: {_queueLimit} requests are queued for decoding their images (limit Batching:MaxQueueSize). Retry shortly.");
    }

    private static ProblemException Overloaded(string detail) => new(ProblemCatalog.Overloaded, detail);

    public void Dispose()
    {
        _disposed = true;
        _limiter.Dispose();
    }
}
