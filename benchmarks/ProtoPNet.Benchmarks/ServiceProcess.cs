using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ProtoPNet.Benchmarks;

/// <summary>The real service (the Release build of src/ProtoPNet.Service) started on a free 127.0.0.1 port for one bundle.</summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _root;

    private ServiceProcess(Process process, string url, string root)
    {
        _process = process;
        Url = url;
        _root = root;
    }

    public string Url { get; }

    /// <summary>The service process's CPU time so far (user + system, all threads).</summary>
    public TimeSpan CpuTime
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    /// <summary>The service process's resident memory now (VmRSS).</summary>
    public long ResidentBytes
    {
        get
        {
            _process.Refresh();
            return _process.WorkingSet64;
        }
    }

    /// <param name="build">The folder of another build of the service (its ProtoPNet.Service.dll); this checkout's Release build if null.</param>
    public static async Task<ServiceProcess> StartAsync(string bundleDirectory, string name, int intraOpThreads,
        IReadOnlyDictionary<string, string>? environment = null, string? build = null)
    {
        var dll = build is null ? FindServiceDll() : Path.GetFullPath(Path.Combine(build, "ProtoPNet.Service.dll"));
        if (!File.Exists(dll)) throw new FileNotFoundException("no service build there", dll);
        // A model root holding only this bundle, through a symbolic link, so the service loads nothing else.
        var root = Directory.CreateTempSubdirectory("protopnet-bench-").FullName;
        Directory.CreateDirectory(Path.Combine(root, name));
        bundleDirectory = Path.TrimEndingDirectorySeparator(bundleDirectory);
        Directory.CreateSymbolicLink(Path.Combine(root, name, Path.GetFileName(bundleDirectory)), bundleDirectory);

        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        // Started in its own folder, so its appsettings.json (what every deployment ships) applies, as in the container.
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.ArgumentList.Add(dll);
        start.Environment["ASPNETCORE_URLS"] = url;
        start.Environment["Models__Root"] = root;
        start.Environment["Models__DefaultModel"] = name;
        start.Environment["Inference__IntraOpThreads"] = intraOpThreads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start the service");
        // Drain the service's console (one log line per request) so it never blocks on a full pipe.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited) throw new InvalidOperationException($"the service exited with {process.ExitCode}");
            try
            {
                if ((await client.GetAsync("/health/ready")).StatusCode == HttpStatusCode.OK)
                {
                    Console.WriteLine($"service {dll} ready on {url}");
                    return new ServiceProcess(process, url, root);
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(200);
        }
        process.Kill(entireProcessTree: true);
        throw new TimeoutException("the service did not become ready in 120 s");
    }

    private static string FindServiceDll()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var dll = Path.Combine(directory.FullName, "src", "ProtoPNet.Service", "bin", "Release", "net10.0", "ProtoPNet.Service.dll");
            if (File.Exists(Path.Combine(directory.FullName, "ProtoPNet.Service.sln")))
            {
                return File.Exists(dll) ? dll : throw new FileNotFoundException("build the service first: dotnet build -c Release src/ProtoPNet.Service", dll);
            }
        }
        throw new DirectoryNotFoundException("ProtoPNet.Service.sln not found above the benchmark");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        Directory.Delete(_root, recursive: true);
    }
}
