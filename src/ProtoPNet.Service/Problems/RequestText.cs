using System.Text.Json;
using System.Text.RegularExpressions;

namespace ProtoPNet.Service.Problems;

/// <summary>Text from a request as an error message repeats it: cut short, since a name may be a megabyte long.</summary>
public static partial class RequestText
{
    /// <summary>Its first 40 characters, and "..." when there are more.</summary>
    public static string? Echo(string? text) => text is { Length: > 40 } ? text[..40] + "..." : text;

    /// <summary>
    /// A message that quotes the request's bytes (a parser's "Invalid header line: ..."), with what is not printable
    /// text (binary read as text) shown as '?', and cut after 200 characters.
    /// </summary>
    public static string Printable(string message)
    {
        var shown = string.Create(Math.Min(message.Length, 200), message, (span, text) =>
        {
            for (var i = 0; i < span.Length; i++) span[i] = char.IsControl(text[i]) || text[i] == '\uFFFD' ? '?' : text[i];
        });
        return message.Length > 200 ? shown + "..." : shown;
    }

    /// <summary>
    /// Names as an error lists them: the first eight, each <see cref="Echo"/>ed in quotes (so an empty name shows as
    /// ''), "(no name)" for none, and "..." for more.
    /// </summary>
    public static string EchoList(IEnumerable<string?> names)
    {
        var listed = names.Take(9).ToArray();
        return string.Join(", ", listed.Take(8).Select(name => name is null ? "(no name)" : $"'{Echo(name)}'")) + (listed.Length > 8 ? ", ..." : "");
    }

    /// <summary>A value as an answer quotes it: whole when short, else its start and its length.</summary>
    public static string Shown(string? text) =>
        text is null || text.Length <= 80 ? text ?? "" : $"{text[..72]}… ({text.Length} characters)";

    /// <summary>
    /// Why a body is not JSON, in words a client can act on, and where (line and byte, counted from 1): the parser's
    /// message with what it quotes of the body cut short (it quotes an invalid literal with all that follows it, a
    /// megabyte if the body is one) and without its advice to the server's own code ("Change the reader options").
    /// </summary>
    public static string JsonError(JsonException error)
    {
        var message = error.Message;
        var end = message.IndexOf(" Path:", StringComparison.Ordinal) is >= 0 and var path ? path : message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (end >= 0) message = message[..end];
        if (message.StartsWith("The input does not contain any JSON tokens", StringComparison.Ordinal)) return "it is empty, or only white space";
        message = message.Replace(" which is not supported in this mode. Change the reader options.", ", which JSON does not allow.", StringComparison.Ordinal)
            .Replace(" Cannot read next JSON object.", "", StringComparison.Ordinal).Replace(" Cannot read next JSON array.", "", StringComparison.Ordinal);
        message = LongQuote().Replace(message, quote => $"'{quote.Groups[1].Value[..40]}…' ({quote.Groups[1].Value.Length} characters)");
        var where = error.LineNumber is { } line && error.BytePositionInLine is { } position ? $" (line {line + 1}, byte {position + 1})" : "";
        return Printable(message.TrimEnd('.') + where);
    }

    /// <summary>A quotation of more than 40 characters, as the parser writes one ('...').</summary>
    [GeneratedRegex("'([^']{41,})'")]
    private static partial Regex LongQuote();
}
