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
        // own start (WebApplication.CreateBuilder): --urls over URLS over appsettings.json over ASPNETCORE_URLS, and a
        // Kestrel:Endpoints URL over them all (Kestrel then ignores the others). A container's HEALTHCHECK runs in a
        // process of its own, without the service's arguments: those of the service as the container's first process
        // (docker run IMAGE --urls ...) are read from /proc/1/cmdline; the check's own come last and win.
        var configuration = new ConfigurationBuilder()
            .AddEnvironmentVariables("ASPNETCORE_")
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(ServiceArguments(ContainerCommandLine()))
            .AddCommandLine(args.Where(a => a != Argument).ToArray())
            .Build();
        var endpoint = configuration.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"]).FirstOrDefault(u => !string.IsNullOrEmpty(u));
        var urls = endpoint ?? (configuration[WebHostDefaults.ServerUrlsKey] is { Length: > 0 } configured ? configured : ListenAddressExtensions.DefaultAddress);
        var first = AddressToAsk(urls);
        try
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            using var response = await client.GetAsync(new Uri(new Uri(first), "/health/ready"));
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or UriFormatException)
        {
            await Console.Error.WriteLineAsync($"healthcheck failed: {exception.Message}");
            return 1;
        }
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
