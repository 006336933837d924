using Microsoft.AspNetCore.Http.Features;

namespace ProtoPNet.Service.Hosting;

/// <summary>What a request asked for, as its problem details and its log line name it.</summary>
public static class RequestTarget
{
    /// <summary>The path; a request for the server as a whole (<c>OPTIONS *</c>) has none, and is named by its target.</summary>
    public static string PathOf(HttpContext http) =>
        http.Request.Path.HasValue ? http.Request.Path.Value! : http.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "";
}
