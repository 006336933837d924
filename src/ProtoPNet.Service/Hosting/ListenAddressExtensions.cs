namespace ProtoPNet.Service.Hosting;

public static class ListenAddressExtensions
{
    /// <summary>Where the service listens when nothing else is configured.</summary>
    public const string DefaultAddress = "http://localhost:8080";

    /// <summary>
    /// Listens on <see cref="DefaultAddress"/> unless an address is configured (ASPNETCORE_URLS, URLS, --urls, "Urls"
    /// or Kestrel:Endpoints). Kept out of appsettings.json on purpose: a "Urls" there would override ASPNETCORE_URLS,
    /// which containers and orchestrators set.
    /// </summary>
    public static WebApplicationBuilder UseDefaultListenAddress(this WebApplicationBuilder builder)
    {
        var configured = !string.IsNullOrWhiteSpace(builder.Configuration[WebHostDefaults.ServerUrlsKey])
            || builder.Configuration.GetSection("Kestrel:Endpoints").Exists();
        if (!configured) builder.WebHost.UseUrls(DefaultAddress);
        return builder;
    }
}
