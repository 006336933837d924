using Microsoft.Extensions.Options;
using ProtoPNet.Inference.Preprocessing;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// The bytes of multipart image parts being spooled, all requests together, held to <c>Images:MaxSpooledBytes</c>
/// (0: only the disk limits them). A spool folder may sit on a volume whose size limit no write ever meets: a
/// Kubernetes emptyDir's <c>sizeLimit</c> is enforced by evicting the pod, every request in flight with it. Counted
/// here, an upload that would pass the limit is answered 503 <c>upload-spool-full</c> instead, as a full disk is.
/// </summary>
public sealed class SpoolBudget(IOptions<ImageLimits> limits)
{
    private long _spooled;

    /// <summary>Bytes of image parts being spooled now.</summary>
    public long Spooled => Interlocked.Read(ref _spooled);

    /// <summary>A request's share, empty at first; dispose it once its spooled parts are gone.</summary>
    public Share Open() => new(this);

    private void Take(long bytes, long alreadySpooled)
    {
        var limit = limits.Value.MaxSpooledBytes;
        if (limit <= 0)
        {
            Interlocked.Add(ref _spooled, bytes);
            return;
        }
        if (alreadySpooled + bytes > limit)
        {
            throw new ProblemException(ProblemCatalog.ImageTooLarge,
                $"The upload's images are more than {limit} bytes, the most the service spools at once (Images:MaxSpooledBytes): send fewer or smaller images per request.");
        }
        if (!BoundedCount.TryAdd(ref _spooled, bytes, limit, out var spooled))
        {
            throw new ProblemException(ProblemCatalog.UploadSpoolFull,
                $"The uploads in progress spool {spooled} of {limit} bytes (Images:MaxSpooledBytes): this upload cannot be held now. Retry shortly.");
        }
    }

    /// <summary>One request's spooled bytes.</summary>
    public sealed class Share(SpoolBudget budget) : IDisposable
    {
        private long _bytes;

        /// <summary>Takes <paramref name="bytes"/> more, read and about to be spooled; throws the problem when they do not fit.</summary>
        public void Add(long bytes)
        {
            budget.Take(bytes, _bytes);
            _bytes += bytes;
        }

        public void Dispose()
        {
            Interlocked.Add(ref budget._spooled, -_bytes);
            _bytes = 0;
        }
    }

    /// <summary>A part's body that charges each read to the request's share before the spooling stream writes it.</summary>
    public sealed class ChargedStream(Stream part, Share share) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Charged(part.Read(buffer, offset, count));

        public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Charged(await part.ReadAsync(buffer.AsMemory(offset, count), cancellationToken));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Charged(await part.ReadAsync(buffer, cancellationToken));

        private int Charged(int read)
        {
            share.Add(read);
            return read;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
