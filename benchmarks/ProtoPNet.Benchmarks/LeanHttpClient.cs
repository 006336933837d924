using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ProtoPNet.Benchmarks;

/// <summary>
/// The load generator's HTTP/1.1 client: the request's bytes are built once and sent as they are on keep-alive
/// connections (one per concurrent caller, taken from a pool), and the answer is read with just enough parsing to find
/// its end (Content-Length or chunked). The load generator shares the cores with the service it measures, and
/// HttpClient's per-request work (headers, content objects, its connection pool) was a fifth of the service's own CPU
/// for the default model; this client leaves more of the machine to the service, and reports what it still costs.
/// </summary>
public sealed class LeanHttpClient(Uri server) : IDisposable
{
    private readonly ConcurrentBag<Connection> _idle = [];
    private readonly EndPoint _endPoint = new DnsEndPoint(server.Host, server.Port);

    /// <summary>A POST of <paramref name="body"/> to <paramref name="pathAndQuery"/>, as bytes to send on any connection.</summary>
    public byte[] Post(string pathAndQuery, string contentType, byte[] body)
    {
        var head = Encoding.ASCII.GetBytes(
            $"POST {pathAndQuery} HTTP/1.1\r\nHost: {server.Authority}\r\nContent-Type: {contentType}\r\nContent-Length: {body.Length}\r\n\r\n");
        return [.. head, .. body];
    }

    /// <summary>A GET of <paramref name="pathAndQuery"/>, as bytes to send on any connection.</summary>
    public byte[] Get(string pathAndQuery) =>
        Encoding.ASCII.GetBytes($"GET {pathAndQuery} HTTP/1.1\r\nHost: {server.Authority}\r\n\r\n");

    /// <summary>Sends a request made by <see cref="Post"/> or <see cref="Get"/> and reads the whole answer; returns its status code.</summary>
    public async Task<int> SendAsync(byte[] request)
    {
        // A pooled connection may have been closed by the service while idle (its keep-alive timeout): one more try
        // on a new connection then. A failure on a new connection is the service's.
        if (_idle.TryTake(out var pooled))
        {
            try
            {
                return await ExchangeAsync(pooled, request);
            }
            catch (Exception exception) when (exception is IOException or SocketException)
            {
            }
        }
        return await ExchangeAsync(await Connection.OpenAsync(_endPoint), request);
    }

    private async Task<int> ExchangeAsync(Connection connection, byte[] request)
    {
        try
        {
            var (status, keepAlive) = await connection.ExchangeAsync(request);
            if (keepAlive) _idle.Add(connection);
            else connection.Dispose();
            return status;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        while (_idle.TryTake(out var connection)) connection.Dispose();
    }

    private sealed class Connection(Socket socket) : IDisposable
    {
        private static readonly byte[] HeaderEnd = "\r\n\r\n"u8.ToArray();
        private static readonly byte[] LineEnd = "\r\n"u8.ToArray();
        private byte[] _buffer = new byte[16 * 1024];
        private int _start;   // first unread byte
        private int _end;     // one past the last received byte

        public static async Task<Connection> OpenAsync(EndPoint endPoint)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(endPoint);
            return new Connection(socket);
        }

        public async Task<(int Status, bool KeepAlive)> ExchangeAsync(byte[] request)
        {
            await socket.SendAsync(request, SocketFlags.None);
            _start = _end = 0;

            var headerEnd = await ReadUntilAsync(HeaderEnd);
            var head = _buffer.AsSpan(_start, headerEnd - _start);
            if (!head.StartsWith("HTTP/1.1 "u8) || !Utf8Parser.TryParse(head[9..12], out int status, out _))
            {
                throw new InvalidOperationException("not an HTTP/1.1 answer: " + Encoding.ASCII.GetString(head[..Math.Min(head.Length, 40)]));
            }
            var (keepAlive, chunked, length) = Framing(head);
            _start = headerEnd + 4;

            if (chunked)
            {
                while (true)
                {
                    var lineEnd = await ReadUntilAsync(LineEnd);
                    var sizeText = _buffer.AsSpan(_start, lineEnd - _start);
                    var semicolon = sizeText.IndexOf((byte)';');
                    if (semicolon >= 0) sizeText = sizeText[..semicolon];
                    if (!Utf8Parser.TryParse(sizeText, out int size, out _, 'x')) throw new InvalidOperationException("a bad chunk size");
                    _start = lineEnd + 2;
                    await SkipAsync(size + 2);   // the chunk and its CRLF; the last (empty) chunk has no trailers here
                    if (size == 0) break;
                }
            }
            else
            {
                await SkipAsync(length);
            }
            return (status, keepAlive);
        }

        /// <summary>
        /// What the answer's head says about its framing: whether the connection stays open, whether the body is chunked,
        /// and its Content-Length otherwise (0 when absent). Header names are matched in lower case, without a string.
        /// </summary>
        private static (bool KeepAlive, bool Chunked, int Length) Framing(ReadOnlySpan<byte> head)
        {
            Span<byte> lower = head.Length <= 1024 ? stackalloc byte[head.Length] : new byte[head.Length];
            Ascii.ToLower(head, lower, out _);
            var keepAlive = lower.IndexOf("\r\nconnection: close"u8) < 0;
            var chunked = lower.IndexOf("\r\ntransfer-encoding: chunked"u8) >= 0;
            var at = lower.IndexOf("\r\ncontent-length:"u8);
            if (chunked || at < 0) return (keepAlive, chunked, 0);
            var value = lower[(at + 17)..];
            var lineEnd = value.IndexOf((byte)'\r');
            if (lineEnd >= 0) value = value[..lineEnd];
            return Utf8Parser.TryParse(value.Trim((byte)' '), out int length, out _)
                ? (keepAlive, false, length)
                : throw new InvalidOperationException("a bad Content-Length");
        }

        /// <summary>Receives until <paramref name="marker"/> is in the unread bytes; returns where it starts.</summary>
        private async Task<int> ReadUntilAsync(ReadOnlyMemory<byte> marker)
        {
            var searched = 0;   // unread bytes already searched (receiving may move the unread bytes)
            while (true)
            {
                var found = _buffer.AsSpan(_start + searched, _end - _start - searched).IndexOf(marker.Span);
                if (found >= 0) return _start + searched + found;
                searched = Math.Max(0, _end - _start - marker.Length + 1);
                await ReceiveAsync();
            }
        }

        /// <summary>Consumes <paramref name="count"/> bytes, receiving them as needed.</summary>
        private async Task SkipAsync(int count)
        {
            while (_end - _start < count)
            {
                count -= _end - _start;
                _start = _end = 0;
                await ReceiveAsync();
            }
            _start += count;
        }

        private async Task ReceiveAsync()
        {
            if (_start > 0 && _start == _end) _start = _end = 0;
            if (_end == _buffer.Length)
            {
                if (_start > 0)
                {
                    _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                    (_end, _start) = (_end - _start, 0);
                }
                else
                {
                    Array.Resize(ref _buffer, _buffer.Length * 2);
                }
            }
            var received = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None);
            if (received == 0) throw new IOException("the service closed the connection mid-answer");
            _end += received;
        }

        public void Dispose() => socket.Dispose();
    }
}
