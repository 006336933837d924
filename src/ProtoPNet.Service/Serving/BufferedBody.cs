using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Reads a request body into memory, at most a given number of bytes, taking every byte from the service's
/// <see cref="BufferBudget"/> before it is held. The bytes arrive into pooled 64 KiB chunks, each taken as it is needed,
/// so a slow client holds only what it has sent; the body is copied once, at the end, into an array of its length (a
/// body of up to 64 KiB with a declared length is read straight into its array). That copy is the one moment a body is
/// in memory twice; the budget counts it once.
/// </summary>
public static class BufferedBody
{
    private const int ChunkBytes = 64 * 1024;

    /// <summary>
    /// The body's bytes, at most <paramref name="most"/> (at most the largest array): this request's body limit is set to
    /// it, and <paramref name="tooLarge"/> is thrown for a longer body, declared, found while reading or cut off by the server.
    /// </summary>
    public static async Task<ReadOnlyMemory<byte>> ReadAsync(HttpRequest request, long most, BufferBudget.Hold held,
        Func<ProblemException> tooLarge, CancellationToken cancellationToken)
    {
        var bodyLimit = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodyLimit is { IsReadOnly: false }) bodyLimit.MaxRequestBodySize = most;
        var declared = request.ContentLength;
        if (declared > most) throw tooLarge();
        try
        {
            return declared is { } small && small <= ChunkBytes
                ? await ReadSmallAsync(request.Body, (int)small, held, cancellationToken)
                : await ReadChunkedAsync(request.Body, declared ?? most, declared is null, held, tooLarge, cancellationToken);
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw tooLarge();
        }
    }

    private static async Task<ReadOnlyMemory<byte>> ReadSmallAsync(Stream body, int length, BufferBudget.Hold held, CancellationToken cancellationToken)
    {
        held.Add(length);
        var bytes = new byte[length];
        var read = await body.ReadAtLeastAsync(bytes, length, throwOnEndOfStream: false, cancellationToken);
        return read == length ? bytes : throw EndedEarly(read, length);
    }

    private static async Task<ReadOnlyMemory<byte>> ReadChunkedAsync(Stream body, long most, bool mayGoOn, BufferBudget.Hold held,
        Func<ProblemException> tooLarge, CancellationToken cancellationToken)
    {
        var chunks = new List<byte[]>();
        long length = 0;
        try
        {
            while (true)
            {
                var chunk = ArrayPool<byte>.Shared.Rent(ChunkBytes);
                chunks.Add(chunk);
                held.Add(chunk.Length);
                var read = await body.ReadAtLeastAsync(chunk.AsMemory(0, ChunkBytes), ChunkBytes, throwOnEndOfStream: false, cancellationToken);
                length += read;
                // A body without a declared length may go on past the limit (HTTP/1.1 cannot send more than a declared one).
                if (length > most || (mayGoOn && length == most && read == ChunkBytes && await body.ReadAsync(new byte[1], cancellationToken) > 0))
                {
                    throw tooLarge();
                }
                if (read < ChunkBytes || length == most) break;
            }
            if (!mayGoOn && length < most) throw EndedEarly(length, most);
            var bytes = new byte[length];
            for (var i = 0; i < chunks.Count; i++)
            {
                var start = (long)i * ChunkBytes;
                chunks[i].AsSpan(0, (int)Math.Min(ChunkBytes, length - start)).CopyTo(bytes.AsSpan((int)start));
            }
            return bytes;
        }
        finally
        {
            foreach (var chunk in chunks) ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    private static ProblemException EndedEarly(long read, long declared) =>
        new(ProblemCatalog.ImageNotDecodable, $"The body ended after {read} of its {declared} declared bytes.");
}
