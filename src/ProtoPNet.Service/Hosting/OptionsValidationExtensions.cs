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
        try
        {
            app.Services.GetService<IStartupValidator>()?.Validate();   // registered by the first ValidateOnStart
        }
        catch (InvalidOperationException unconvertible) when (unconvertible.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal))
        {
            // The configuration binder's own failure (e.g. a word where a number or one of an enum's names belongs) is a bad setting too.
            throw new OptionsValidationException("configuration", typeof(object),
                [$"{unconvertible.Message} {unconvertible.InnerException?.Message}".Trim()]);
        }
        return app;
    }

    /// <summary>Whether the service runs as its own process; a test host that runs its entry point gets the start's exceptions itself.</summary>
    public static bool IsOwnProcess => System.Reflection.Assembly.GetEntryAssembly() == typeof(OptionsValidationExtensions).Assembly;

    /// <summary>The messages of a start stopped by bad settings (one failed option, or several at once); null for any other error.</summary>
    public static IReadOnlyList<string>? BadSettings(Exception error) => error switch
    {
        OptionsValidationException invalid => invalid.Failures.ToArray(),
        AggregateException { InnerExceptions: var inner } when inner.Count > 0 && inner.All(e => e is OptionsValidationException) =>
            inner.Cast<OptionsValidationException>().SelectMany(e => e.Failures).ToArray(),
        _ => null,
    };
}
