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
        // own start (WebApplication.CreateBuilder): --urls over URLS over appsettings.json over ASPNETCORE_URLS.
        var configuration = new ConfigurationBuilder()
            .AddEnvironmentVariables("ASPNETCORE_")
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args.Where(a => a != Argument).ToArray())
            .Build();
        var urls = configuration[WebHostDefaults.ServerUrlsKey] is { Length: > 0 } configured ? configured : ListenAddressExtensions.DefaultAddress;
        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries)[0].Replace("://+", "://127.0.0.1").Replace("://*", "://127.0.0.1")
            .Replace("://0.0.0.0", "://127.0.0.1");
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
}
