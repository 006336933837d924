namespace ProtoPNet.Inference.Bundles;

/// <summary>A bundle failed a load check; the message is one line naming the check and the numbers.</summary>
public sealed class BundleRefusedException(string directory, string reason, Exception? inner = null)
    : Exception($"refused bundle {directory}: {reason}", inner)
{
    public string Directory { get; } = directory;
    public string Reason { get; } = reason;
}
