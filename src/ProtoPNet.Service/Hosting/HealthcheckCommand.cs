namespace ProtoPNet.Service.Hosting;

/// <summary>
/// <c>ProtoPNet.Service --healthcheck</c>: asks the running service's /health/ready on this machine and exits 0 when
/// it is ready, 1 otherwise (for container HEALTHCHECKs, where no curl is installed).
/// </summary>
public static class HealthcheckCommand
{
    public const string Argument = "--healthcheck";

    public static async Task<int> RunAsync(string[] args)
    {
        // The address the service listens on, from the same sources in the same order of precedence as the service's
        // own start (WebApplication.CreateBuilder): --urls over URLS over appsettings.json over ASPNETCORE_URLS, then
        // HTTP_PORTS and HTTPS_PORTS, and a Kestrel:Endpoints URL over them all (ListenAddressExtensions.ConfiguredAddress). A container's HEALTHCHECK runs in a
        // process of its own, without the service's arguments: those of the service as the container's first process
        // (docker run IMAGE --urls ...) are read from /proc/1/cmdline; the check's own come last and win.
        var configuration = new ConfigurationBuilder()
            .AddEnvironmentVariables("ASPNETCORE_")
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(ServiceArguments(ContainerCommandLine()))
            .AddCommandLine(args.Where(a => a != Argument).ToArray())
            .Build();
        var first = AddressToAsk(ListenAddressExtensions.ConfiguredAddress(configuration) ?? ListenAddressExtensions.DefaultAddress);
        try
        {
            using var client = ClientFor(first, out var ready);
            using var response = await client.GetAsync(ready);
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or UriFormatException)
        {
            await Console.Error.WriteLineAsync($"healthcheck failed: {exception.Message}");
            return 1;
        }
    }

    /// <summary>A client for the address, and the readiness URL to ask; a Unix domain socket (http://unix:/path) is connected to by its path.</summary>
    private static HttpClient ClientFor(string address, out Uri ready)
    {
        const string unixPrefix = "http://unix:";
        if (!address.StartsWith(unixPrefix, StringComparison.OrdinalIgnoreCase))
        {
            ready = new Uri(new Uri(address), "/health/ready");
            return new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        }
        var socketPath = address[unixPrefix.Length..];
        ready = new Uri("http://localhost/health/ready");
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath), cancellationToken);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(3) };
    }

    /// <summary>The first of the listen addresses, a wildcard host replaced by the loopback of its family.</summary>
    public static string AddressToAsk(string urls) =>
        urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0]
            .Replace("://+", "://127.0.0.1").Replace("://*", "://127.0.0.1").Replace("://0.0.0.0", "://127.0.0.1").Replace("://[::]", "://[::1]");

    /// <summary>
    /// The arguments the service was started with, from a process's command line (program, then arguments): those after
    /// the service's executable or dll; none when the process is not the service.
    /// </summary>
    public static string[] ServiceArguments(IReadOnlyList<string> commandLine)
    {
        for (var i = 0; i < commandLine.Count; i++)
        {
            var program = Path.GetFileName(commandLine[i]);
            if (program is "ProtoPNet.Service" or "ProtoPNet.Service.dll" or "ProtoPNet.Service.exe") return commandLine.Skip(i + 1).ToArray();
        }
        return [];
    }

    /// <summary>The command line of the container's first process (Linux), or none.</summary>
    private static string[] ContainerCommandLine()
    {
        try
        {
            return File.ReadAllText("/proc/1/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
