using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Web.Tests;

/// <summary>
/// The web page against services set up otherwise than the fixture's: one with no model (the page says so when it
/// opens, and the message stays), one that classifies only with its API key (the page asks for the key, keeps it
/// for the tab's session and classifies with it), and one with an admin key but no jobs folder (the Training tab says
/// so and shows no form to fill in for nothing).
/// </summary>
[Collection(WebCollection.Name)]
public sealed class ServiceSettingsPageTests(WebFixture fixture)
{
    private const int Timeout = 30_000;
    private const string ClassifyKey = "web-tests-classify-key";

    private async Task<IPage> OpenAsync(Uri service, string? initScript = null)
    {
        var context = await fixture.Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = service.ToString() });
        context.SetDefaultTimeout(Timeout);
        if (initScript is not null) await context.AddInitScriptAsync(initScript);
        var page = await context.NewPageAsync();
        await page.GotoAsync("/");
        return page;
    }

    [Fact]
    public async Task A_service_without_a_model_says_so_when_the_page_opens()
    {
        var empty = Directory.CreateDirectory(Path.Combine(fixture.WorkDirectory, "empty-root-" + Guid.NewGuid().ToString("N")[..8]));
        await using var service = WebFixture.StartOtherService(empty.FullName);
        var page = await OpenAsync(service.BaseAddress);

        var error = page.Locator("#error");
        await error.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });
        // Still there once the page has shown its view (which clears errors only when the view changes).
        await page.WaitForFunctionAsync("() => document.querySelector('#view-classify') && !document.querySelector('#view-classify').hidden");
        await Task.Delay(300);
        Assert.True(await error.IsVisibleAsync());
        Assert.Contains("No model", await error.TextContentAsync());
        Assert.Contains("holds no valid bundle", await error.TextContentAsync());
        await page.Context.CloseAsync();
    }

    /// <summary>
    /// The service listens before its models are loaded: a page opened meanwhile says the service is loading them (not
    /// that it has none), asks again, and lists the model once it is served, the message gone.
    /// </summary>
    [Fact]
    public async Task A_page_opened_while_the_service_loads_its_models_says_so_and_lists_them_once_loaded()
    {
        // The service's loading is held where it starts, until the page has said so: no race between loading and a
        // browser opening the page on a busy machine.
        using var held = new LoadingHeld();
        var port = FreePort();
        var starting = Task.Run(() => WebFixture.StartOtherService(fixture.ModelRoot, port,
            services => services.AddSingleton<ILoggerProvider>(held)));
        await held.Reached.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.False(starting.IsCompleted, "the service started without loading its models");

        // Every message the page shows is kept as it is shown: the page may ask again, find the models loaded and
        // clear the message before the test reads it.
        var page = await OpenAsync(new Uri($"http://127.0.0.1:{port}/"), """
            window.shownErrors = [];
            document.addEventListener("DOMContentLoaded", () => new MutationObserver(() => {
              const box = document.getElementById("error");
              if (!box.hidden && box.textContent) window.shownErrors.push(box.textContent);
            }).observe(document.getElementById("error"), { attributes: true, childList: true, subtree: true, characterData: true }));
            """);
        await page.WaitForFunctionAsync("() => window.shownErrors.length > 0");
        Assert.Contains("loading its models", (await page.EvaluateAsync<string[]>("() => window.shownErrors"))[0]);

        held.Release();
        await using var service = await starting;
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#model option').length > 0");
        await page.Locator("#error").WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Hidden });
        Assert.All(await page.EvaluateAsync<string[]>("() => window.shownErrors"), shown => Assert.Contains("loading its models", shown));
        Assert.Equal(fixture.ModelName, await page.InputValueAsync("#model"));
        await page.Context.CloseAsync();
    }

    /// <summary>
    /// Holds the thread that logs the registry's "Loading model bundles from" line (the one that goes on to load them,
    /// once the service listens) until <see cref="Release"/>.
    /// </summary>
    private sealed class LoadingHeld : ILoggerProvider, ILogger
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly ManualResetEventSlim _released = new();

        public Task Reached => _reached.Task;

        public void Release() => _released.Set();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!formatter(state, exception).StartsWith("Loading model bundles from", StringComparison.Ordinal)) return;
            _reached.TrySetResult();
            _released.Wait(TimeSpan.FromMinutes(2));   // a test that fails before releasing still lets the service go on
        }

        public void Dispose() => _released.Set();   // not disposed: the service's thread may still be waking from it
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task The_page_asks_for_the_classify_key_when_the_service_needs_one()
    {
        await using var service = WebFixture.StartOtherService(fixture.ModelRoot, ("Models:DefaultModel", fixture.ModelName),
            ("Security:ClassifyApiKey", ClassifyKey));
        var page = await OpenAsync(service.BaseAddress);
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#model option').length > 0");
        Assert.True(await page.Locator("#classify-key-form").IsHiddenAsync());

        // Without the key: the service's problem, and a form for the key.
        await page.SetInputFilesAsync("#file", fixture.SourceImage(0));
        await page.Locator("#classify-key-form").WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });
        Assert.Contains("An API key is required", await page.TextContentAsync("#error"));
        // Said to a person, not to a program ("needs the header X-Api-Key"), and the key field has the focus.
        Assert.Contains("Enter the service's API key in the form on this page.", await page.TextContentAsync("#error"));
        Assert.Equal("classify-key", await page.EvaluateAsync<string>("() => document.activeElement.id"));
        Assert.True(await page.Locator("#result").IsHiddenAsync());

        // With it: the same image is classified, and the key is kept for this tab's session only.
        await page.FillAsync("#classify-key", ClassifyKey);
        await page.ClickAsync("#classify-key-form button[type=submit]");
        await page.WaitForFunctionAsync("() => !document.getElementById('result').hidden");
        Assert.False(string.IsNullOrWhiteSpace(await page.TextContentAsync("#prediction")));
        Assert.True(await page.Locator("#classify-key-form").IsHiddenAsync());
        Assert.Equal("file", await page.EvaluateAsync<string>("() => document.activeElement.id"));   // not lost with the form
        Assert.True(await page.Locator("#error").IsHiddenAsync());
        Assert.Equal(ClassifyKey, await page.EvaluateAsync<string>("() => sessionStorage.getItem('protopnet.classifyApiKey')"));
        Assert.Equal(0, await page.EvaluateAsync<int>("() => localStorage.length"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_service_without_a_jobs_folder_says_so_on_the_training_tab_and_offers_no_form()
    {
        await using var service = WebFixture.StartOtherService(fixture.ModelRoot, ("Models:DefaultModel", fixture.ModelName),
            ("Security:AdminApiKey", WebFixture.AdminKey));
        var page = await OpenAsync(service.BaseAddress);
        await page.EvaluateAsync("() => { location.hash = 'training'; }");
        await page.FillAsync("#training-key", WebFixture.AdminKey);
        await page.ClickAsync("#training-key-form button[type=submit]");

        var error = page.Locator("#error");
        await error.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Visible });
        Assert.Contains("Training is not configured", await error.TextContentAsync());
        Assert.Contains("Training:JobsRoot", await error.TextContentAsync());
        Assert.True(await page.Locator("#training-ready").IsHiddenAsync());
        Assert.True(await page.Locator("#training-key-form").IsHiddenAsync());
        await page.Context.CloseAsync();
    }
}
