using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// The upload bytes the service holds in memory between reading a request and decoding its images, for all requests
/// together, at most <see cref="ImageLimits.MaxBufferedBytes"/>. Requests wait for their turn to decode holding their
/// uploads (<see cref="PreprocessingGate"/>): without a bound, an overload of large uploads (up to
/// <c>Batching:MaxQueueSize</c> requests of up to <c>Classify:MaxBatchImages</c> x <c>Images:MaxBytes</c> each) could
/// hold hundreds of gigabytes. A request whose upload does not fit in what is left is refused at once, 503 "overloaded";
/// one larger than the whole budget, 413.
/// </summary>
public sealed class UploadBudget(IOptions<ImageLimits> limits)
{
    private long _held;

    /// <summary>Bytes held now.</summary>
    public long Held => Interlocked.Read(ref _held);

    /// <summary>A request's share, empty at first: <see cref="Hold.Add"/> as its upload is read, dispose once it is decoded.</summary>
    public Hold Open() => new(this);

    private void Take(long bytes, long alreadyHeld)
    {
        var limit = limits.Value.MaxBufferedBytes;
        if (alreadyHeld + bytes > limit)
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge,
                $"The request's images hold more than {limit} bytes, all the upload bytes the service holds at once (Images:MaxBufferedBytes): send fewer or smaller images per request.");
        }
        var held = Held;
        while (true)
        {
            if (held + bytes > limit)
            {
                throw new ProblemException(ProblemCatalog.Overloaded,
                    $"The service is overloaded: the uploads waiting to be decoded hold {held} of {limit} bytes (Images:MaxBufferedBytes). Retry shortly.");
            }
            var seen = Interlocked.CompareExchange(ref _held, held + bytes, held);
            if (seen == held) return;
            held = seen;
        }
    }

    private void Give(long bytes) => Interlocked.Add(ref _held, -bytes);

    /// <summary>One request's upload bytes in the budget.</summary>
    public sealed class Hold(UploadBudget budget) : IDisposable
    {
        private long _bytes;

        /// <summary>Takes <paramref name="bytes"/> more before they are read; throws the problem when they do not fit.</summary>
        public void Add(long bytes)
        {
            ObjectDisposedException.ThrowIf(_bytes < 0, this);
            budget.Take(bytes, _bytes);
            _bytes += bytes;
        }

        /// <summary>Gives the bytes back (the images are decoded, or the request failed).</summary>
        public void Dispose()
        {
            if (_bytes < 0) return;
            budget.Give(_bytes);
            _bytes = -1;
        }
    }
}
