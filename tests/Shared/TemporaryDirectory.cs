namespace ProtoPNet.Tests.Shared;

/// <summary>A directory of its own for a test's files, removed with them when disposed.</summary>
public sealed class TemporaryDirectory(string prefix) : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
