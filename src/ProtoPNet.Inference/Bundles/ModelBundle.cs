using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Bundles;

/// <summary>A verified, warmed-up bundle: its manifest, its session and the last-layer weights as a flat K x M matrix.</summary>
public sealed class ModelBundle : IDisposable
{
    internal ModelBundle(string directory, BundleManifest manifest, BundleSession session, float[] weights,
        DateTimeOffset loadedUtc, double loadMilliseconds)
    {
        Directory = directory;
        Manifest = manifest;
        Session = session;
        Weights = weights;
        LoadedUtc = loadedUtc;
        LoadMilliseconds = loadMilliseconds;
        ClassNames = manifest.Classes.OrderBy(c => c.Index).Select(c => c.Name).ToArray();
    }

    public string Directory { get; }
    public BundleManifest Manifest { get; }
    public BundleSession Session { get; private set; }
    public string Name => Manifest.Name;
    public string Version => Manifest.Version;
    public int ClassCount => Session.ClassCount;
    public int PrototypeCount => Session.PrototypeCount;
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Last-layer weights, row-major K x M: <c>Weights[k * M + j]</c> links prototype j to class k.</summary>
    public float[] Weights { get; }

    public DateTimeOffset LoadedUtc { get; }
    public double LoadMilliseconds { get; }

    /// <summary>When model.json was last written, as the load found it: a later time means the folder was rewritten.</summary>
    public DateTime ManifestWrittenUtc { get; init; }

    /// <summary>The graph file's write time and length, as the load found them: any other means the graph on disk changed.</summary>
    public GraphStamp? GraphStamp { get; init; }
    public ProviderChoice Provider => Session.Provider;

    /// <summary>
    /// Full path of a file inside the bundle that can be served (a picture, an example), or null when there is none:
    /// when the relative path would leave the bundle folder, one of its parts is a link (a link may lead anywhere: a
    /// picture linked to /etc/passwd was served), or the file is missing, empty or not a regular file (a FIFO would
    /// block its reader), or cannot be read.
    /// </summary>
    public string? ResolveFile(string relativePath)
    {
        if (relativePath.Contains('\0')) return null;   // no file has one in its name, and Path.GetFullPath throws on it
        var root = Path.GetFullPath(Directory);
        var full = Path.GetFullPath(Path.Combine(root, relativePath));
        if (!full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal)) return null;
        try
        {
            var part = root;
            foreach (var segment in full[(root.Length + 1)..].Split(Path.DirectorySeparatorChar))
            {
                part = Path.Combine(part, segment);
                if (new FileInfo(part).LinkTarget is not null) return null;
            }
            if (new FileInfo(full) is not { Exists: true, Length: > 0 }) return null;
            File.OpenHandle(full, FileMode.Open, FileAccess.Read).Dispose();
            return full;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// A second session of the same graph for single images, or null: on the CPU one whose runs use more threads, for
    /// a request that runs while no other does (the execution strategy measured it faster for one image than
    /// <see cref="Session"/>); on CUDA the one whose batch size is 1, beside a <see cref="Session"/> that runs only full
    /// batches (<see cref="BundleSession.FixedBatchSize"/>).
    /// </summary>
    public BundleSession? LoneSession { get; private set; }

    /// <summary>
    /// The session to run <paramref name="images"/> images on: one image on <see cref="LoneSession"/> when the request
    /// runs <paramref name="alone"/> or that session runs single images only; everything else on <see cref="Session"/>.
    /// </summary>
    public BundleSession SessionFor(int images, bool alone) =>
        images == 1 && LoneSession is { } lone && (alone || lone.FixedBatchSize == 1) ? lone : Session;

    /// <summary>
    /// Serves the bundle with <paramref name="session"/> (another session of its graph, one the execution strategy
    /// measured leaner, see <see cref="BundleLoader.LoadSession"/>) and, for requests that run alone,
    /// <paramref name="lone"/> (null: none); disposes the session it had unless it is one of them. Only before the
    /// bundle is served.
    /// </summary>
    public void ServeWith(BundleSession session, BundleSession? lone)
    {
        var previous = Session;
        Session = session;
        LoneSession = lone;
        if (previous != session && previous != lone) previous.Dispose();
    }

    public void Dispose()
    {
        Session.Dispose();
        LoneSession?.Dispose();
    }
}

/// <summary>A graph file's last write time and length.</summary>
public readonly record struct GraphStamp(DateTime WrittenUtc, long Length);
