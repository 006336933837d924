using System.Diagnostics;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// The response body of a streamed answer, adding up the time its writes wait for the client to read (the socket's
/// buffers full). Once that reaches <paramref name="limit"/>, or one write has waited <paramref name="stallLimit"/>, the
/// write in progress is cancelled and the connection closed: a client that reads very slowly, or stops reading, cannot
/// keep the answer, and the pixels its heatmaps are drawn from, for long.
/// Kestrel's own minimum response data rate bounds little here: it is averaged over the whole answer, and the first
/// burst into the socket buffers (megabytes on loopback) pays for minutes of trickling at 240 bytes a second.
/// </summary>
internal sealed class ClientPacedBody(Stream body, HttpContext context, TimeSpan limit, TimeSpan stallLimit) : Stream
{
    private long _waitedTicks;

    /// <summary>Whether the answer was cut off, its connection closed.</summary>
    public bool CutOff { get; private set; }

    /// <summary>Whether it was cut off because one write waited <c>stallLimit</c> (the client stopped reading), not for the time in all.</summary>
    public bool Stalled { get; private set; }

    /// <summary>How long the writes have waited so far, in all.</summary>
    public TimeSpan Waited => Stopwatch.GetElapsedTime(0, _waitedTicks);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        WaitForClientAsync(token => body.WriteAsync(buffer, token), cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        WaitForClientAsync(token => new ValueTask(body.FlushAsync(token)), cancellationToken).AsTask();

    private async ValueTask WaitForClientAsync(Func<CancellationToken, ValueTask> write, CancellationToken cancellationToken)
    {
        var left = limit - Waited;
        using var deadline = new CancellationTokenSource(TimeSpan.FromTicks(Math.Max(1, Math.Min(left.Ticks, stallLimit.Ticks))));
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var started = Stopwatch.GetTimestamp();
        try
        {
            await write(either.Token);
        }
        // Kestrel closes the connection itself when a write is cancelled, so the request may count as aborted by now.
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            CutOff = true;
            Stalled = stallLimit < left;
            context.Abort();
            throw;
        }
        finally
        {
            _waitedTicks += Stopwatch.GetTimestamp() - started;
        }
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    // An answer is only written asynchronously (Kestrel refuses synchronous writes).
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override void Flush() => throw new NotSupportedException();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
