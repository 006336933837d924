namespace ProtoPNet.Service.Serving;

/// <summary>A count of bytes shared by all requests, held to a limit without a lock (the buffer and spool budgets).</summary>
internal static class BoundedCount
{
    /// <summary>Adds <paramref name="bytes"/> unless the count would pass <paramref name="limit"/>; <paramref name="found"/> is the count it saw last.</summary>
    public static bool TryAdd(ref long count, long bytes, long limit, out long found)
    {
        found = Interlocked.Read(ref count);
        while (found + bytes <= limit)
        {
            var seen = Interlocked.CompareExchange(ref count, found + bytes, found);
            if (seen == found) return true;
            found = seen;
        }
        return false;
    }
}
