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
        catch (InvalidOperationException unconvertible) when (unconvertible.Message.StartsWith(UnconvertiblePrefix, StringComparison.Ordinal))
        {
            // The configuration binder's own failure (e.g. a word where a number or one of an enum's names belongs) is a bad setting too.
            throw new OptionsValidationException("configuration", typeof(object), [Unconvertible(unconvertible)]);
        }
        return app;
    }

    /// <summary>Whether the service runs as its own process; a test host that runs its entry point gets the start's exceptions itself.</summary>
    public static bool IsOwnProcess => System.Reflection.Assembly.GetEntryAssembly() == typeof(OptionsValidationExtensions).Assembly;

    /// <summary>
    /// Why the start failed, in one line, when it failed for a reason the operator can fix: bad settings, an address that
    /// cannot be listened on (taken, or not a URL), an execution provider asked for and not there. Null for any other
    /// error, whose stack trace is then the useful thing to show.
    /// </summary>
    public static string? StartFailure(Exception error) => BadSettings(error) is { } failures
        ? string.Join(" ", failures)
        : error switch
        {
            ProtoPNet.Inference.Runtime.ExecutionProviderUnavailableException => error.Message,
            // The binder's own failure while the server is built (a word where Kestrel:Limits wants a time or a number).
            InvalidOperationException when error.Message.StartsWith(UnconvertiblePrefix, StringComparison.Ordinal) => Unconvertible(error),
            IOException when error.Message.StartsWith("Failed to bind to address", StringComparison.Ordinal) => error.Message,
            FormatException when error.Message.StartsWith("Invalid url", StringComparison.Ordinal) =>
                $"{error.Message} (Urls, --urls, URLS or ASPNETCORE_URLS: e.g. http://0.0.0.0:8080)",
            // An https address without a certificate (Kestrel:Certificates:Default or a development certificate).
            InvalidOperationException when error.Message.StartsWith("Unable to configure HTTPS endpoint", StringComparison.Ordinal) =>
                error.Message.Split('\n')[0],
            _ => null,
        };

    private const string UnconvertiblePrefix = "Failed to convert configuration value";

    /// <summary>
    /// The binder's "Failed to convert configuration value 'x' at 'Section:Key' to type 'T'", with what the setting takes
    /// when that is a list of words (an enum): the words, as a person writes them, rather than the type's full name alone.
    /// </summary>
    private static string Unconvertible(Exception error)
    {
        var typeName = System.Text.RegularExpressions.Regex.Match(error.Message, @"to type '(?<type>[^']+)'").Groups["type"].Value;
        var type = AppDomain.CurrentDomain.GetAssemblies().Select(assembly => assembly.GetType(typeName)).FirstOrDefault(t => t is not null);
        return type is { IsEnum: true }
            ? $"{error.Message} Use one of: {string.Join(", ", Enum.GetNames(type).Select(name => name.ToLowerInvariant()))}."
            : $"{error.Message} {error.InnerException?.Message}".Trim();
    }

    /// <summary>The messages of a start stopped by bad settings (one failed option, or several at once); null for any other error.</summary>
    public static IReadOnlyList<string>? BadSettings(Exception error) => error switch
    {
        OptionsValidationException invalid => invalid.Failures.Select(f => ByKey(invalid.OptionsType, f)).ToArray(),
        AggregateException { InnerExceptions: var inner } when inner.Count > 0 && inner.All(e => e is OptionsValidationException) =>
            inner.Cast<OptionsValidationException>().SelectMany(e => e.Failures.Select(f => ByKey(e.OptionsType, f))).ToArray(),
        _ => null,
    };

    /// <summary>
    /// A data-annotation failure as the setting's key says it ("Batching:MaxBatchSize: The field ... must be between 1 and
    /// 256."), where the framework names the options class and its property; other failures as they are.
    /// </summary>
    private static string ByKey(Type optionsType, string failure)
    {
        var match = System.Text.RegularExpressions.Regex.Match(failure, @"^DataAnnotation validation failed for '\w+' members: '(\w+)' with the error: '(.*)'\.$");
        var section = optionsType.GetField("SectionName")?.GetValue(null) as string;
        if (!match.Success || section is null) return failure;
        var message = $"{section}:{match.Groups[1].Value}: {match.Groups[2].Value}";
        // A number where an enum's name belongs ("Batching:Strategy: The field Strategy is invalid."): the names it takes.
        if (optionsType.GetProperty(match.Groups[1].Value)?.GetCustomAttributes(typeof(System.ComponentModel.DataAnnotations.EnumDataTypeAttribute), true)
                .Cast<System.ComponentModel.DataAnnotations.EnumDataTypeAttribute>().FirstOrDefault() is { } enumType)
        {
            return $"{message} Use one of: {string.Join(", ", Enum.GetNames(enumType.EnumType).Select(name => name.ToLowerInvariant()))}.";
        }
        // A time's range: a bare number there is read as days ("5" is five days), which nobody means by it.
        return System.Text.RegularExpressions.Regex.IsMatch(message, @"between \S*:\S* and \S*:\S*")
            ? $"{message.TrimEnd('.')} (a time is written [d.]hh:mm:ss: 00:00:05 is 5 seconds, and a bare number is read as days)."
            : message;
    }
}
