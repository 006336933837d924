using System.Collections.Concurrent;
using System.Diagnostics;

namespace ProtoPNet.Tests.Shared;

/// <summary>
/// A real training worker process (<c>python3 -m protopnet_trainer worker</c>) on a jobs folder, with its output kept line
/// by line. Short heartbeats and polls keep the tests quick; disposing sends SIGTERM, as a container stop does.
/// </summary>
public sealed class TrainingWorker : IDisposable
{
    private const string Python = "/usr/bin/python3";

    private readonly Process _process;

    public ConcurrentQueue<string> Lines { get; } = new();

    private TrainingWorker(Process process)
    {
        _process = process;
    }

    /// <summary>
    /// Starts a worker; <paramref name="staleAfterSeconds"/> is how long a running job's lease may go without a heartbeat
    /// before this worker takes it over. Long unless a test is about takeovers: a heartbeat writes (and fsyncs) the job's
    /// status, which a disk busy with the container builds beside the tests can hold up for seconds, and a takeover then
    /// would be one the test did not ask for.
    /// </summary>
    public static TrainingWorker Start(string jobs, string models, string? dataRoot = null, double staleAfterSeconds = 60)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[]
                 {
                     "-m", "protopnet_trainer", "worker", "--jobs", jobs, "--models", models, "--poll", "0.2", "--heartbeat", "0.5",
                     "--stale-after", staleAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--no-progress",
                 })
        {
            start.ArgumentList.Add(argument);
        }
        if (dataRoot is not null)
        {
            start.ArgumentList.Add("--data-root");
            start.ArgumentList.Add(dataRoot);
        }
        start.Environment["PYTHONPATH"] = Path.Combine(Trainer.RepositoryRoot, "src", "trainer");
        start.Environment["OMP_NUM_THREADS"] = "1";   // the machine is shared: one thread per worker
        var worker = new TrainingWorker(Process.Start(start)!);
        worker._process.OutputDataReceived += (_, e) => { if (e.Data is not null) worker.Lines.Enqueue(e.Data); };
        worker._process.ErrorDataReceived += (_, e) => { if (e.Data is not null) worker.Lines.Enqueue(e.Data); };
        worker._process.BeginOutputReadLine();
        worker._process.BeginErrorReadLine();
        return worker;
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string Output => string.Join('\n', Lines);

    /// <summary>SIGTERM: the worker stops its job at the next batch, puts it back in the queue and exits.</summary>
    public void Terminate()
    {
        if (_process.HasExited) return;
        using var kill = Process.Start("/bin/kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>SIGKILL: the worker dies on the spot, as in a crash or an out-of-memory kill.</summary>
    public void KillHard()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>
    /// Whether the worker exited within <paramref name="timeout"/>; if so, once its last output lines are in
    /// <see cref="Output"/> (a timed wait returns before the redirected streams are read to their end; the untimed one does not).
    /// </summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return false;
        _process.WaitForExit();
        return true;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Terminate();
            if (!_process.WaitForExit(TimeSpan.FromSeconds(20))) KillHard();
        }
        _process.Dispose();
    }
}
