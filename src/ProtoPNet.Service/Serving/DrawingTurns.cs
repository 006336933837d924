using Microsoft.Extensions.Options;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Turns at the CPU for drawing answers' pictures (heatmaps=png, the card): one answer per core draws at a time, the
/// others wait without holding a thread. Without it, 60 answers of ten 1000x1000 heatmaps each drew at once on 60 pool
/// threads, and a liveness probe's new connection waited up to 10 s for a thread.
/// <para>
/// A streamed answer gives its turn back while it waits for its client to read (<see cref="DrawingTurn.Pause"/>), so a
/// slow reader holds up no one, and takes one again to draw on. Turns go to the oldest answer waiting, an answer in
/// progress before a new one: had an answer queued at the back for each next heatmap, 60 answers would all have been
/// drawn side by side and finished together, each as late as the last.
/// </para>
/// Like <see cref="PreprocessingGate"/>: an answer that finds <see cref="BatchingOptions.MaxQueueSize"/> answers waiting,
/// or waits <see cref="BatchingOptions.QueueTimeoutMs"/> for its first turn, is refused "overloaded" (503), before
/// anything of it is sent.
/// </summary>
public sealed class DrawingTurns(IOptions<BatchingOptions> options) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly PriorityQueue<TaskCompletionSource<bool>, long> _waiters = new();
    private readonly int _queueLimit = options.Value.MaxQueueSize;
    private readonly TimeSpan _timeout = TimeSpan.FromMilliseconds(options.Value.QueueTimeoutMs);
    private int _free = Environment.ProcessorCount;
    private long _nextAnswer;
    private long _waiting;
    private long _given;
    private bool _disposed;

    /// <summary>Answers waiting for a turn now.</summary>
    public long Waiting => Interlocked.Read(ref _waiting);

    /// <summary>Turns no answer holds now.</summary>
    public int Free
    {
        get
        {
            lock (_lock) return _free;
        }
    }

    /// <summary>Turns given since the start: first turns, and turns taken again after a pause.</summary>
    public long TurnsGiven => Interlocked.Read(ref _given);

    /// <summary>
    /// Waits for an answer's first turn, bounded by the queue's size and time; throws "overloaded" beyond them. Dispose
    /// the turn when the answer is drawn (and written).
    /// </summary>
    public async ValueTask<DrawingTurn> TakeAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Waiting >= _queueLimit)
        {
            throw new ProblemException(ProblemCatalog.Overloaded,
                $"The service is overloaded: {_queueLimit} answers are queued for drawing their pictures (limit Batching:MaxQueueSize). Retry shortly.");
        }
        var turn = new DrawingTurn(this, Interlocked.Increment(ref _nextAnswer));
        if (!await WaitAsync(turn.Answer, _timeout, cancellationToken))
        {
            throw new ProblemException(ProblemCatalog.Overloaded,
                $"The answer waited {_timeout.TotalMilliseconds:0} ms in the queue for drawing its pictures (Batching:QueueTimeoutMs). Retry shortly.");
        }
        return turn;
    }

    /// <summary>
    /// Waits for a turn, in line by <paramref name="answer"/> (the older first); false when <paramref name="timeout"/>
    /// passed first.
    /// </summary>
    internal async ValueTask<bool> WaitAsync(long answer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        TaskCompletionSource<bool> waiter;
        lock (_lock)
        {
            if (_disposed) throw ProblemCatalog.OverloadedByShutdown();
            if (_free > 0)
            {
                _free--;
                _given++;
                return true;
            }
            waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Enqueue(waiter, answer);
            Interlocked.Increment(ref _waiting);   // decremented outside the lock, after the wait
        }
        // A waiter that gives up stays in the queue, done: GiveBack passes over it.
        using var timer = timeout == Timeout.InfiniteTimeSpan ? null : new CancellationTokenSource(timeout);
        using var onTimeout = timer?.Token.Register(() => waiter.TrySetResult(false));
        using var onCancel = cancellationToken.Register(() => waiter.TrySetCanceled(cancellationToken));
        try
        {
            return await waiter.Task;
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    /// <summary>Gives a turn back: to the oldest answer still waiting, or free.</summary>
    internal void GiveBack()
    {
        lock (_lock)
        {
            while (_waiters.TryDequeue(out var waiter, out _))
            {
                if (waiter.TrySetResult(true))
                {
                    _given++;
                    return;
                }
            }
            _free++;
        }
    }

    /// <summary>The host has stopped (its shutdown timeout passed): answers still waiting are refused.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            while (_waiters.TryDequeue(out var waiter, out _)) waiter.TrySetException(ProblemCatalog.OverloadedByShutdown());
        }
    }
}

/// <summary>
/// An answer's turn at drawing. Paused while the answer waits on its client, taken again (in line by the answer's age,
/// without a time limit: the answer has started) before it draws on; disposing gives it back if held.
/// </summary>
public sealed class DrawingTurn : IDisposable
{
    private readonly DrawingTurns _turns;
    private bool _held = true;

    internal DrawingTurn(DrawingTurns turns, long answer)
    {
        _turns = turns;
        Answer = answer;
    }

    /// <summary>The answer's place in line: answers taking their first turn are numbered in order.</summary>
    internal long Answer { get; }

    /// <summary>Gives the turn back for a while (the answer waits on its client); <see cref="ResumeAsync"/> takes one again.</summary>
    public void Pause()
    {
        if (!_held) return;
        _held = false;
        _turns.GiveBack();
    }

    /// <summary>Takes a turn again after <see cref="Pause"/>, before the answers younger than this one.</summary>
    public async ValueTask ResumeAsync(CancellationToken cancellationToken)
    {
        if (_held) return;
        await _turns.WaitAsync(Answer, Timeout.InfiniteTimeSpan, cancellationToken);
        _held = true;
    }

    public void Dispose() => Pause();
}
