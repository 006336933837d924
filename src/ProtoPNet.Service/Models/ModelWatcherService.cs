using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace ProtoPNet.Service.Models;

/// <summary>
/// Hot reload: rescans the model root when a FileSystemWatcher reports a change under it (debounced, so a folder being
/// published is scanned once it has settled) and every <see cref="ModelsOptions.RescanIntervalSeconds"/> as a fallback,
/// because change notifications are unreliable on some file systems. Publishing is atomic (the trainer renames
/// <c>.staging-&lt;v&gt;</c> to <c>&lt;v&gt;</c>), and the registry ignores dot folders and folders without model.json.
/// The watcher is made anew after every periodic rescan: on Linux it can go deaf for good without an error (seen after
/// two model folders were moved out of the root in one <c>mv</c>), and a periodic rescan that finds what it missed says so.
/// </summary>
public sealed class ModelWatcherService(ModelRegistry registry, IOptions<ModelsOptions> options, SettleClock clock, ILogger<ModelWatcherService> logger)
    : BackgroundService
{
    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(300);
    /// <summary>Asks for a rescan (the periodic timer or the watcher); one waiting request is enough.</summary>
    private readonly Channel<bool> _changes = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>1 when the watcher reported a change since the last rescan began: that rescan is then not periodic,
    /// whichever request woke it (a waiting tick would otherwise swallow the watcher's).</summary>
    private int _watcherSpoke;

    private void WatcherSpoke()
    {
        Volatile.Write(ref _watcherSpoke, 1);
        _changes.Writer.TryWrite(true);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var watcher = StartWatcher();
        var interval = options.Value.RescanIntervalSeconds;
        using var timer = interval > 0 ? new PeriodicTimer(TimeSpan.FromSeconds(interval)) : null;
        var tick = timer is null ? null : TickAsync(timer, stoppingToken);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await WaitForChangeAsync(stoppingToken);
                // Let a burst of events (a folder copied file by file, then renamed) settle into one rescan.
                await Task.Delay(Debounce, stoppingToken);
                _changes.Reader.TryRead(out _);
                var periodic = Interlocked.Exchange(ref _watcherSpoke, 0) == 0;
                var result = RescanLogged(stoppingToken);
                if (!periodic || !options.Value.Watch) continue;
                if (watcher is not null && result is { } changed && changed.Loaded.Count + changed.Removed.Count + changed.Refused.Count > 0)
                {
                    logger.LogWarning("The periodic rescan of {ModelRoot} found changes the file watcher did not report (loaded {Loaded}, removed {Removed}, refused {Refused}); watching it anew",
                        registry.Root, changed.Loaded, changed.Removed, changed.Refused.Select(r => r.Directory));
                }
                var renewed = StartWatcher();
                watcher?.Dispose();
                watcher = renewed;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            watcher?.Dispose();
        }
        if (tick is not null) await tick;
    }

    /// <summary>
    /// Until a rescan is asked for. Meanwhile, once a second, whether a scan (this one's, the start's, a reload's) met a
    /// folder that did not load while being copied: it is looked at again once its files have been still.
    /// </summary>
    private async Task WaitForChangeAsync(CancellationToken stoppingToken)
    {
        while (true)
        {
            if (registry.TakeSettleDeadline() is { } settled) _ = SpeakAtAsync(settled, stoppingToken);
            using var second = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            second.CancelAfter(TimeSpan.FromSeconds(1));
            try
            {
                await _changes.Reader.ReadAsync(second.Token);
                return;
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
            }
        }
    }

    /// <summary>Asks for a rescan at <paramref name="utc"/>, as the watcher would (so it is not taken for a periodic one).</summary>
    private async Task SpeakAtAsync(DateTime utc, CancellationToken stoppingToken)
    {
        try
        {
            var wait = utc - clock.UtcNow + TimeSpan.FromMilliseconds(100);
            if (wait > TimeSpan.Zero) await Task.Delay(wait, stoppingToken);
            WatcherSpoke();
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task TickAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken)) _changes.Writer.TryWrite(true);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Whether the last try to watch failed and said so: made anew at every periodic rescan, it says so once.</summary>
    private bool _unwatchedLogged;
    private string? _lastWatchFailure;   // the reason the watcher last failed, logged once

    private FileSystemWatcher? StartWatcher()
    {
        if (!options.Value.Watch) return null;
        if (!Directory.Exists(registry.Root))
        {
            if (!_unwatchedLogged) logger.LogWarning("The model root {ModelRoot} does not exist, so it is not watched; the periodic rescan still looks for it", registry.Root);
            _unwatchedLogged = true;
            return null;
        }
        try
        {
            var watcher = new FileSystemWatcher(registry.Root)
            {
                IncludeSubdirectories = true,
                NotifyFilter = NotifyFilters.DirectoryName | NotifyFilters.FileName | NotifyFilters.LastWrite,
            };
            FileSystemEventHandler changed = (_, _) => WatcherSpoke();
            watcher.Created += changed;
            watcher.Deleted += changed;
            watcher.Changed += changed;
            watcher.Renamed += (_, _) => WatcherSpoke();
            var lostAndFound = Path.Combine(registry.Root, "lost+found");
            watcher.Error += (_, e) =>
            {
                // A file system's recovery folder at the root, closed to the service's user, is no model folder (the
                // scan passes over it too); the watcher goes on watching the rest.
                if (e.GetException() is UnauthorizedAccessException denied && denied.Message.Contains($"'{lostAndFound}'", StringComparison.Ordinal)) return;
                // Said once per reason: the watcher is made again after each periodic rescan and meets the same
                // failure (an unreadable folder under the root) every time.
                var reason = e.GetException().Message;
                if (Interlocked.Exchange(ref _lastWatchFailure, reason) != reason)
                {
                    logger.LogWarning("Watching {ModelRoot} failed ({Reason}); relying on the periodic rescan", registry.Root, reason);
                }
                WatcherSpoke();
            };
            watcher.EnableRaisingEvents = true;
            _unwatchedLogged = false;
            return watcher;
        }
        catch (Exception exception) when (exception is IOException or ArgumentException or PlatformNotSupportedException)
        {
            if (!_unwatchedLogged) logger.LogWarning("Cannot watch {ModelRoot} ({Reason}); relying on the periodic rescan", registry.Root, exception.Message);
            _unwatchedLogged = true;
            return null;
        }
    }

    /// <summary>Rescans; what changed, or null when the rescan failed (logged).</summary>
    private RescanResult? RescanLogged(CancellationToken stopping)
    {
        try
        {
            return registry.Rescan(stopping);
        }
        catch (ObjectDisposedException)
        {
            // Shutting down.
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Rescanning {ModelRoot} failed: {Reason}; the loaded models keep serving", registry.Root, exception.Message);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // A fault of the service's own: logged whole, and the watcher goes on (an exception here would stop the host).
            logger.LogError(exception, "Rescanning {ModelRoot} failed; the loaded models keep serving", registry.Root);
        }
        return null;
    }
}
