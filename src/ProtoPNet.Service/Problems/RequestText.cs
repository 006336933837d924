namespace ProtoPNet.Service.Problems;

/// <summary>Text from a request as an error message repeats it: cut short, since a name may be a megabyte long.</summary>
public static class RequestText
{
    /// <summary>Its first 40 characters, and "..." when there are more.</summary>
    public static string? Echo(string? text) => text is { Length: > 40 } ? text[..40] + "..." : text;

    /// <summary>Names as an error lists them: the first eight, each <see cref="Echo"/>ed, and "..." for more.</summary>
    public static string EchoList(IEnumerable<string?> names)
    {
        var listed = names.Take(9).ToArray();
        return string.Join(", ", listed.Take(8).Select(Echo)) + (listed.Length > 8 ? ", ..." : "");
    }
}
