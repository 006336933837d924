using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ProtoPNet.Service.Hosting;

/// <summary>
/// Configuration section <c>Kestrel:Limits</c>: what one connection may send before the service answers, against slow
/// and flooding clients. ASP.NET Core does not bind this section to Kestrel by itself: <see cref="ServerLimitsExtensions"/>
/// does, after validating it at start like every other section. A request body may hold at most
/// <see cref="ServerLimitsExtensions.DefaultMaxRequestBodyBytes"/>, except on the upload endpoints, which each allow the
/// images they may take (<c>Images:MaxBytes</c> each, up to <c>Classify:MaxBatchImages</c> of them).
/// </summary>
public sealed class ServerLimitsOptions
{
    public const string SectionName = "Kestrel:Limits";

    /// <summary>Open connections at once; beyond it a new connection is closed at once.</summary>
    [Range(typeof(long), "1", "9223372036854775807")]
    public long MaxConcurrentConnections { get; set; } = 1024;

    /// <summary>Connections upgraded to another protocol (WebSockets); the service has none.</summary>
    [Range(typeof(long), "0", "9223372036854775807")]
    public long MaxConcurrentUpgradedConnections { get; set; }

    [Range(1, 10_000)]
    public int MaxRequestHeaderCount { get; set; } = 64;

    [Range(1024, 16 * 1024 * 1024)]
    public int MaxRequestHeadersTotalSize { get; set; } = 32 * 1024;

    [Range(256, 1024 * 1024)]
    public int MaxRequestLineSize { get; set; } = 8 * 1024;

    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Time to receive a request's headers: a client that sends them more slowly is answered 408.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(15);
}

public static class ServerLimitsExtensions
{
    /// <summary>Request body limit of the endpoints that take no upload (1 MiB).</summary>
    public const long DefaultMaxRequestBodyBytes = 1024 * 1024;

    public static IHostApplicationBuilder AddServerLimits(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ServerLimitsOptions>().BindSettings(builder.Configuration, ServerLimitsOptions.SectionName)
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<KestrelServerOptions>().Configure<Microsoft.Extensions.Options.IOptions<ServerLimitsOptions>>((kestrel, configured) =>
        {
            var limits = configured.Value;
            kestrel.Limits.MaxConcurrentConnections = limits.MaxConcurrentConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = limits.MaxConcurrentUpgradedConnections;
            kestrel.Limits.MaxRequestHeaderCount = limits.MaxRequestHeaderCount;
            kestrel.Limits.MaxRequestHeadersTotalSize = limits.MaxRequestHeadersTotalSize;
            kestrel.Limits.MaxRequestLineSize = limits.MaxRequestLineSize;
            kestrel.Limits.KeepAliveTimeout = limits.KeepAliveTimeout;
            kestrel.Limits.RequestHeadersTimeout = limits.RequestHeadersTimeout;
            // Small, since only the upload endpoints read large bodies, and each raises the limit for its own requests
            // (UploadReader: the images it may hold; v2 infer).
            kestrel.Limits.MaxRequestBodySize = DefaultMaxRequestBodyBytes;
        });
        return builder;
    }
}
