using Microsoft.Extensions.Configuration;
using ProtoPNet.Service.Tests.Infrastructure;

namespace ProtoPNet.Service.Tests;

/// <summary>
/// The service as a user starts it stops on a bad setting with exit status 1 and one line that names the setting, not
/// an unhandled exception's stack trace: a value out of its range, a word where a number belongs, an unknown name.
/// </summary>
[Collection(BundlesCollection.Name)]
public class StartupFailureTests(TrainerBundles bundles)
{
    [Theory]
    [InlineData("Batching__MaxBatchSize", "0", "Batching:MaxBatchSize: The field MaxBatchSize must be between")]
    [InlineData("Images__MaxBytes", "twenty", "Images:MaxBytes")]
    [InlineData("Batching__Strategy", "fastest", "Batching:Strategy")]
    [InlineData("Batching__Strategy", "fastest", "Use one of: auto, fixed.")]
    [InlineData("Batching__PadBatches", "sometimes", "Batching:PadBatches")]
    [InlineData("Batching__PadBatches", "4", "Batching:PadBatches: The field PadBatches is invalid. Use one of: auto, always, never.")]
    [InlineData("Inference__ExecutionProvider", "gpu", "Use one of: auto, cuda, cpu.")]
    [InlineData("Inference__CudnnConvAlgoSearch", "fastest", "Inference:CudnnConvAlgoSearch")]
    [InlineData("Inference__CudnnConvAlgoSearch", "3", "Use one of: exhaustive, heuristic, default.")]
    [InlineData("Logging__Format", "xml", "Logging:Format")]
    // The binder takes a number for an enum, any number; an origin a browser never sends; a key no header can hold.
    [InlineData("Inference__ExecutionProvider", "7", "Inference:ExecutionProvider: The field ExecutionProvider is invalid. Use one of: auto, cuda, cpu.")]
    [InlineData("Batching__Strategy", "5", "Batching:Strategy: The field Strategy is invalid. Use one of: auto, fixed.")]
    [InlineData("Security__CorsOrigins", "https://app.example/", "Security:CorsOrigins")]
    [InlineData("Security__ClassifyApiKey", "key-from-a-file\n", "Security:ClassifyApiKey has spaces at its start or end, or a line break")]
    [InlineData("Security__AdminApiKey", "first-line\nsecond-line", "Security:AdminApiKey has spaces at its start or end, or a line break")]
    [InlineData("Models__DefaultModel", "../etc", "Models:DefaultModel is not a model name")]
    [InlineData("Models__Root", "/etc/passwd", "Models:Root is a file")]
    [InlineData("Models__Pinned__smoke", "v 1", "Models:Pinned holds a model name or version that cannot be one")]
    [InlineData("Telemetry__OtlpEndpoint", "ftp://collector:4317", "Telemetry:OtlpEndpoint must be an http or https URL")]
    [InlineData("Training__KeepFinishedJobs", "-1.00:00:00", "Training:KeepFinishedJobs")]
    // Keeping a finished job for no time would remove it before a page or a client read how it ended.
    [InlineData("Training__KeepFinishedJobs", "00:00:00", "Training:KeepFinishedJobs: The field KeepFinishedJobs must be between 00:00:01")]
    [InlineData("Training__DataRoot", "/nonexistent/protopnet-data", "Training:DataRoot must be an existing folder")]
    [InlineData("Classify__UploadReadTimeout", "5", "Classify:UploadReadTimeout: The field UploadReadTimeout must be between 00:00:01 and 1.00:00:00 (a time is written [d.]hh:mm:ss: 00:00:05 is 5 seconds, and a bare number is read as days).")]
    [InlineData("Shutdown__DrainSeconds", "30", "Shutdown:DrainSeconds must be shorter than the host's shutdownTimeoutSeconds")]
    [InlineData("ASPNETCORE_SHUTDOWNTIMEOUTSECONDS", "abc", "shutdownTimeoutSeconds (ASPNETCORE_SHUTDOWNTIMEOUTSECONDS) is 'abc': it is a whole number of seconds, 0 or more")]
    [InlineData("ASPNETCORE_SHUTDOWNTIMEOUTSECONDS", "-5", "shutdownTimeoutSeconds (ASPNETCORE_SHUTDOWNTIMEOUTSECONDS) is '-5'")]
    [InlineData("Shutdown__DrainSeconds", "-1", "Shutdown:DrainSeconds: The field DrainSeconds must be between 0 and 600")]
    // Kestrel:Limits (bound and checked by the service: ASP.NET Core leaves the section alone).
    [InlineData("Kestrel__Limits__MaxConcurrentConnections", "-5", "Kestrel:Limits:MaxConcurrentConnections: The field MaxConcurrentConnections must be between 1 and 9223372036854775807")]
    [InlineData("Kestrel__Limits__RequestHeadersTimeout", "abc", "Kestrel:Limits:RequestHeadersTimeout")]
    // A key no setting reads (the binder passes over it, so the default stayed in force): the setting meant, or the section's settings.
    [InlineData("Batching__MaxBatchSise", "4", "Batching:MaxBatchSise is not a setting; did you mean Batching:MaxBatchSize?")]
    [InlineData("Classify__InlineSmallRequest", "false", "Classify:InlineSmallRequest is not a setting; did you mean Classify:InlineSmallRequests?")]
    [InlineData("Kestrel__Limits__MaxRequestBodySize", "100", "Kestrel:Limits:MaxRequestBodySize is not a setting; Kestrel:Limits has MaxConcurrentConnections, MaxConcurrentUpgradedConnections, MaxRequestHeaderCount, MaxRequestHeadersTotalSize, MaxRequestLineSize, KeepAliveTimeout, RequestHeadersTimeout.")]
    [InlineData("Training__JobRoot", "/tmp", "Training:JobRoot is not a setting; did you mean Training:JobsRoot?")]
    [InlineData("Logging__Fromat", "json", "Logging:Fromat is not a setting; did you mean Logging:Format?")]
    // A misspelt section (the binder reads only the section's own name, so every default stayed in force).
    [InlineData("Model__Root", "/tmp", "Model:Root is not a setting; did you mean Models:Root?")]
    [InlineData("Trainig__JobsRoot", "/tmp", "Trainig:JobsRoot is not a setting; did you mean Training:JobsRoot?")]
    [InlineData("Secuirty__AdminApiKey", "k", "Secuirty:AdminApiKey is not a setting; did you mean Security:AdminApiKey?")]
    [InlineData("Logging__Console__FormatterName", "json", "Logging:Console is not read by this service: the console's layout is Logging:Format's (console or json)")]
    [InlineData("Logging__LogLevel__Default", "Debug", "Logging:LogLevel is not read by this service: the log levels are Serilog:MinimumLevel's (e.g. Serilog__MinimumLevel__Default=Debug")]
    // Not settings the options check, but as much the operator's to fix: an address that is not one, CUDA that is not there.
    // A listen address Kestrel would read as a host name, and so listen on every interface (a typo in the port), or
    // refuse with a stack trace once the models are loaded.
    [InlineData("Urls", "notaurl", "'notaurl' is not a listen address")]
    [InlineData("Urls", "http://127.0.0.1:8o80", "'http://127.0.0.1:8o80' has the port '8o80'")]
    [InlineData("Urls", "http://127.0.0.1 :5192", "has the host '127.0.0.1 '")]
    [InlineData("Urls", "http://256.1.1.1:5192", "has the host '256.1.1.1'")]
    [InlineData("Urls", "http://127.0.0.1:99999", "has the port '99999'")]
    [InlineData("Urls", "ftp://127.0.0.1:5192", "has the scheme 'ftp'")]
    [InlineData("Urls", "http://127.0.0.1:5192/base", "has the path '/base'")]
    [InlineData("Kestrel__Endpoints__Http__Url", "http://127.0.0.1:abc", "Kestrel:Endpoints:Http:Url: 'http://127.0.0.1:abc' has the port 'abc'")]
    [InlineData("HTTP_PORTS", "80a", "HTTP_PORTS: '80a' is not a port")]
    // Serilog's levels: Serilog itself aborts the start with a stack trace (and takes an unknown override for a switch's name).
    [InlineData("Serilog__MinimumLevel__Default", "Loud", "Serilog:MinimumLevel:Default: 'Loud' is not a level")]
    [InlineData("Serilog__MinimumLevel__Override__Microsoft.AspNetCore", "Verbosee", "Serilog:MinimumLevel:Override:Microsoft.AspNetCore: 'Verbosee' is not a level")]
    [InlineData("Inference__ExecutionProvider", "cuda", "Inference:ExecutionProvider is 'cuda' but the CUDA execution provider cannot be used")]
    public async Task BadSettingStopsTheStartWithOneLineNamingIt(string key, string value, string named)
    {
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot(),
            [key] = value,
        });
        await using (service)
        {
            Assert.False(ready, "the service started with a bad setting");
            Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
            var output = string.Join('\n', service.Output);
            var line = Assert.Single(service.Output, l => l.StartsWith("ProtoPNet Service cannot start:", StringComparison.Ordinal));
            Assert.Contains(named, line);
            Assert.DoesNotContain("Unhandled exception", output);
            Assert.DoesNotContain("   at ", output);
        }
    }

    /// <summary>
    /// <c>--help</c> prints how the service is configured and exits: it was passed over as a setting, and the service
    /// started on port 8080 (or, the port taken, failed to).
    /// </summary>
    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public async Task HelpPrintsHowToConfigureTheServiceWithoutStartingIt(string argument)
    {
        var serviceDirectory = ServiceProcess.ServiceDirectory();
        var start = new System.Diagnostics.ProcessStartInfo("dotnet")
        {
            WorkingDirectory = serviceDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(serviceDirectory, "ProtoPNet.Service.dll"));
        start.ArgumentList.Add(argument);
        start.Environment["Urls"] = "http://127.0.0.1:0";   // where a service started by mistake would listen
        start.Environment["Models__Root"] = bundles.NewRoot();
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var exited = process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
        try
        {
            await exited;
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{argument} started the service: {await output}");
        }
        Assert.Equal(0, process.ExitCode);
        var text = await output;
        Assert.Contains("Usage:", text);
        Assert.Contains("--Models:Root DIR", text);
        Assert.Contains("--healthcheck", text);
        Assert.DoesNotContain("Now listening", text);
    }

    /// <summary>
    /// An address another process holds stops the start at once, with one line naming it, before any bundle is loaded
    /// (the server listens first): it was reported only after every bundle had loaded and had its execution strategy
    /// measured, seconds for a large one.
    /// </summary>
    [Fact]
    public async Task AnAddressInUseStopsTheStartBeforeAnyBundleIsLoaded()
    {
        using var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        holder.Start();
        var address = $"http://127.0.0.1:{((System.Net.IPEndPoint)holder.LocalEndpoint).Port}";
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ["Urls"] = address,
        });
        await using (service)
        {
            Assert.False(ready);
            Assert.Equal(1, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
            var line = Assert.Single(service.Output, l => l.StartsWith("ProtoPNet Service cannot start:", StringComparison.Ordinal));
            Assert.Contains($"Failed to bind to address {address}: address already in use", line);
            Assert.DoesNotContain(service.Output, l => l.Contains("Loading model bundles", StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// The server listens before the bundles load: the start log says so in that order. Meanwhile the catalog is the
    /// loading one, whose lookups (/classify, /health/ready) answer 503 no-model-ready saying the service is loading, not
    /// that the model root holds no valid bundle (as the empty one says) nor 404 for a model named.
    /// </summary>
    [Fact]
    public async Task TheServerListensBeforeTheBundlesLoadAndSaysItIsLoadingMeanwhile()
    {
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
        });
        await using (service)
        {
            Assert.True(ready, string.Join('\n', service.Output));
            var lines = service.Output.ToList();
            var listening = lines.FindIndex(l => l.Contains("Now listening on", StringComparison.Ordinal));
            var loading = lines.FindIndex(l => l.Contains("Loading model bundles", StringComparison.Ordinal));
            Assert.True(listening >= 0 && loading > listening, string.Join('\n', lines));
        }
        var problem = Assert.Throws<ProtoPNet.Service.Problems.ProblemException>(() =>
            ProtoPNet.Service.Models.ModelCatalog.Loading.Find(ProtoPNet.Service.Models.ModelSelector.Parse("smoke")));
        Assert.Equal(ProtoPNet.Service.Problems.ProblemCatalog.NoModelReady, problem.Kind);
        Assert.Contains("The service is loading its models", problem.Message);
        problem = Assert.Throws<ProtoPNet.Service.Problems.ProblemException>(() => ProtoPNet.Service.Models.ModelCatalog.Loading.Family("smoke"));
        Assert.Equal(ProtoPNet.Service.Problems.ProblemCatalog.NoModelReady, problem.Kind);
        Assert.Contains("No model is loaded", Assert.Throws<ProtoPNet.Service.Problems.ProblemException>(() =>
            ProtoPNet.Service.Models.ModelCatalog.Empty.Find(ProtoPNet.Service.Models.ModelSelector.Parse(null))).Message);
    }

    /// <summary>
    /// SIGTERM while the models load stops the loading: the service exits without loading (and measuring) the versions
    /// left, and says so. It went on until every bundle was loaded, seconds of them for a large model root, before
    /// shutting down.
    /// </summary>
    [Fact]
    public async Task SigtermWhileTheModelsLoadStopsTheLoading()
    {
        var root = bundles.NewRoot();
        ProtoPNet.Tests.Shared.Trainer.CopyAsVersions(bundles.SmokeBundle, Path.Combine(root, "smoke"), 24);
        var (service, listening) = await ServiceProcess.StartListeningAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = root, ["Models__LoadedVersions"] = "24", ["Inference__ExecutionProvider"] = "cpu",
        });
        await using (service)
        {
            Assert.True(listening, string.Join('\n', service.Output));
            await service.WaitForLineAsync("Loaded model smoke@");
            service.Terminate();
            Assert.Equal(0, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
            var output = string.Join('\n', service.Output);
            var stopped = Assert.Single(service.Output, l => l.Contains("Stopped loading model bundles after", StringComparison.Ordinal));
            var loaded = service.Output.Count(l => l.Contains("Loaded model smoke@", StringComparison.Ordinal));
            Assert.True(loaded < 24, $"all 24 versions were loaded before the service stopped:\n{output}");
            Assert.Contains($"{loaded} loaded: the service is shutting down", stopped);
            Assert.DoesNotContain("No model is loaded", output);
        }
    }

    /// <summary>
    /// SIGTERM while a version's execution strategy is measured (seconds for a large model; here batches of up to 1,024
    /// images) stops the measurement: the version is not loaded, nor refused (the shutdown used to wait for the whole
    /// measurement).
    /// </summary>
    [Fact]
    public async Task SigtermWhileAVersionIsMeasuredStopsTheMeasurement()
    {
        var lines = await SigtermDuringTheMeasurementOfAsync("smoke@", () => ListeningAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot((bundles.SmokeBundle, "smoke", null)), ["Inference__ExecutionProvider"] = "cpu",
            ["Batching__Strategy"] = "auto", ["Batching__MaxBatchSize"] = "1024",
        }));
        var output = string.Join('\n', lines);
        Assert.Contains("0 loaded: the service is shutting down", Assert.Single(lines, l => l.Contains("Stopped loading model bundles after", StringComparison.Ordinal)));
        Assert.DoesNotContain("Loaded model smoke@", output);
        Assert.DoesNotContain("runs batches of up to", output);
        Assert.DoesNotContain("Refused", output);
    }

    /// <summary>
    /// The same for a version published while the service runs: SIGTERM while the rescan measures it stops the
    /// measurement, and the shutdown does not wait for it; the version loaded before is not taken off meanwhile.
    /// </summary>
    [Fact]
    public async Task SigtermWhileARescanMeasuresANewVersionStopsTheMeasurement()
    {
        var lines = await SigtermDuringTheMeasurementOfAsync("smoke@20260102T000000Z", async () =>
        {
            var root = bundles.NewRoot();
            var staging = bundles.NewRoot();
            ProtoPNet.Tests.Shared.Trainer.CopyAsVersions(bundles.SmokeBundle, staging, 2);
            Directory.CreateDirectory(Path.Combine(root, "smoke"));
            Directory.Move(Path.Combine(staging, "20260101T000000Z"), Path.Combine(root, "smoke", "20260101T000000Z"));
            var service = await ListeningAsync(new Dictionary<string, string>
            {
                ["Models__Root"] = root, ["Inference__ExecutionProvider"] = "cpu", ["Batching__Strategy"] = "auto", ["Batching__MaxBatchSize"] = "1024",
            });
            await service.WaitForLineAsync("Serving smoke@20260101T000000Z");
            Directory.Move(Path.Combine(staging, "20260102T000000Z"), Path.Combine(root, "smoke", "20260102T000000Z"));
            return service;
        });
        var output = string.Join('\n', lines);
        Assert.Contains("0 loaded: the service is shutting down", Assert.Single(lines, l => l.Contains("Stopped loading model bundles after", StringComparison.Ordinal)));
        Assert.DoesNotContain("Loaded model smoke@20260102T000000Z", output);
        Assert.DoesNotContain("Refused", output);
        Assert.DoesNotContain("is unloaded once its running requests finish", output);   // retired; its unload at the exit is fine
    }

    /// <summary>
    /// The output of a service (<paramref name="start"/>ed) that took SIGTERM once it said it measures
    /// <paramref name="version"/>, and exited 0. An attempt whose measurement ended before the service took the signal
    /// (a busy machine held the test up for the second a measurement takes; the service's log says which came first)
    /// is not the case tested: it is made again, three times at most.
    /// </summary>
    private static async Task<string[]> SigtermDuringTheMeasurementOfAsync(string version, Func<Task<ServiceProcess>> start)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var service = await start();
            await service.WaitForLineAsync($"Measuring how {version}");
            service.Terminate();
            Assert.Equal(0, await service.ExitCodeAsync(TimeSpan.FromSeconds(60)));
            var lines = service.Output.ToList();
            var measured = lines.FindIndex(l => l.Contains("runs batches of up to", StringComparison.Ordinal) && l.Contains(version, StringComparison.Ordinal));
            var signal = lines.FindIndex(l => l.Contains("Application is shutting down", StringComparison.Ordinal));
            if (measured < 0 || (signal >= 0 && signal < measured)) return [.. lines];
            Assert.True(attempt < 3, $"in 3 attempts the signal never came while {version} was measured");
        }
    }

    /// <summary>The service started with these settings, listening (its whole output if it is not).</summary>
    private static async Task<ServiceProcess> ListeningAsync(Dictionary<string, string> settings)
    {
        var (service, listening) = await ServiceProcess.StartListeningAsync(settings);
        if (listening) return service;
        var output = string.Join('\n', service.Output);
        await service.DisposeAsync();
        Assert.Fail(output);
        return service;
    }

    /// <summary>
    /// Settings that look odd but are fine start the service: an empty telemetry service name is the default one (it
    /// aborted the start once tracing was on), a level in lower case, a shutdown of no time without a drain.
    /// </summary>
    [Fact]
    public async Task OddButValidSettingsStart()
    {
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ["Telemetry__OtlpEndpoint"] = "http://127.0.0.1:9", ["Telemetry__ServiceName"] = "",
            ["Serilog__MinimumLevel__Override__Microsoft.AspNetCore"] = "warning",
            // Keys are not case-sensitive; a model pinned is a key under Models:Pinned, not a setting of its own.
            ["batching__maxbatchsize"] = "8", ["Models__Pinned__smoke"] = "",
            // No time for the shutdown, and so no drain within it (Shutdown:DrainSeconds 0): nothing to refuse.
            ["ASPNETCORE_SHUTDOWNTIMEOUTSECONDS"] = "0",
        });
        await using (service)
        {
            Assert.True(ready, string.Join('\n', service.Output));
        }
    }

    /// <summary>Kestrel:Limits from the configuration reach the server (ASP.NET Core does not bind the section by itself).</summary>
    [Fact]
    public async Task KestrelLimitsFromTheConfigurationApply()
    {
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
            ["Kestrel__Limits__MaxRequestHeaderCount"] = "4",
        });
        await using (service)
        {
            Assert.True(ready, string.Join('\n', service.Output));
            using var few = new HttpRequestMessage(HttpMethod.Get, "/health/live");
            Assert.Equal(System.Net.HttpStatusCode.OK, (await service.Client.SendAsync(few)).StatusCode);
            using var many = new HttpRequestMessage(HttpMethod.Get, "/health/live");
            for (var i = 0; i < 6; i++) many.Headers.Add($"X-Extra-{i}", "1");
            Assert.Equal(System.Net.HttpStatusCode.RequestHeaderFieldsTooLarge, (await service.Client.SendAsync(many)).StatusCode);
        }
    }

    /// <summary>The container health check asks the address the service listens on, taken from the same sources in the same order.</summary>
    [Fact]
    public async Task TheHealthCheckAsksTheAddressTheServiceListensOn()
    {
        var (service, ready) = await ServiceProcess.StartAsync(new Dictionary<string, string>
        {
            ["Models__Root"] = bundles.NewRoot((bundles.SmokeBundle, "smoke", null)),
        });
        await using (service)
        {
            Assert.True(ready, string.Join('\n', service.Output));
            var address = service.Client.BaseAddress!.ToString().TrimEnd('/');
            // URLS wins over ASPNETCORE_URLS in the service's own start; the check must follow it.
            Assert.Equal(0, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string> { ["URLS"] = address, ["ASPNETCORE_URLS"] = "http://127.0.0.1:9" }));
            Assert.Equal(0, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string> { ["ASPNETCORE_URLS"] = "http://127.0.0.1:9" }, "--urls", address));
            Assert.Equal(1, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string> { ["URLS"] = "http://127.0.0.1:9" }));
            // HTTP_PORTS (as .NET's container images set it) is where the service listens when no URL is set: the check
            // asked the default localhost:8080 instead.
            var port = service.Client.BaseAddress!.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(0, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string> { ["HTTP_PORTS"] = port }));
            Assert.Equal(1, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string> { ["HTTP_PORTS"] = "9" }));
            // A Kestrel endpoint wins over every URL setting, in the service (Kestrel ignores them then) and in the check.
            Assert.Equal(0, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string>
            {
                ["Kestrel__Endpoints__Http__Url"] = address, ["URLS"] = "http://127.0.0.1:9",
            }));
        }
    }

    /// <summary>Addresses Kestrel listens on as written are taken; the rest are named with why.</summary>
    [Theory]
    [InlineData("http://localhost:8080", null)]
    [InlineData("http://+:80;https://*:443", null)]
    [InlineData("http://0.0.0.0:8080; http://[::]:8080", null)]
    [InlineData("http://[fe80::1%2]:8080", null)]
    [InlineData("http://127.0.0.1", null)]
    [InlineData("HTTP://127.0.0.1:0/", null)]
    [InlineData("http://unix:/run/protopnet/service.sock", null)]
    [InlineData("http://example.com:8080", "has the host 'example.com'")]
    [InlineData("http://1:8080", "has the host '1'")]
    [InlineData("http://[::1:8080", "is not a listen address")]
    [InlineData("http://127.0.0.1:", "has the port ''")]
    [InlineData("127.0.0.1:8080", "is not a listen address")]
    public void ListenAddressesAreTakenOnlyAsKestrelListensOnThem(string urls, string? problem)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["urls"] = urls }).Build();
        var problems = Hosting.ListenAddressExtensions.AddressProblems(configuration);
        if (problem is null) Assert.Empty(problems);
        else Assert.Contains(problem, Assert.Single(problems));
    }

    /// <summary>A service on a Unix domain socket is asked through it (here a stand-in that answers 200, then nothing there).</summary>
    [Fact]
    public async Task TheHealthCheckAsksAServiceOnAUnixSocketThroughIt()
    {
        var path = Path.Combine(bundles.WorkDirectory, $"health-{Guid.NewGuid():N}.sock");
        using (var listener = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
        {
            listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
            listener.Listen();
            var answered = Task.Run(async () =>
            {
                using var connection = await listener.AcceptAsync();
                var request = new byte[4096];
                var read = await connection.ReceiveAsync(request);
                Assert.StartsWith("GET /health/ready HTTP/1.1", System.Text.Encoding.ASCII.GetString(request, 0, read));
                await connection.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray());
            });
            Assert.Equal(0, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string> { ["URLS"] = "http://unix:" + path }));
            await answered;
        }
        File.Delete(path);
        Assert.Equal(1, await ServiceProcess.HealthcheckAsync(new Dictionary<string, string> { ["URLS"] = "http://unix:" + path }));
    }

    /// <summary>The check asks a wildcard address on the loopback of its own family.</summary>
    [Theory]
    [InlineData("http://+:9000", "http://127.0.0.1:9000")]
    [InlineData("http://*:9000;http://localhost:9001", "http://127.0.0.1:9000")]
    [InlineData("http://0.0.0.0:9000", "http://127.0.0.1:9000")]
    [InlineData("http://[::]:9000", "http://[::1]:9000")]
    [InlineData("http://localhost:9000", "http://localhost:9000")]
    public void TheHealthCheckAsksAWildcardAddressOnTheLoopback(string urls, string asked)
    {
        Assert.Equal(asked, Hosting.HealthcheckCommand.AddressToAsk(urls));
    }

    /// <summary>
    /// In a container the check runs without the service's arguments (docker run IMAGE --urls ...): it reads them from
    /// the first process's command line, whichever way the service was started.
    /// </summary>
    [Theory]
    [InlineData("/app/ProtoPNet.Service|--urls|http://+:9000", "--urls|http://+:9000")]
    [InlineData("dotnet|/app/ProtoPNet.Service.dll|--urls=http://+:9000", "--urls=http://+:9000")]
    [InlineData("/app/ProtoPNet.Service", "")]
    [InlineData("/sbin/init|--urls|http://+:9000", "")]
    public void TheServicesArgumentsAreTheOnesAfterItsProgram(string commandLine, string arguments)
    {
        Assert.Equal(arguments.Split('|', StringSplitOptions.RemoveEmptyEntries),
            Hosting.HealthcheckCommand.ServiceArguments(commandLine.Split('|')));
    }
}
