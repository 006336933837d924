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
            // The page is small and changes with the service: always revalidate rather than serve a stale copy.
            OnPrepareResponse = context => context.Context.Response.Headers.CacheControl = "no-cache",
        });
        return app;
    }
}
