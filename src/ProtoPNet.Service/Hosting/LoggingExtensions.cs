using Serilog;
using Serilog.Formatting.Display;
using Serilog.Events;
using ProtoPNet.Service.Serving;

namespace ProtoPNet.Service.Hosting;

public static class LoggingExtensions
{
    private const string ConsoleTemplate = "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}";

    /// <summary>
    /// Serilog: a readable console by default, JSON lines with <c>Logging:Format=json</c>; levels from the <c>Serilog</c>
    /// section. Any other format stops the start, as every bad setting does.
    /// </summary>
    public static IHostApplicationBuilder AddServiceLogging(this IHostApplicationBuilder builder)
    {
        // A key of the section that is no setting stops the start as elsewhere: Logging:LogLevel, say, which Serilog
        // ignores (the levels are Serilog:MinimumLevel's).
        builder.Services.AddOptions<LogFormatOptions>().BindSettings(builder.Configuration, LogFormatOptions.SectionName)
            .Validate(o => o.Format is null || LogFormatOptions.Formats.Contains(o.Format, StringComparer.OrdinalIgnoreCase),
                $"Logging:Format must be {string.Join(" or ", LogFormatOptions.Formats.Select(f => $"'{f}'"))}")
            .ValidateOnStart();
        if (LevelProblems(builder.Configuration) is { Count: > 0 } problems) throw new Microsoft.Extensions.Options.OptionsValidationException("Serilog", typeof(object), problems);
        var format = builder.Configuration.GetSection("Logging").Get<LogFormatOptions>()?.Format;
        var json = string.Equals(format, "json", StringComparison.OrdinalIgnoreCase);
        builder.Logging.ClearProviders();
        builder.Services.AddSerilog((_, logger) =>
        {
            logger.MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
                .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
                .ReadFrom.Configuration(builder.Configuration)
                .Enrich.FromLogContext()
                .Enrich.With<OneLineProperties>()
                // A start that fails for a reason the operator can fix is told in one line by Program.cs; the host's own
                // "Hosting failed to start" with the stack trace would bury it.
                .Filter.ByExcluding(e => e.Exception is { } error && OptionsValidationExtensions.StartFailure(error) is not null
                    && e.Properties.TryGetValue("SourceContext", out var source) && source.ToString() == "\"Microsoft.Extensions.Hosting.Internal.Host\"")
                .Filter.ByExcluding(IsDrainOfAStoppedBody);
            // The console is written in batches from the background: a request never waits for it (BatchedConsoleSink).
            logger.WriteTo.Sink(new BatchedConsoleSink(json
                ? new JsonLogFormatter()
                : new MessageTemplateTextFormatter(ConsoleTemplate, System.Globalization.CultureInfo.InvariantCulture)));
        }, preserveStaticLogger: true, writeToProviders: true);
        return builder;
    }

    /// <summary>
    /// Kestrel's error "automatic draining of the request body failed because the body reader is in an invalid state"
    /// ("Reading is already in progress", with a stack trace). Here it follows only a body whose read
    /// Classify:UploadReadTimeout stopped (<see cref="Serving.BodyDeadline"/>): that request is answered 408, on the
    /// request log's line, and its connection closed; the error said nothing more, for every slow upload.
    /// </summary>
    private static bool IsDrainOfAStoppedBody(LogEvent logEvent) =>
        logEvent.Properties.TryGetValue("EventId", out var id) && id is StructureValue eventId
        && eventId.Properties.Any(p => p.Name == "Name" && p.Value is ScalarValue { Value: "RequestBodyDrainBodyReaderInvalidState" });

    /// <summary>
    /// The levels of the <c>Serilog:MinimumLevel</c> section that are not Serilog levels, one line each: Serilog would
    /// stop the start with an unhandled exception (and takes an unknown override level for the name of a level switch).
    /// </summary>
    public static IReadOnlyList<string> LevelProblems(IConfiguration configuration)
    {
        var section = configuration.GetSection("Serilog:MinimumLevel");
        var levels = new List<(string Key, string? Value)> { ("Serilog:MinimumLevel", section.Value), ("Serilog:MinimumLevel:Default", section["Default"]) };
        levels.AddRange(section.GetSection("Override").GetChildren().Select(child => ($"Serilog:MinimumLevel:Override:{child.Key}", child.Value)));
        var names = string.Join(", ", Enum.GetNames<LogEventLevel>());
        return levels.Where(level => level.Value is not null && (!Enum.TryParse<LogEventLevel>(level.Value, ignoreCase: true, out var parsed)
                || !Enum.IsDefined(parsed) || level.Value.Trim().All(char.IsAsciiDigit)))
            .Select(level => $"{level.Key}: '{level.Value}' is not a level ({names})").ToArray();
    }

    /// <summary>
    /// One line per request: method, path, status, elapsed, model, predicted class, the problem answered (so that the
    /// 503s of overload, of no model and of a full spool can be told apart) and trace id. Request and response bodies
    /// are never logged, so no image bytes reach the logs.
    /// </summary>
    public static WebApplication UseServiceRequestLogging(this WebApplication app)
    {
        app.UseSerilogRequestLogging(options =>
        {
            // This host's own logger, not Serilog's static one (which another host in the same process may own).
            options.Logger = app.Services.GetRequiredService<Serilog.ILogger>();
            options.MessageTemplate =
                "HTTP {RequestMethod:l} {RequestPath:l} responded {StatusCode} in {Elapsed:0.0} ms (model {Model:l}, predicted {PredictedClass:l}, problem {Problem:l}, trace {TraceId:l})";
            // A 503 is the service saying "busy" or "not ready yet" on purpose (overload, warm-up): a warning, not an error.
            // The status the request ended with, as the metrics count it (RequestMetrics.FinalStatus): a client that left
            // during its answer is 499 although the status line it was sent said 200. An exception is 500 (Serilog's own).
            options.GetMessageTemplateProperties = (context, path, elapsed, status) =>
            [
                new LogEventProperty("RequestMethod", new ScalarValue(context.Request.Method)),
                new LogEventProperty("RequestPath", new ScalarValue(path.Length == 0 ? RequestTarget.PathOf(context) : path)),
                new LogEventProperty("StatusCode", new ScalarValue(status == StatusCodes.Status500InternalServerError ? status : RequestMetrics.FinalStatus(context))),
                new LogEventProperty("Elapsed", new ScalarValue(elapsed)),
            ];
            options.GetLevel = (context, _, exception) =>
            {
                var status = exception is null ? RequestMetrics.FinalStatus(context) : StatusCodes.Status500InternalServerError;
                return status >= 500 && status != StatusCodes.Status503ServiceUnavailable ? LogEventLevel.Error
                    : status == StatusCodes.Status503ServiceUnavailable ? LogEventLevel.Warning : LogEventLevel.Information;
            };
            options.EnrichDiagnosticContext = (diagnostics, context) =>
            {
                diagnostics.Set("TraceId", Problems.ProblemCatalog.TraceId(context));
                // An answer the shutdown cut off (logged as 503 whatever its status line said): named, with no prediction.
                // Only an aborted request can have been cut off: the status is not worked out again for every other one.
                if (context.RequestAborted.IsCancellationRequested && context.Response.StatusCode != StatusCodes.Status503ServiceUnavailable
                    && RequestMetrics.FinalStatus(context) == StatusCodes.Status503ServiceUnavailable)
                {
                    Problems.ProblemLogging.Record(context, Problems.ProblemCatalog.ShuttingDown.Type);
                }
            };
        });
        // Defaults for requests that involve no model; the classify endpoints overwrite them.
        app.Use((context, next) =>
        {
            var diagnostics = context.RequestServices.GetRequiredService<IDiagnosticContext>();
            diagnostics.Set("Model", "-");
            diagnostics.Set("PredictedClass", "-");
            diagnostics.Set("Problem", "-");
            return next(context);
        });
        return app;
    }
}

/// <summary>
/// Keeps every log event on one line, as written: a text property holding a line break or another control character (a
/// request path sent as "/x%0A[18:00:00 ERR] ...", a folder name), a Unicode line or paragraph separator (which some log
/// viewers break lines at) or an invisible format character (a right-to-left override shows text reversed) is written
/// with escapes (\n, \r, \t, \xNN, \uNNNN), in every log line and format. Exceptions keep their stack traces.
/// </summary>
public sealed class OneLineProperties : Serilog.Core.ILogEventEnricher
{
    public void Enrich(LogEvent logEvent, Serilog.Core.ILogEventPropertyFactory propertyFactory)
    {
        List<LogEventProperty>? escaped = null;
        foreach (var (name, value) in logEvent.Properties)
        {
            if (value is ScalarValue { Value: string text } && HasUnsafe(text))
            {
                (escaped ??= []).Add(new LogEventProperty(name, new ScalarValue(Escape(text))));
            }
        }
        if (escaped is null) return;   // almost every event: nothing allocated
        foreach (var property in escaped) logEvent.AddOrUpdateProperty(property);
    }

    private static bool HasUnsafe(string text)
    {
        var first = text.AsSpan().IndexOfAnyExceptInRange(' ', '~');
        if (first < 0) return false;   // printable ASCII, as nearly every value is
        foreach (var rune in text.AsSpan(first).EnumerateRunes())
        {
            if (Unsafe(rune)) return true;
        }
        return false;
    }

    // By character, not UTF-16 unit: a format character above U+FFFF (a Unicode tag) is two surrogates, neither a format character.
    private static bool Unsafe(System.Text.Rune rune) => System.Text.Rune.IsControl(rune) || System.Text.Rune.GetUnicodeCategory(rune)
        is System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator
        or System.Globalization.UnicodeCategory.Format;

    private static string Escape(string text)
    {
        var escaped = new System.Text.StringBuilder(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            escaped.Append(rune.Value switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when !Unsafe(rune) => rune.ToString(),
                <= 0xFF => $"\\x{rune.Value:X2}",
                <= 0xFFFF => $"\\u{rune.Value:X4}",
                _ => $"\\U{rune.Value:X8}",
            });
        }
        return escaped.ToString();
    }
}

/// <summary>The <c>Logging:Format</c> setting: <c>console</c> (default) or <c>json</c>.</summary>
public sealed class LogFormatOptions
{
    public const string SectionName = "Logging";

    public static readonly string[] Formats = ["console", "json"];

    public string? Format { get; set; }
}
