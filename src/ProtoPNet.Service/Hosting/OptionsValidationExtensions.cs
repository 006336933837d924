using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Hosting;

public static class OptionsValidationExtensions
{
    /// <summary>
    /// Validates every option registered with <c>ValidateOnStart</c> now, before the pipeline is built from them: a bad
    /// value stops the start with a message naming its key. The host validates them again when it starts; but a host that
    /// fails inside <c>RunAsync</c> is disposed while a test host may still be waiting on it, and the test then sees an
    /// ObjectDisposedException instead of the message.
    /// </summary>
    public static WebApplication ValidateOptions(this WebApplication app)
    {
        app.Services.GetService<IStartupValidator>()?.Validate();   // registered by the first ValidateOnStart
        return app;
    }
}
