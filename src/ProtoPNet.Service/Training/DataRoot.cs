using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Training;

/// <summary>
/// Where a job's <c>data</c> may point: a folder inside <c>Training:DataRoot</c>, named relative to it (or by an absolute
/// path inside it). No <c>..</c>, and symbolic links are followed before the check, so a link cannot lead outside.
/// </summary>
public static class DataRoot
{
    private const int MaxLinks = 40;   // as the kernel: a loop of links ends

    /// <summary>The folder <paramref name="data"/> names, relative to the real data root (with '/'), or an error.</summary>
    public static (string? Relative, string? Error) Resolve(string root, string data)
    {
        if (data.Length == 0 || data.Contains('\0')) return (null, "must be a folder path relative to Training:DataRoot");
        if (GoesUp(data)) return (null, $"'{RequestText.Shown(data)}' must not contain '..'");
        var realRoot = RealPath(Path.GetFullPath(root));
        if (realRoot is null || !Directory.Exists(realRoot)) return (null, "Training:DataRoot does not exist");
        var target = RealPath(Path.IsPathRooted(data) ? Path.GetFullPath(data) : Path.GetFullPath(Path.Combine(realRoot, data)));
        if (target is null || !IsInside(realRoot, target))
        {
            return (null, Path.IsPathRooted(data) && !IsInside(Path.GetFullPath(root), Path.GetFullPath(data))
                ? $"'{RequestText.Shown(data)}' is an absolute path outside Training:DataRoot"
                : $"'{RequestText.Shown(data)}' leads outside Training:DataRoot");
        }
        if (!Directory.Exists(target)) return (null, $"'{RequestText.Shown(data)}' is not a folder under Training:DataRoot");
        var relative = Path.GetRelativePath(realRoot, target).Replace(Path.DirectorySeparatorChar, '/');
        return (relative, null);
    }

    /// <summary>Whether a path holds a step up a level (<c>..</c>), with either separator.</summary>
    public static bool GoesUp(string path) => path.Replace('\\', '/').Split('/').Contains("..");

    /// <summary>Whether <paramref name="path"/> is <paramref name="root"/> or below it (both absolute and normalised).</summary>
    public static bool IsInside(string root, string path) =>
        path == root || path.StartsWith(root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>
    /// <paramref name="path"/> (absolute, normalised) with every symbolic link along it resolved, like realpath(3); a part
    /// that does not exist is kept as written. Null for a loop of links.
    /// </summary>
    public static string? RealPath(string path)
    {
        var resolved = Path.GetPathRoot(path)!;
        var pending = new Stack<string>(path[resolved.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse());
        var links = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".") continue;
            if (part == "..")
            {
                resolved = Path.GetDirectoryName(resolved) ?? resolved;
                continue;
            }
            var next = Path.Combine(resolved, part);
            var info = new FileInfo(next);
            if (info.LinkTarget is { } target)
            {
                if (++links > MaxLinks) return null;
                // The link's target replaces this part: an absolute one restarts from its root.
                var targetParts = target.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
                foreach (var targetPart in targetParts.Reverse()) pending.Push(targetPart);
                if (Path.IsPathRooted(target)) resolved = Path.GetPathRoot(target)!;
                continue;
            }
            resolved = next;
        }
        return resolved;
    }
}
