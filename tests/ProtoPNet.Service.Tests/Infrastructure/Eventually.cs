namespace ProtoPNet.Service.Tests.Infrastructure;

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
}
