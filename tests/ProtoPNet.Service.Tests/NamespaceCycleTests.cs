using System.Text.RegularExpressions;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// The namespaces of src/ depend on each other in one direction only (e.g. Apis uses Models, never the other way), so
/// each folder can be read, changed and tested without the ones above it. A reference is a using directive or a
/// qualified name; a cycle fails the test and names its namespaces.
/// </summary>
public partial class NamespaceCycleTests
{
    [Fact]
    public void NamespacesOfTheSourceHaveNoCycle()
    {
        var graph = DependencyGraph(Path.Combine(RepositoryRoot(), "src"));
        Assert.Contains("ProtoPNet.Service.Apis", graph.Keys);
        Assert.Contains("ProtoPNet.Inference.Explanation", graph["ProtoPNet.Service.Apis"]);
        Assert.Null(FindCycle(graph));
    }

    [Fact]
    public void TheCheckFindsACycle()
    {
        var graph = new Dictionary<string, HashSet<string>>
        {
            ["A"] = ["B"], ["B"] = ["C"], ["C"] = ["A"], ["D"] = ["A"],
        };
        Assert.Equal("A -> B -> C -> A", FindCycle(graph));
    }

    /// <summary>Namespace -> the other namespaces of src/ its files refer to.</summary>
    internal static Dictionary<string, HashSet<string>> DependencyGraph(string sourceRoot)
    {
        var files = Directory.EnumerateFiles(sourceRoot, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj"))
            .Select(f => (Code: Code(File.ReadAllText(f)), Path: f))
            .Select(f => (f.Code, Namespace: NamespaceDeclaration().Match(f.Code) is { Success: true } m ? m.Groups[1].Value : null))
            .Where(f => f.Namespace is not null)
            .ToArray();
        var namespaces = files.Select(f => f.Namespace!).ToHashSet();
        var graph = namespaces.ToDictionary(n => n, _ => new HashSet<string>());
        foreach (var (code, own) in files)
        {
            foreach (var other in namespaces.Where(n => n != own))
            {
                // The full name, and the shorter forms that resolve from inside ProtoPNet (Inference.Runtime.X, Problems.X).
                var names = new[] { other, other["ProtoPNet.".Length..], other[(other.IndexOf('.', "ProtoPNet.".Length) + 1)..] }.Distinct();
                if (names.Any(name => Regex.IsMatch(code, $@"(?<![\w.]){Regex.Escape(name)}(;|\.[A-Z])")))
                {
                    graph[own!].Add(other);
                }
            }
        }
        return graph;
    }

    /// <summary>The first cycle found, as "A -> B -> A", or null.</summary>
    internal static string? FindCycle(IReadOnlyDictionary<string, HashSet<string>> graph)
    {
        var done = new HashSet<string>();
        var path = new List<string>();
        string? Visit(string node)
        {
            var at = path.IndexOf(node);
            if (at >= 0) return string.Join(" -> ", path.Skip(at).Append(node));
            if (!done.Add(node)) return null;
            path.Add(node);
            foreach (var next in graph.GetValueOrDefault(node, []).Order())
            {
                if (Visit(next) is { } cycle) return cycle;
            }
            path.RemoveAt(path.Count - 1);
            return null;
        }
        return graph.Keys.Order().Select(Visit).FirstOrDefault(cycle => cycle is not null);
    }

    /// <summary>The code without comments and string literals, which may name namespaces without depending on them.</summary>
    private static string Code(string source) => Comment().Replace(StringLiteral().Replace(source, "\"\""), "");

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ProtoPNet.Service.sln"))) return directory.FullName;
        }
        throw new DirectoryNotFoundException("ProtoPNet.Service.sln not found above the test assembly");
    }

    [GeneratedRegex(@"^namespace ([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex NamespaceDeclaration();

    [GeneratedRegex(@"//.*$", RegexOptions.Multiline)]
    private static partial Regex Comment();

    [GeneratedRegex(@"@?\$*""(?:[^""\\\n]|\\.)*""")]
    private static partial Regex StringLiteral();
}
