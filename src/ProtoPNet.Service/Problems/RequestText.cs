using System.Text.Json;

namespace ProtoPNet.Service.Problems;

/// <summary>Text from a request as an error message repeats it: cut short, since a name may be a megabyte long.</summary>
public static class RequestText
{
    /// <summary>Its first 40 characters, and "..." when there are more: a name or value quoted inside a sentence.</summary>
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

    /// <summary>A value as an answer quotes it on its own: whole when short, else its first 72 characters and its length.</summary>
    public static string Shown(string? text) =>
        text is null || text.Length <= 80 ? text ?? "" : $"{text[..72]}… ({text.Length} characters)";

    /// <summary>
    /// Why a body is not JSON, in words a client can act on, and where (line and byte, counted from 1): the parser's
    /// message without its advice to the server's own code ("Change the reader options"), and with the one thing it
    /// quotes at length, an invalid literal (quoted with all that follows it, a megabyte if the body is one), <see
    /// cref="Shown"/> as any value is. The parser's other quotations are of one character.
    /// </summary>
    public static string JsonError(JsonException error)
    {
        var message = error.Message;
        // The parser ends its message with where: "Path: $.name | LineNumber: 0 | BytePositionInLine: 12." (no path from a reader).
        if (message.LastIndexOf(" LineNumber:", StringComparison.Ordinal) is >= 0 and var lineAt) message = message[..lineAt];
        if (message.LastIndexOf(" Path: ", StringComparison.Ordinal) is >= 0 and var pathAt) message = message[..pathAt];
        if (message.StartsWith("The input does not contain any JSON tokens", StringComparison.Ordinal)) return "it is empty, or only white space";
        const string invalidLiteral = "' is an invalid JSON literal";
        if (message.StartsWith('\'') && message.LastIndexOf(invalidLiteral, StringComparison.Ordinal) is > 0 and var literalEnd)
        {
            message = $"'{Shown(message[1..literalEnd])}{message[literalEnd..]}";
        }
        message = message.Replace(" which is not supported in this mode. Change the reader options.", ", which JSON does not allow.", StringComparison.Ordinal)
            .Replace(" Cannot read next JSON object.", "", StringComparison.Ordinal).Replace(" Cannot read next JSON array.", "", StringComparison.Ordinal);
        var where = error.LineNumber is { } line && error.BytePositionInLine is { } position ? $" (line {line + 1}, byte {position + 1})" : "";
        return Printable(message.TrimEnd('.', ' ')) + where;
    }
}
