using Microsoft.Extensions.FileProviders;

namespace ProtoPNet.Service.Hosting;

public static class WebPageExtensions
{
    /// <summary>
    /// The web page at / (static files, no build step). They are read from the wwwroot folder beside the app's assembly, which
    /// the build and publish copy there, so the page is served the same way from <c>dotnet run</c>, a published folder or a test.
    /// </summary>
    public static WebApplication UseWebPage(this WebApplication app)
    {
        var root = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        if (!Directory.Exists(root))
        {
            app.Logger.LogWarning("The web page's files are missing ({WebRoot} does not exist); / will answer 404", root);
            return app;
        }
        var files = new PhysicalFileProvider(root);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            OnPrepareResponse = context =>
            {
                var headers = context.Context.Response.Headers;
                // The page is small and changes with the service: always revalidate rather than serve a stale copy.
                headers.CacheControl = "no-cache";
                headers.XContentTypeOptions = "nosniff";
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
            },
        });
        return app;
    }

    /// <summary>
    /// What the page may load and who may frame it: only its own scripts and styles (style attributes: it colours each
    /// prototype's box), images of its own or made in the page (an upload's preview is a blob, heatmaps and the box
    /// overlays are data URIs), requests to the service alone; no framing by another site, no plugins, no other base.
    /// </summary>
    internal const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
}
