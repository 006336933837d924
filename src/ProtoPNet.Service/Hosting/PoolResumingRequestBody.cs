using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

/// <summary>
/// A request body that continues on the thread pool after each asynchronous read (<see cref="InlineScheduling"/>): with
/// Kestrel's inline scheduling, a read that waited for the client ends on the socket thread that saw the data arrive,
/// and the work after it (parsing a v2 body, say) would otherwise run there, delaying every other connection of that
/// thread. Answers need no such wrapper: a write that waited for the client was measured to go on on the pool.
/// </summary>
public sealed class PoolResumingRequestBody(Stream inner) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken);
        await PoolHop.OffSocketThread();
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
