namespace ProtoPNet.Tests.Shared;

/// <summary>Waits for something another thread brings about (a request reaching a stage, a version unloaded).</summary>
public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> every 10 ms; fails with <paramref name="failure"/> after 10 s.</summary>
    public static Task TrueAsync(Func<bool> condition, string failure) => TrueAsync(condition, () => failure);

    /// <summary>As above, the failure message made when it fails (to show what was there instead); after <paramref name="within"/> (10 s unless given).</summary>
    public static async Task TrueAsync(Func<bool> condition, Func<string> failure, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline) Assert.Fail(failure());
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Reads a value every 10 ms until <paramref name="done"/> holds for it or <paramref name="within"/> (10 s unless given)
    /// has passed; returns the last value read, for the caller to assert on.
    /// </summary>
    public static async Task<T> ValueAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(10));
        var value = await read();
        while (!done(value) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
            value = await read();
        }
        return value;
    }
}
