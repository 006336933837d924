namespace ProtoPNet.Service.Problems;

/// <summary>Text from a request as an error message repeats it: cut short, since a name may be a megabyte long.</summary>
public static class RequestText
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

    /// <summary>Names as an error lists them: the first eight, each <see cref="Echo"/>ed, and "..." for more.</summary>
    public static string EchoList(IEnumerable<string?> names)
    {
        var listed = names.Take(9).ToArray();
        return string.Join(", ", listed.Take(8).Select(Echo)) + (listed.Length > 8 ? ", ..." : "");
    }
}
