namespace ProtoPNet.Service.Problems;

/// <summary>"Did you mean": the known name a mistyped one most likely meant, for a setting or a query parameter.</summary>
internal static class NearestName
{
    /// <summary>
    /// The nearest of <paramref name="known"/> to <paramref name="name"/> within two edits, case aside (more would name
    /// a different one: Body for Line); null when none is that near.
    /// </summary>
    public static string? Of(string name, IEnumerable<string> known) => known
        .Select(candidate => (Candidate: candidate, Edits: Edits(name.ToUpperInvariant(), candidate.ToUpperInvariant())))
        .Where(match => match.Edits <= 2)
        .OrderBy(match => match.Edits)
        .Select(match => match.Candidate)
        .FirstOrDefault();

    /// <summary>Levenshtein distance: insertions, deletions and substitutions.</summary>
    private static int Edits(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
