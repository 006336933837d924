using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// The request bytes the service holds in memory, for all requests together, at most
/// <see cref="ImageLimits.MaxBufferedBytes"/>: uploads from reading them until their images are decoded (requests wait
/// for their turn to decode holding them, <see cref="PreprocessingGate"/>), the pixels an answer keeps to draw heatmaps
/// or a card on and the picture it draws at a time until it is written (<see cref="Classifying.DrawingMemory"/>), and
/// Open Inference Protocol bodies until their tensor is written. Without a bound,
/// an overload (up to <c>Batching:MaxQueueSize</c> requests waiting, each with up to <c>Classify:MaxBatchImages</c> x
/// <c>Images:MaxBytes</c>) could hold hundreds of gigabytes. A request whose share does not fit in what is left is
/// refused at once, 503 "overloaded"; one larger than the whole budget, 413.
/// </summary>
public sealed class BufferBudget(IOptions<ImageLimits> limits)
{
    private long _held;

    /// <summary>Bytes held now.</summary>
    public long Held => Interlocked.Read(ref _held);

    /// <summary>A request's share, empty at first: <see cref="Hold.Add"/> before it holds more, dispose once it holds them no more.</summary>
    public Hold Open() => new(this);

    /// <summary>
    /// A second share of the request that holds <paramref name="other"/> (its upload, say, while the pixels it keeps are
    /// charged to the other): each counts the other's bytes as the request's own, so that what the request holds
    /// together beyond the whole budget is refused as too large (413), not as an overload to retry (503).
    /// </summary>
    public Hold OpenAlongside(Hold other)
    {
        var hold = new Hold(this) { Other = other };
        other.Other = hold;
        return hold;
    }

    private void Take(long bytes, long alreadyHeld)
    {
        var limit = limits.Value.MaxBufferedBytes;
        if (alreadyHeld + bytes > limit)
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge,
                $"The request holds more than {limit} bytes, all the request bytes the service holds in memory at once (Images:MaxBufferedBytes): send fewer or smaller images per request.");
        }
        if (!BoundedCount.TryAdd(ref _held, bytes, limit, out var held))
        {
            throw new ProblemException(ProblemCatalog.Overloaded,
                $"The service is overloaded: the requests in progress hold {held} of {limit} bytes in memory (Images:MaxBufferedBytes). Retry shortly.");
        }
    }

    private void Give(long bytes) => Interlocked.Add(ref _held, -bytes);

    /// <summary>One request's bytes in the budget.</summary>
    public sealed class Hold(BufferBudget budget) : IDisposable
    {
        private long _bytes;

        /// <summary>The request's other share, if it has one (<see cref="OpenAlongside"/>).</summary>
        internal Hold? Other { get; set; }

        /// <summary>Takes <paramref name="bytes"/> more before they are read; throws the problem when they do not fit.</summary>
        public void Add(long bytes)
        {
            ObjectDisposedException.ThrowIf(_bytes < 0, this);
            budget.Take(bytes, _bytes + Math.Max(0, Other?._bytes ?? 0));
            _bytes += bytes;
        }

        /// <summary>Gives the bytes back (they are no longer held, or the request failed).</summary>
        public void Dispose()
        {
            if (_bytes < 0) return;
            budget.Give(_bytes);
            _bytes = -1;
        }
    }
}
