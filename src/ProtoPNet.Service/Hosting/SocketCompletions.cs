namespace ProtoPNet.Service.Hosting;

/// <summary>
/// Runs socket completions on the socket engine's own thread instead of handing each to the thread pool (.NET's
/// DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS), unless the environment already says otherwise. What goes away is one
/// thread hand-off, and one wake-up of a sleeping worker, per socket read or write; whether Kestrel then runs a request
/// on that thread or the thread pool is <see cref="InlineScheduling"/>'s choice (Classify:InlineSmallRequests). Paired runs of the default model: p50 at concurrency 1 0.67 against 0.74 ms and 0.90 against
/// 0.97, 3 % more images per second at 32; ResNet-18 with 640x480 photos unchanged within the noise. .NET reads the
/// variable once, when the first socket operation starts, so this must run before the host does.
/// </summary>
public static class SocketCompletions
{
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static void RunInlineUnlessConfigured()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable))) Environment.SetEnvironmentVariable(Variable, "1");
    }
}
