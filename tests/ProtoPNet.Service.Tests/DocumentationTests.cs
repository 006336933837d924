using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// Keeps docs/API.md and the service in step: the endpoints of the OpenAPI document the running service produces, their
/// query parameters and response statuses, and the problem types of <see cref="ProblemCatalog"/>.
/// </summary>
public partial class DocumentationTests(DocumentationTests.OpenApiDocument openApi) : IClassFixture<DocumentationTests.OpenApiDocument>
{
    private static readonly string ApiMarkdownPath = Path.Combine(Trainer.RepositoryRoot, "docs", "API.md");

    [Fact]
    public void EveryEndpointOfTheOpenApiDocumentIsDocumentedAndEveryDocumentedEndpointExists()
    {
        var documented = ApiSections.Parse(File.ReadAllText(ApiMarkdownPath)).Keys.ToHashSet();
        var served = openApi.Operations.Keys.ToHashSet();

        var undocumented = served.Except(documented).Order().ToArray();
        var unknown = documented.Except(served).Order().ToArray();

        Assert.NotEmpty(served);
        Assert.True(undocumented.Length == 0,
            $"endpoints missing from docs/API.md (a '### `METHOD /path`' heading each): {string.Join(", ", undocumented)}");
        Assert.True(unknown.Length == 0, $"docs/API.md documents endpoints the service does not have: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void EachEndpointSectionNamesItsQueryParametersAndEveryStatusTheOpenApiDocumentDeclares()
    {
        var sections = ApiSections.Parse(File.ReadAllText(ApiMarkdownPath));
        var missing = new List<string>();
        foreach (var (endpoint, operation) in openApi.Operations)
        {
            if (!sections.TryGetValue(endpoint, out var section)) continue;   // reported by the test above
            if (operation.TryGetProperty("parameters", out var parameters))
            {
                foreach (var parameter in parameters.EnumerateArray().Where(p => p.GetProperty("in").GetString() != "path"))
                {
                    var name = parameter.GetProperty("name").GetString()!;
                    if (!section.Contains($"`{name}`", StringComparison.Ordinal)) missing.Add($"{endpoint}: parameter `{name}`");
                }
            }
            foreach (var status in operation.GetProperty("responses").EnumerateObject().Select(r => r.Name))
            {
                if (!section.Contains($"**{status}**", StringComparison.Ordinal)) missing.Add($"{endpoint}: status **{status}**");
            }
        }
        Assert.True(missing.Count == 0, "docs/API.md leaves out: " + string.Join("; ", missing));
    }

    /// <summary>The other way round: a status an endpoint's "Status codes:" list names is declared in the OpenAPI document too.</summary>
    [Fact]
    public void EveryStatusOfAnEndpointsStatusListIsDeclaredInTheOpenApiDocument()
    {
        var undeclared = new List<string>();
        foreach (var (endpoint, section) in ApiSections.Parse(File.ReadAllText(ApiMarkdownPath)))
        {
            if (!openApi.Operations.TryGetValue(endpoint, out var operation)) continue;   // reported by the first test
            var at = section.IndexOf("Status codes:", StringComparison.Ordinal);
            if (at < 0) continue;
            var declared = operation.GetProperty("responses").EnumerateObject().Select(r => r.Name).ToHashSet();
            foreach (Match token in StatusListToken().Matches(section[at..].Split("\n\n")[0]))
            {
                if (token.Groups["status"].Success && !declared.Contains(token.Groups["status"].Value)) undeclared.Add($"{endpoint}: {token.Groups["status"].Value}");
            }
        }
        Assert.True(undeclared.Count == 0, "statuses docs/API.md lists that the OpenAPI document does not declare: " + string.Join("; ", undeclared));
    }

    [Fact]
    public void ProblemTypesOfTheCatalogueAndOfTheDocumentAreTheSameWithTheSameStatusAndTitle()
    {
        var markdown = File.ReadAllText(ApiMarkdownPath);
        var catalogue = CatalogueKinds().ToDictionary(kind => kind.Type);
        var mentioned = ProblemTypeUri().Matches(markdown).Select(m => m.Value).ToHashSet();
        var rows = ProblemTableRow().Matches(markdown).ToDictionary(m => m.Groups["type"].Value,
            m => (Status: int.Parse(m.Groups["status"].Value), Title: m.Groups["title"].Value.Trim()));

        var undocumented = catalogue.Keys.Except(rows.Keys).Order().ToArray();
        var unknown = mentioned.Except(catalogue.Keys).Order().ToArray();

        Assert.True(undocumented.Length == 0, $"problem types missing from the table in docs/API.md: {string.Join(", ", undocumented)}");
        Assert.True(unknown.Length == 0, $"docs/API.md names problem types that ProblemCatalog does not have: {string.Join(", ", unknown)}");
        foreach (var (type, kind) in catalogue)
        {
            Assert.True(rows[type] == (kind.Status, kind.Title),
                $"docs/API.md lists {type} as {rows[type].Status} '{rows[type].Title}'; ProblemCatalog says {kind.Status} '{kind.Title}'");
        }
    }

    [Fact]
    public void ProblemTypesInTheOpenApiExamplesAndInTheStatusListsAreCatalogueTypesWithThatStatus()
    {
        var catalogue = CatalogueKinds().ToDictionary(kind => kind.Type);
        var inOpenApi = ProblemTypeUri().Matches(openApi.Text).Select(m => m.Value).Distinct().ToArray();
        Assert.NotEmpty(inOpenApi);
        Assert.All(inOpenApi, type => Assert.True(catalogue.ContainsKey(type), $"the OpenAPI document uses {type}, which ProblemCatalog does not have"));

        // "Status codes: **404** `model-not-found`, ...": every slug there is a catalogue type with the status before it.
        const string prefix = "urn:protopnet:problem:";
        var wrong = new List<string>();
        foreach (var (endpoint, section) in ApiSections.Parse(File.ReadAllText(ApiMarkdownPath)))
        {
            var at = section.IndexOf("Status codes:", StringComparison.Ordinal);
            var statusList = at < 0 ? "" : section[at..].Split("\n\n")[0];
            var status = 0;
            foreach (Match token in StatusListToken().Matches(statusList))
            {
                if (token.Groups["status"].Success)
                {
                    status = int.Parse(token.Groups["status"].Value);
                    continue;
                }
                var slug = token.Groups["slug"].Value;
                if (!catalogue.TryGetValue(prefix + slug, out var kind)) wrong.Add($"{endpoint}: `{slug}` is not a problem type");
                else if (kind.Status != status) wrong.Add($"{endpoint}: `{slug}` is listed under {status}, its status is {kind.Status}");
            }
        }
        Assert.True(wrong.Count == 0, string.Join("; ", wrong));
    }

    private static IEnumerable<ProblemKind> CatalogueKinds() =>
        typeof(ProblemCatalog).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(field => field.FieldType == typeof(ProblemKind))
            .Select(field => (ProblemKind)field.GetValue(null)!);

    [GeneratedRegex("urn:protopnet:problem:[a-z0-9-]+")]
    private static partial Regex ProblemTypeUri();

    /// <summary>A row of the problem-type table: | `type` | status | title | when |.</summary>
    [GeneratedRegex(@"^\| `(?<type>urn:protopnet:problem:[a-z0-9-]+)` \| (?<status>\d{3}) \| (?<title>[^|]+)\|", RegexOptions.Multiline)]
    private static partial Regex ProblemTableRow();

    /// <summary>In a status list: a status in bold, or a problem slug in backticks.</summary>
    [GeneratedRegex(@"\*\*(?<status>\d{3})\*\*|`(?<slug>[a-z0-9]+(?:-[a-z0-9]+)+)`")]
    private static partial Regex StatusListToken();

    /// <summary>The OpenAPI document of the real service (no model needed), fetched once for the tests of this class.</summary>
    public sealed class OpenApiDocument : IAsyncLifetime
    {
        private readonly string _emptyRoot = Directory.CreateTempSubdirectory("protopnet-docs-").FullName;
        private ServiceFactory? _service;

        public string Text { get; private set; } = "";

        /// <summary>Every operation, by "METHOD /path".</summary>
        public IReadOnlyDictionary<string, JsonElement> Operations { get; private set; } = new Dictionary<string, JsonElement>();

        public async Task InitializeAsync()
        {
            _service = ServiceFactory.ForRoot(_emptyRoot);
            var document = await Http.JsonAsync(await _service.CreateClient().GetAsync("/swagger/v1/swagger.json"));
            Text = document.GetRawText();
            Operations = document.GetProperty("paths").EnumerateObject()
                .SelectMany(path => path.Value.EnumerateObject().Select(operation =>
                    (Key: $"{operation.Name.ToUpperInvariant()} {path.Name}", Operation: operation.Value)))
                .ToDictionary(entry => entry.Key, entry => entry.Operation);
        }

        public async Task DisposeAsync()
        {
            if (_service is not null) await _service.DisposeAsync();
            Directory.Delete(_emptyRoot, recursive: true);
        }
    }

    /// <summary>
    /// docs/API.md's endpoint sections: a heading <c>### `METHOD /path`</c> and the text up to the next heading. Headings
    /// that follow each other directly (a route and its versioned twin) share the text below them.
    /// </summary>
    private static partial class ApiSections
    {
        public static Dictionary<string, string> Parse(string markdown)
        {
            var sections = new Dictionary<string, string>();
            var pending = new List<string>();
            var text = new StringBuilder();
            var inCode = false;

            void Flush()
            {
                foreach (var endpoint in pending)
                {
                    Assert.True(sections.TryAdd(endpoint, text.ToString()), $"docs/API.md documents {endpoint} twice");
                }
                pending.Clear();
                text.Clear();
            }

            foreach (var line in markdown.ReplaceLineEndings("\n").Split('\n'))
            {
                if (line.StartsWith("```", StringComparison.Ordinal)) inCode = !inCode;
                if (!inCode && line.StartsWith('#'))
                {
                    // A heading ends the section above it, except an endpoint heading right below another one.
                    var heading = EndpointHeading().Match(line);
                    if (!heading.Success || !string.IsNullOrWhiteSpace(text.ToString())) Flush();
                    if (heading.Success) pending.Add($"{heading.Groups["method"].Value} {heading.Groups["path"].Value}");
                    continue;
                }
                if (pending.Count > 0) text.Append(line).Append('\n');
            }
            Flush();
            return sections;
        }

        [GeneratedRegex(@"^###\s+`(?<method>GET|POST|PUT|PATCH|DELETE)\s+(?<path>/[^`\s]*)`\s*$")]
        private static partial Regex EndpointHeading();
    }
}
