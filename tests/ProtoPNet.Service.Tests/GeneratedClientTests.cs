using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NSwag;
using NSwag.CodeGeneration.CSharp;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// Another microservice's view of the API: a C# client generated from the service's own OpenAPI document by NSwag (a
/// common generator), compiled with a small program written against its types, and run against the real service. A
/// schema that a generator cannot turn into working code (a wrong type, a missing property, an enum without a value the
/// service sends, an error body that does not parse) fails here, where the contract tests read JSON by hand.
/// </summary>
public sealed class GeneratedClientTests : IDisposable
{
    private const string Key = "generated-client-tests-admin-key";

    private readonly TemporaryDirectory _root = new("protopnet-generated-client-");

    /// <summary>What a consumer writes: typed calls, typed answers, a typed problem for a refused request.</summary>
    private const string Consumer = """
        using System.Collections.Generic;
        using System.IO;
        using System.Linq;
        using System.Net.Http;
        using System.Threading.Tasks;
        using Generated;

        public static class Consumer
        {
            public static async Task<string[]> RunAsync(HttpClient http, string baseUrl, byte[] png)
            {
                var client = new ProtoPNetClient(baseUrl, http);
                var said = new List<string>();
                var answer = await client.ClassifyAsync(null, null, 3, 2, null, null, new FileParameter(new MemoryStream(png), "boot.png", "image/png"));
                said.Add($"classify {answer.Model.Name} {answer.Prediction.Label} {answer.TopClasses.Count} {answer.Explanation.Prototypes.Count}");
                // A member that may be null and refers to another schema is still that schema's type (not object).
                said.Add($"calibration {answer.Unfamiliarity.Calibration?.Split}");
                try
                {
                    await client.ClassifyAsync(null, null, -1, null, null, null, new FileParameter(new MemoryStream(png), "boot.png", "image/png"));
                    said.Add("topClasses=-1 was accepted");
                }
                catch (ApiException<ProblemDetails> refused)
                {
                    said.Add($"refused {refused.StatusCode} {refused.Result.Type}");
                }
                var models = await client.ListModelsAsync();
                said.Add($"models {models.DefaultModel} {string.Join(",", models.Models.Select(m => m.Name))}");
                var data = await client.ListTrainingDataAsync();
                said.Add($"data {data.Configured} {string.Join(",", data.Folders.Select(f => $"{f.Data}:{f.Dataset}:{f.Classes}:{f.TrainImages}"))}");
                var options = await client.ListTrainingOptionsAsync();
                said.Add($"presets {string.Join(",", options.Presets.Select(p => p.Name))}");
                var v2 = await client.V2ServerMetadataAsync();
                said.Add($"v2 {v2.Name}");
                return said.ToArray();
            }
        }
        """;

    public GeneratedClientTests()
    {
        foreach (var split in new[] { "train", "test" })
        {
            foreach (var name in new[] { "a", "b" })
            {
                Directory.CreateDirectory(Path.Combine(_root.Path, "data", "photos", split, name));
                File.WriteAllBytes(Path.Combine(_root.Path, "data", "photos", split, name, "1.png"), [1]);
            }
        }
    }

    [Fact]
    public async Task A_client_generated_from_the_openapi_document_calls_the_service_and_reads_its_answers_and_problems()
    {
        // The repository's default model alone: models/ also receives what a user trains (the README's worker and
        // `--models models` publish there), and a model of theirs failed the list of models below.
        var models = Path.Combine(_root.Path, "models");
        Trainer.CopyDirectory(Path.Combine(Trainer.RepositoryRoot, "models", "fashion-mnist"), Path.Combine(models, "fashion-mnist"));
        await using var service = ServiceFactory.ForRoot(models, ("Security:AdminApiKey", Key),
            ("Training:JobsRoot", Path.Combine(_root.Path, "jobs")), ("Training:DataRoot", Path.Combine(_root.Path, "data")));
        var http = service.CreateClient();
        http.DefaultRequestHeaders.Add("X-Api-Key", Key);
        var document = await OpenApiDocument.FromJsonAsync(await http.GetStringAsync("/swagger/v1/swagger.json"));
        var code = new CSharpClientGenerator(document, new CSharpClientGeneratorSettings
        {
            ClassName = "ProtoPNetClient",
            CSharpGeneratorSettings = { Namespace = "Generated", JsonLibrary = NJsonSchema.CodeGeneration.CSharp.CSharpJsonLibrary.SystemTextJson },
        }).GenerateFile();

        var run = Compile(code, Consumer).GetType("Consumer")!.GetMethod("RunAsync")!;
        var boot = await File.ReadAllBytesAsync(Directory.GetFiles(Path.Combine(models, "fashion-mnist"), "9.png", SearchOption.AllDirectories).First());
        var said = await (Task<string[]>)run.Invoke(null, [http, http.BaseAddress!.ToString(), boot])!;

        Assert.Equal("classify fashion-mnist Ankle boot 3 2", said[0]);
        Assert.Equal("calibration test[5000:10000]", said[1]);
        Assert.Equal("refused 400 urn:protopnet:problem:invalid-parameter", said[2]);
        Assert.Equal("models fashion-mnist fashion-mnist", said[3]);
        Assert.Equal("data True photos:imagefolder:2:2", said[4]);
        Assert.Contains("smoke", said[5].Split(' ')[1].Split(','));
        Assert.Equal("v2 protopnet-service", said[6]);
    }

    /// <summary>The generated client and the consumer, compiled together (an error is the test's failure, with its lines).</summary>
    private static Assembly Compile(params string[] sources)
    {
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(path => MetadataReference.CreateFromFile(path));
        var compilation = CSharpCompilation.Create("GeneratedClient", sources.Select(source => CSharpSyntaxTree.ParseText(source)), references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Disable));
        using var assembly = new MemoryStream();
        var emitted = compilation.Emit(assembly);
        var errors = emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()).ToArray();
        Assert.True(emitted.Success, "the generated client or its consumer does not compile:\n" + string.Join("\n", errors.Take(20)));
        assembly.Position = 0;
        return new AssemblyLoadContext("generated-client", isCollectible: true).LoadFromStream(assembly);
    }

    public void Dispose() => _root.Dispose();
}
