using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Json;
using Serilog.Parsing;

namespace ProtoPNet.Service.Hosting;

/// <summary>
/// <c>Logging:Format=json</c>: one JSON object per event, in the compact layout (<c>@t</c>, <c>@m</c>, <c>@i</c>,
/// <c>@l</c> unless Information, <c>@x</c>, <c>@tr</c>/<c>@sp</c>, then the properties), with the message rendered
/// as the console renders it: text values as they are. (Serilog's rendered formatter quoted them, so a search for a
/// line as the docs quote it, <c>ORT_DISABLE_TELEMETRY=1</c> or <c>Model fashion-mnist@...</c>, found nothing.)
/// </summary>
public sealed class JsonLogFormatter : ITextFormatter
{
    private static readonly JsonValueFormatter Values = new(typeTagName: "$type");

    public void Format(LogEvent logEvent, TextWriter output)
    {
        output.Write("{\"@t\":\"");
        output.Write(logEvent.Timestamp.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        output.Write("\",\"@m\":");
        JsonValueFormatter.WriteQuotedJsonString(Message(logEvent), output);
        output.Write(",\"@i\":\"");
        output.Write(EventIdHash.Compute(logEvent.MessageTemplate.Text).ToString("x8", System.Globalization.CultureInfo.InvariantCulture));
        output.Write('"');
        if (logEvent.Level != LogEventLevel.Information)
        {
            output.Write(",\"@l\":\"");
            output.Write(logEvent.Level);
            output.Write('"');
        }
        if (logEvent.Exception is not null)
        {
            output.Write(",\"@x\":");
            JsonValueFormatter.WriteQuotedJsonString(logEvent.Exception.ToString(), output);
        }
        if (logEvent.TraceId is { } trace)
        {
            output.Write(",\"@tr\":\"");
            output.Write(trace.ToHexString());
            output.Write('"');
        }
        if (logEvent.SpanId is { } span)
        {
            output.Write(",\"@sp\":\"");
            output.Write(span.ToHexString());
            output.Write('"');
        }
        foreach (var (name, value) in logEvent.Properties)
        {
            output.Write(',');
            // A property named like a field of the layout keeps it unambiguous, as the compact formatters do.
            JsonValueFormatter.WriteQuotedJsonString(name.StartsWith('@') ? "@" + name : name, output);
            output.Write(':');
            Values.Format(value, output);
        }
        output.Write('}');
        output.Write('\n');
    }

    /// <summary>The message with text values written as they are (other values as Serilog renders them).</summary>
    private static string Message(LogEvent logEvent)
    {
        var message = new StringWriter(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var token in logEvent.MessageTemplate.Tokens)
        {
            if (token is PropertyToken property && property.Format is null && property.Alignment is null
                && logEvent.Properties.TryGetValue(property.PropertyName, out var value) && value is ScalarValue { Value: string text })
            {
                message.Write(text);
                continue;
            }
            token.Render(logEvent.Properties, message, System.Globalization.CultureInfo.InvariantCulture);
        }
        return message.ToString();
    }
}
