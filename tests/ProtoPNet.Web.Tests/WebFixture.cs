using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Web.Tests;

/// <summary>
/// The real service on a real Kestrel bound to 127.0.0.1 (a free port), serving a copy of the trainer's smoke bundle to which
/// two example images were added (as the trainer's <c>examples</c> field lists them), and one headless Chromium
/// (Debian's <c>chromium</c>) driven by Playwright.
/// </summary>
public sealed class WebFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private static readonly string[] ChromiumArgs =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
    ];

    private readonly string _workDirectory = Directory.CreateTempSubdirectory("protopnet-web-tests-").FullName;
    private WebApplicationFactory<Program>? _factory;
    private IPlaywright? _playwright;

    /// <summary>Where the service listens, e.g. http://127.0.0.1:41234/.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>How long a page step may take before a test fails.</summary>
    public const int PageTimeout = 30_000;

    /// <summary>
    /// The page at / in a browser context of its own, <paramref name="width"/> x <paramref name="height"/>, once it has
    /// listed the models (from GET /models). What its Content-Security-Policy blocks is kept in window.cspViolations.
    /// </summary>
    public async Task<IPage> OpenPageAsync(int width = 1100, int height = 900)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = BaseAddress.ToString(),
            ViewportSize = new ViewportSize { Width = width, Height = height },
        });
        context.SetDefaultTimeout(PageTimeout);
        await context.AddInitScriptAsync(
            "window.cspViolations = []; document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));");
        var page = await context.NewPageAsync();
        await page.GotoAsync("/");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#model option').length > 0");
        return page;
    }

    /// <summary>Waits until the page shows an answer with every picture of it loaded.</summary>
    public static async Task WaitForResultAsync(IPage page) =>
        await page.WaitForFunctionAsync(
            "() => !document.getElementById('result').hidden && [...document.querySelectorAll('#result img')].every(i => i.complete && i.naturalWidth > 0)");

    /// <summary>The trainer's smoke bundle (version folder), as trained; tests copy it before changing anything.</summary>
    public string SmokeSource { get; private set; } = null!;

    /// <summary>A folder for the tests' own files, deleted at the end.</summary>
    public string WorkDirectory => _workDirectory;

    /// <summary>The served copy of the smoke bundle.</summary>
    public string BundleDirectory { get; private set; } = null!;

    public string ModelName => "smoke";

    /// <summary>The admin key the service is configured with (the Training tab asks for it).</summary>
    public const string AdminKey = "web-tests-admin-key";

    public string ModelRoot => Path.Combine(_workDirectory, "models");

    public string JobsDirectory => Path.Combine(_workDirectory, "jobs");

    private TrainingWorker? _worker;

    /// <summary>A training worker on the service's jobs folder, publishing into its model root (started once, when a test needs it).</summary>
    public TrainingWorker Worker => _worker ??= TrainingWorker.Start(JobsDirectory, ModelRoot, DataDirectory);

    /// <summary>
    /// The service's and the worker's data root: <c>photos</c>, an image folder of three colour classes (10 training and 4
    /// test PNGs each), <c>unfinished</c>, one the trainer would refuse (its test classes hold no images), and
    /// <c>hollow</c>, one with an empty image file (trained on only with the files that cannot be read left out).
    /// </summary>
    public string DataDirectory => Path.Combine(_workDirectory, "data");

    /// <summary>Screenshots and other things a person may want to look at after a run (artifacts/ is git-ignored).</summary>
    public static string ArtifactsDirectory { get; } = CreateArtifactsDirectory();

    public async Task InitializeAsync()
    {
        SmokeSource = Trainer.FindBundle(Trainer.SmokeModels(_workDirectory), "smoke");
        var modelRoot = ModelRoot;
        BundleDirectory = Path.Combine(modelRoot, ModelName, Path.GetFileName(SmokeSource));
        Trainer.CopyDirectory(SmokeSource, BundleDirectory);
        AddExamples(BundleDirectory);

        WriteDataFolders();

        (_factory, BaseAddress) = StartService(modelRoot,
            ("Models:DefaultModel", ModelName),
            // The Training tab: jobs go to a folder of this fixture, for a worker the training test starts.
            ("Security:AdminApiKey", AdminKey),
            ("Training:JobsRoot", JobsDirectory),
            ("Training:DataRoot", DataDirectory),
            ("Training:EventPollMilliseconds", "200"),
            ("Models:RescanIntervalSeconds", "2"));
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };

        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"{ChromiumPath} is missing: install Debian's chromium package (scripts/test.sh does)");
        }
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ChromiumArgs,
            Timeout = 60_000,
        });
    }

    private void WriteDataFolders()
    {
        Pillow.RunPython("""
            import os, random, sys
            from PIL import Image
            random.seed(1)
            for split, count in (("train", 10), ("test", 4)):
                for name, colour in (("red", (200, 40, 40)), ("green", (40, 180, 60)), ("blue", (40, 60, 200))):
                    folder = os.path.join(sys.argv[1], "photos", split, name)
                    os.makedirs(folder)
                    for i in range(count):
                        pixel = tuple(min(255, max(0, v + random.randint(-30, 30))) for v in colour)
                        Image.new("RGB", (40, 40), pixel).save(os.path.join(folder, f"{i}.png"))
                    os.makedirs(os.path.join(sys.argv[1], "unfinished", split, name))
                    if split == "train":
                        Image.new("RGB", (40, 40), colour).save(os.path.join(sys.argv[1], "unfinished", split, name, "0.png"))
                    os.makedirs(os.path.join(sys.argv[1], "hollow", split, name))
                    for i in range(2):
                        Image.new("RGB", (40, 40), colour).save(os.path.join(sys.argv[1], "hollow", split, name, f"{i}.png"))
            open(os.path.join(sys.argv[1], "hollow", "train", "red", "2.png"), "wb").close()
            """, DataDirectory);
    }

    /// <summary>The service on a real Kestrel at a free 127.0.0.1 port, serving <paramref name="modelRoot"/> on the CPU with these settings.</summary>
    private static (WebApplicationFactory<Program> Factory, Uri BaseAddress) StartService(string modelRoot, params (string Key, string Value)[] settings) =>
        StartService(modelRoot, port: 0, _ => { }, settings);

    private static (WebApplicationFactory<Program> Factory, Uri BaseAddress) StartService(string modelRoot, int port,
        Action<IServiceCollection> services, params (string Key, string Value)[] settings)
    {
        var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(builder =>
        {
            builder.UseSetting("Models:Root", modelRoot);
            builder.UseSetting("Inference:ExecutionProvider", "cpu");
            builder.UseSetting("Inference:IntraOpThreads", "1");
            foreach (var (key, value) in settings) builder.UseSetting(key, value);
            builder.ConfigureServices(services);
        });
        factory.UseKestrel(options => options.Listen(IPAddress.Loopback, port));
        factory.StartServer();
        var addresses = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        return (factory, new Uri(addresses.Single(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal)) + "/"));
    }

    /// <summary>A second service beside the fixture's, for a test that needs other settings (another model root, an API key); dispose it.</summary>
    public static OtherService StartOtherService(string modelRoot, params (string Key, string Value)[] settings) =>
        StartOtherService(modelRoot, port: 0, _ => { }, settings);

    /// <summary>
    /// A second service listening on <paramref name="port"/> (0: a free one), with <paramref name="services"/> of the
    /// test's added to its own (a logger provider, say); returns once its models are loaded, while it listens from
    /// before that.
    /// </summary>
    public static OtherService StartOtherService(string modelRoot, int port, Action<IServiceCollection> services,
        params (string Key, string Value)[] settings)
    {
        var (factory, address) = StartService(modelRoot, port, services, settings);
        return new OtherService(factory, address);
    }

    public sealed class OtherService(WebApplicationFactory<Program> factory, Uri baseAddress) : IAsyncDisposable
    {
        public Uri BaseAddress { get; } = baseAddress;

        public ValueTask DisposeAsync() => factory.DisposeAsync();
    }

    public async Task DisposeAsync()
    {
        _worker?.Dispose();
        if (Browser is not null) await Browser.CloseAsync();
        _playwright?.Dispose();
        Http?.Dispose();
        if (_factory is not null) await _factory.DisposeAsync();
        try
        {
            Directory.Delete(_workDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temporary folder is harmless.
        }
    }

    /// <summary>A training image of prototype <paramref name="prototypeIndex"/>: a real image of the data set the model learned.</summary>
    public string SourceImage(int prototypeIndex) => Path.Combine(BundleDirectory, "prototypes", prototypeIndex.ToString(), "source.png");

    /// <summary>How many example images the served bundle lists (two added here, or the trainer's own).</summary>
    public int ExampleCount
    {
        get
        {
            using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(BundleDirectory, "model.json")));
            return manifest.RootElement.GetProperty("examples").GetArrayLength();
        }
    }

    /// <summary>The class of prototype <paramref name="prototypeIndex"/> in the served bundle.</summary>
    public int PrototypeClass(int prototypeIndex)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(BundleDirectory, "model.json")));
        return manifest.RootElement.GetProperty("prototypes")[prototypeIndex].GetProperty("classIndex").GetInt32();
    }

    /// <summary>
    /// Lists two example images in model.json, as the trainer does for its test images: the source images of two prototypes
    /// of different classes. Bundles from a trainer that already stores examples are left as they are.
    /// </summary>
    private static void AddExamples(string bundleDirectory)
    {
        var manifestPath = Path.Combine(bundleDirectory, "model.json");
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!.AsObject();
        if (manifest["examples"] is JsonArray { Count: > 0 }) return;
        var prototypes = manifest["prototypes"]!.AsArray();
        var chosen = prototypes.GroupBy(p => p!["classIndex"]!.GetValue<int>()).Take(2).Select(g => g.First()!).ToArray();
        var examples = new JsonArray();
        Directory.CreateDirectory(Path.Combine(bundleDirectory, "examples"));
        for (var i = 0; i < chosen.Length; i++)
        {
            var index = chosen[i]["index"]!.GetValue<int>();
            File.Copy(Path.Combine(bundleDirectory, "prototypes", index.ToString(), "source.png"),
                Path.Combine(bundleDirectory, "examples", $"{i}.png"));
            examples.Add(new JsonObject { ["file"] = $"examples/{i}.png", ["classIndex"] = chosen[i]["classIndex"]!.GetValue<int>() });
        }
        manifest["examples"] = examples;
        File.WriteAllText(manifestPath, manifest.ToJsonString());
    }

    private static string CreateArtifactsDirectory()
    {
        var directory = Path.Combine(Trainer.RepositoryRoot, "artifacts", "web");
        Directory.CreateDirectory(directory);
        return directory;
    }
}

[CollectionDefinition(Name)]
public sealed class WebCollection : ICollectionFixture<WebFixture>
{
    public const string Name = "web";
}
