using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Hosting;

public static partial class ListenAddressExtensions
{
    /// <summary>Where the service listens when nothing else is configured.</summary>
    public const string DefaultAddress = "http://localhost:8080";

    /// <summary>
    /// Listens on <see cref="DefaultAddress"/> unless an address is configured (ASPNETCORE_URLS, URLS, --urls, "Urls",
    /// HTTP_PORTS / HTTPS_PORTS, or Kestrel:Endpoints). Kept out of appsettings.json on purpose: a "Urls" there would
    /// override ASPNETCORE_URLS, which containers and orchestrators set. A configured address that is not one the
    /// service can listen on stops the start, naming it (<see cref="AddressProblems"/>).
    /// </summary>
    public static WebApplicationBuilder UseDefaultListenAddress(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        if (AddressProblems(configuration) is { Count: > 0 } problems)
        {
            throw new OptionsValidationException("listen addresses", typeof(object), problems);
        }
        if (ConfiguredAddress(configuration) is null) builder.WebHost.UseUrls(DefaultAddress);
        return builder;
    }

    /// <summary>
    /// The first address the service listens on as configured, in ASP.NET Core's order of precedence: a
    /// Kestrel:Endpoints URL (Kestrel then ignores the rest), else Urls, else HTTP_PORTS, then HTTPS_PORTS, on every
    /// interface; null when none is configured (the service then listens on <see cref="DefaultAddress"/>). The start
    /// and the health check (<see cref="HealthcheckCommand"/>) both read it here.
    /// </summary>
    public static string? ConfiguredAddress(IConfiguration configuration)
    {
        if (configuration.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"]).FirstOrDefault(u => !string.IsNullOrWhiteSpace(u)) is { } endpoint)
        {
            return endpoint;
        }
        if (configuration[WebHostDefaults.ServerUrlsKey] is { } urls && !string.IsNullOrWhiteSpace(urls)) return urls;
        foreach (var (key, scheme) in (ReadOnlySpan<(string, string)>)[(WebHostDefaults.HttpPortsKey, "http"), (WebHostDefaults.HttpsPortsKey, "https")])
        {
            if (configuration[key]?.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) is [var port, ..])
            {
                return $"{scheme}://*:{port}";
            }
        }
        return configuration.GetSection("Kestrel:Endpoints").Exists() ? DefaultAddress : null;
    }

    /// <summary>
    /// Why the configured listen addresses cannot be used, one line each; empty when they can. Kestrel takes a host it
    /// cannot read as an IP address for a name, and a name other than localhost as "every interface", so a typo
    /// (http://127.0.0.1:8o80) would listen on every interface, at port 80; other slips abort the start with a stack
    /// trace once the models are loaded. An address is <c>http</c> or <c>https</c>, a host that is <c>localhost</c>,
    /// <c>+</c>, <c>*</c>, an IPv4 address or a bracketed IPv6 one, a port from 0 to 65535 (or none: 80 or 443), and no
    /// path; or a Unix domain socket, <c>http://unix:/path/to/socket</c>.
    /// </summary>
    public static IReadOnlyList<string> AddressProblems(IConfiguration configuration)
    {
        var problems = new List<string>();
        if (configuration[WebHostDefaults.ServerUrlsKey] is { } urls && !string.IsNullOrWhiteSpace(urls))
        {
            foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (Problem(url) is { } problem) problems.Add($"Urls (--urls, URLS, ASPNETCORE_URLS): '{url}' {problem}");
            }
        }
        foreach (var key in (string[])[WebHostDefaults.HttpPortsKey, WebHostDefaults.HttpsPortsKey])
        {
            if (configuration[key] is not { } ports || string.IsNullOrWhiteSpace(ports)) continue;
            foreach (var port in ports.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!IsPort(port)) problems.Add($"{key.ToUpperInvariant()}: '{port}' is not a port from 0 to 65535 (separate ports with ';')");
            }
        }
        foreach (var endpoint in configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Url"] is { } url && Problem(url.Trim()) is { } problem) problems.Add($"Kestrel:Endpoints:{endpoint.Key}:Url: '{url}' {problem}");
        }
        return problems;
    }

    private static string? Problem(string url)
    {
        // A Unix domain socket (behind a local proxy): Kestrel's http://unix:/path/to/socket.
        if (UnixSocketPattern().IsMatch(url)) return null;
        var match = AddressPattern().Match(url);
        if (!match.Success) return "is not a listen address (scheme://host:port, e.g. http://0.0.0.0:8080; separate addresses with ';')";
        var scheme = match.Groups["scheme"].Value;
        if (!scheme.Equals("http", StringComparison.OrdinalIgnoreCase) && !scheme.Equals("https", StringComparison.OrdinalIgnoreCase))
        {
            return $"has the scheme '{scheme}': only http and https are served";
        }
        var host = match.Groups["host"].Value;
        if (!IsListenHost(host))
        {
            return $"has the host '{host}': listen on localhost, + or * (every interface), or an IP address (e.g. 0.0.0.0, 127.0.0.1, [::])";
        }
        if (match.Groups["port"].Success && !IsPort(match.Groups["port"].Value))
        {
            return $"has the port '{match.Groups["port"].Value}': a port is a number from 0 to 65535 (separate addresses with ';')";
        }
        if (match.Groups["path"].Value is { Length: > 0 } path && path != "/")
        {
            return $"has the path '{path}': a listen address has none";
        }
        return null;
    }

    private static bool IsListenHost(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || host is "+" or "*"
        || (Ipv4Pattern().IsMatch(host) && IPAddress.TryParse(host, out _))
        || (host.StartsWith('[') && host.EndsWith(']') && IPAddress.TryParse(host[1..^1], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6);

    private static bool IsPort(string text) => text.Length is > 0 and <= 5 && text.All(char.IsAsciiDigit) && int.Parse(text, System.Globalization.CultureInfo.InvariantCulture) <= 65535;

    [GeneratedRegex(@"^(?<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?<host>\[[^\]]*\]|[^:/\[\]]*)(:(?<port>[^/]*))?(?<path>/.*)?$")]
    private static partial Regex AddressPattern();

    [GeneratedRegex(@"^https?://unix:/\S+$", RegexOptions.IgnoreCase)]
    private static partial Regex UnixSocketPattern();

    [GeneratedRegex(@"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")]
    private static partial Regex Ipv4Pattern();
}
