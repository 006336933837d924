namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>Waits for something another thread brings about (a request reaching a stage, a version unloaded).</summary>
public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> every 10 ms; fails with <paramref name="failure"/> after 10 s.</summary>
    public static async Task TrueAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(10);
        }
    }
}
