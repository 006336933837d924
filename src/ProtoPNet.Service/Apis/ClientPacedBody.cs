using System.Diagnostics;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Classifying;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// The response body of a streamed answer, adding up the time its writes wait for the client to read (the socket's
/// buffers full). Once that reaches <paramref name="limit"/>, or one write has waited <paramref name="stallLimit"/>, the
/// write in progress is cancelled and the connection closed: a client that reads very slowly, or stops reading, cannot
/// keep the answer, and the pixels its heatmaps are drawn from, for long.
/// Kestrel's own minimum response data rate bounds little here: it is averaged over the whole answer, and the first
/// burst into the socket buffers (megabytes on loopback) pays for minutes of trickling at 240 bytes a second.
/// An answer that draws as it is written holds a <see cref="DrawingTurn"/> while it draws, not while it is sent: each
/// write gives the turn back and takes it again once the client has taken the bytes.
/// </summary>
internal sealed class ClientPacedBody(Stream body, HttpContext context, TimeSpan limit, TimeSpan stallLimit, DrawingTurn? turn) : Stream
{
    private long _waitedTicks;

    /// <summary>
    /// Sends an answer through a paced body with Classify:AnswerReadTimeout and Classify:AnswerStallTimeout. A client
    /// that keeps it waiting longer has it cut off: a warning, and 408 in the request log and the metrics. An answer that
    /// draws as it is written passes its drawing <paramref name="turn"/>, held now, which the body pauses while the
    /// client reads (its owner gives it back at the end).
    /// </summary>
    public static async Task SendAsync(HttpContext httpContext, Func<Stream, Task> write, DrawingTurn? turn = null)
    {
        var options = httpContext.RequestServices.GetRequiredService<IOptions<ClassifyOptions>>().Value;
        var body = new ClientPacedBody(httpContext.Response.Body, httpContext, options.AnswerReadTimeout, options.AnswerStallTimeout, turn);
        try
        {
            await write(body);
        }
        catch (OperationCanceledException) when (body.CutOff)
        {
            RequestMetrics.SetAnswerCutOff(httpContext);
            var logger = httpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ClientPacedBody));
            if (body.Stalled)
            {
                logger.LogWarning("Cut off the answer to {Method} {Path}: the client stopped reading it for {StallSeconds:0.0} s " +
                    "(Classify:AnswerStallTimeout); the connection is closed and the answer's memory freed",
                    httpContext.Request.Method, httpContext.Request.Path.Value, options.AnswerStallTimeout.TotalSeconds);
            }
            else
            {
                logger.LogWarning("Cut off the answer to {Method} {Path}: the client kept it waiting {WaitedSeconds:0.0} s while reading it " +
                    "(Classify:AnswerReadTimeout); the connection is closed and the answer's memory freed",
                    httpContext.Request.Method, httpContext.Request.Path.Value, body.Waited.TotalSeconds);
            }
        }
    }

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
        turn?.Pause();
        await SendToClientAsync(write, cancellationToken);
        if (turn is not null) await turn.ResumeAsync(cancellationToken);
    }

    private async ValueTask SendToClientAsync(Func<CancellationToken, ValueTask> write, CancellationToken cancellationToken)
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
