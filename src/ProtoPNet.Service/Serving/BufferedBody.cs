using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Serving;

/// <summary>
/// Reads a request body into memory, at most a given number of bytes, taking every byte from the service's
/// <see cref="BufferBudget"/> before it is held. The array grows as the bytes arrive (doubling, from 64 KiB), so a slow
/// client holds only what it has sent; a declared length is the array's last size, so it ends exactly full.
/// </summary>
public static class BufferedBody
{
    /// <summary>The first buffer: a small body is read into one array of its declared size.</summary>
    private const int FirstBufferBytes = 64 * 1024;

    /// <summary>
    /// The body's bytes; <paramref name="tooLarge"/> is thrown for a body longer than <paramref name="most"/> (declared or
    /// found while reading), and "not decodable" for one that ends before its declared length.
    /// </summary>
    public static async Task<ReadOnlyMemory<byte>> ReadAsync(HttpRequest request, long most, BufferBudget.Hold held,
        Func<ProblemException> tooLarge, CancellationToken cancellationToken)
    {
        var declared = request.ContentLength;
        if (declared > most) throw tooLarge();
        most = Math.Min(declared ?? most, Array.MaxLength);
        var bytes = Array.Empty<byte>();
        var length = 0;
        while (true)
        {
            if (length == bytes.Length)
            {
                if (length == most)
                {
                    // HTTP/1.1 cannot send more than a declared length; a chunked body may, and is then too large.
                    if (declared is null && await request.Body.ReadAsync(new byte[1], cancellationToken) > 0) throw tooLarge();
                    break;
                }
                var capacity = (int)Math.Min(most, Math.Max(FirstBufferBytes, 2L * bytes.Length));
                held.Add(capacity - bytes.Length);
                Array.Resize(ref bytes, capacity);
            }
            var read = await request.Body.ReadAsync(bytes.AsMemory(length), cancellationToken);
            if (read == 0) break;
            length += read;
        }
        if (length < declared)
        {
            throw new ProblemException(ProblemCatalog.ImageNotDecodable, $"The body ended after {length} of its {declared} declared bytes.");
        }
        return bytes.AsMemory(0, length);
    }
}
