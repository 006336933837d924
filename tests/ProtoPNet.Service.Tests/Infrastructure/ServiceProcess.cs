using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Infrastructure;

/// <summary>
/// The service as a user starts it: its own build output, a process of its own, on 127.0.0.1 at a free port, with the
/// given settings (environment variables, Section__Key); what it prints is kept. Killed when disposed.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];

    private ServiceProcess(Process process, int port)
    {
        _process = process;
        Client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public HttpClient Client { get; }

    /// <summary>The service's process id, for a signal (e.g. SIGTERM: kill -TERM).</summary>
    public int ProcessId => _process.Id;

    /// <summary>SIGTERM, as a container runtime or Kubernetes stops the service.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Until the service has printed a line holding <paramref name="text"/> (its whole output if it does not).</summary>
    public Task WaitForLineAsync(string text) =>
        Eventually.TrueAsync(() => Output.Any(line => line.Contains(text, StringComparison.Ordinal)), () => string.Join('\n', Output));

    /// <summary>The exit status once the process has ended (waiting up to <paramref name="timeout"/> for it); null if it still runs.</summary>
    public async Task<int?> ExitCodeAsync(TimeSpan timeout)
    {
        using var wait = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(wait.Token);   // also waits for the last output lines
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        return _process.ExitCode;
    }

    /// <summary>What the service has printed so far, standard output and error interleaved.</summary>
    public string[] Output
    {
        get
        {
            lock (_lines) return [.. _lines];
        }
    }

    /// <summary>The output as JSON events (Logging:Format=json): every line must parse as one object, or this throws.</summary>
    public System.Text.Json.JsonElement[] JsonEvents() =>
        [.. Output.Where(line => line.Length > 0).Select(line => System.Text.Json.JsonDocument.Parse(line).RootElement)];

    /// <summary>Runs <c>ProtoPNet.Service --healthcheck</c> (what a container runs) with these environment variables and arguments; its exit code.</summary>
    public static async Task<int> HealthcheckAsync(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var serviceDirectory = ServiceDirectory();
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = serviceDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(serviceDirectory, "ProtoPNet.Service.dll"));
        start.ArgumentList.Add("--healthcheck");
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var name in new[] { "URLS", "ASPNETCORE_URLS", "Urls", "HTTP_PORTS", "HTTPS_PORTS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS" }) start.Environment.Remove(name);
        foreach (var (key, value) in environment) start.Environment[key] = value;
        using var process = Process.Start(start)!;
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token);
        return process.ExitCode;
    }

    /// <summary>The service's build output, which is also the working directory of the processes started here.</summary>
    public static string ServiceDirectory()
    {
        var testProject = Path.Combine(Trainer.RepositoryRoot, "tests", "ProtoPNet.Service.Tests");
        var buildOutput = Path.GetRelativePath(testProject, AppContext.BaseDirectory); // bin/<configuration>/<framework>
        return Path.Combine(Trainer.RepositoryRoot, "src", "ProtoPNet.Service", buildOutput);
    }

    /// <summary>
    /// Starts the service and waits until /health/ready answers 200 (or the process ends, or 120 s pass). With
    /// <paramref name="subjectToFilePermissions"/>, a test running as root starts it without root's power to read and
    /// enter any folder (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so that a folder's permissions count
    /// for it as they do for the service's own user in its images.
    /// </summary>
    public static Task<(ServiceProcess Service, bool Ready)> StartAsync(IReadOnlyDictionary<string, string> settings, bool subjectToFilePermissions = false) =>
        StartAsync(settings, "/health/ready", subjectToFilePermissions);

    /// <summary>Starts the service and waits only until it listens (/health/live answers 200), its models perhaps still loading.</summary>
    public static Task<(ServiceProcess Service, bool Listening)> StartListeningAsync(IReadOnlyDictionary<string, string> settings) =>
        StartAsync(settings, "/health/live", subjectToFilePermissions: false);

    private static async Task<(ServiceProcess Service, bool Ready)> StartAsync(IReadOnlyDictionary<string, string> settings, string probePath,
        bool subjectToFilePermissions)
    {
        var serviceDirectory = ServiceDirectory();
        var port = FreePort();
        var asRoot = subjectToFilePermissions && geteuid() == 0;
        var start = new ProcessStartInfo(asRoot ? "setpriv" : "dotnet")
        {
            WorkingDirectory = serviceDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (asRoot)
        {
            foreach (var argument in (string[])["--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override,-dac_read_search", "dotnet"])
                start.ArgumentList.Add(argument);
        }
        start.ArgumentList.Add(Path.Combine(serviceDirectory, "ProtoPNet.Service.dll"));
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["Urls"] = $"http://127.0.0.1:{port}";
        // A broken bundle a test has just written is refused at once; BundleSettleTests cover the wait for a copy.
        start.Environment["Models__SettleSeconds"] = "0";
        foreach (var (key, value) in settings) start.Environment[key] = value;

        var service = new ServiceProcess(new Process { StartInfo = start }, port);
        service._process.OutputDataReceived += (_, e) => service.Keep(e.Data);
        service._process.ErrorDataReceived += (_, e) => service.Keep(e.Data);
        if (!service._process.Start()) throw new InvalidOperationException("dotnet did not start");
        service._process.BeginOutputReadLine();
        service._process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (DateTime.UtcNow < deadline && !service._process.HasExited)
        {
            try
            {
                using var probe = new HttpClient { BaseAddress = service.Client.BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
                if ((await probe.GetAsync(probePath)).StatusCode == HttpStatusCode.OK) return (service, true);
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Accepted and not answered within 5 s (a first request while the process starts, on a busy machine):
                // the deadline above decides, not one slow answer.
            }
            await Task.Delay(200);
        }
        return (service, false);
    }

    private void Keep(string? line)
    {
        if (line is null) return;
        lock (_lines) _lines.Add(line);
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern uint geteuid();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
