using ProtoPNet.Inference.Bundles;

namespace ProtoPNet.Service.Models;

/// <summary>
/// Finds the model root when <c>Models:Root</c> is not set: the <c>models/</c> folder of the repository
/// (the folder that holds ProtoPNet.Service.sln), searched upwards from the app's folder and the working
/// directory, so <c>dotnet run</c> from the repository root, from the project folder, or a published
/// folder inside the repository all find the same bundles. Otherwise the first <c>models/</c> found upwards.
/// </summary>
public static class ModelRootLocator
{
    public const string FolderName = "models";
    public const string SolutionFileName = "ProtoPNet.Service.sln";

    /// <summary>
    /// What a model root that loads nothing was likely meant as: a bundle's version folder (its own model.json) or a
    /// model's folder (version folders holding model.json), named where the repository's layout is
    /// <c>root/name/version/model.json</c>; the scan passed both over without a word (0 refused). Null otherwise.
    /// </summary>
    public static (string What, string Meant)? MisplacedRoot(string root)
    {
        try
        {
            var parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(root));
            if (parent is null) return null;
            if (File.Exists(Path.Combine(root, BundleLoader.ManifestFileName)))
            {
                var grandparent = Path.GetDirectoryName(parent);
                return grandparent is null ? null : ("a model version's folder (it holds model.json)", grandparent);
            }
            return Directory.Exists(root) && Directory.EnumerateDirectories(root).Any(child => File.Exists(Path.Combine(child, BundleLoader.ManifestFileName)))
                ? ("a model's folder (its version folders hold model.json)", parent)
                : null;
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            return null;   // a root that cannot be read is reported by the scan itself
        }
    }

    public static string Resolve(string? configuredRoot, string contentRoot)
    {
        // A relative setting is relative to the working directory, as a path typed in a shell would be.
        if (!string.IsNullOrWhiteSpace(configuredRoot)) return Path.GetFullPath(configuredRoot);

        string[] starts = [AppContext.BaseDirectory, Directory.GetCurrentDirectory(), contentRoot];
        foreach (var start in starts)
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                var models = Path.Combine(directory.FullName, FolderName);
                if (File.Exists(Path.Combine(directory.FullName, SolutionFileName)) && Directory.Exists(models)) return models;
            }
        }
        foreach (var start in starts)
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                var models = Path.Combine(directory.FullName, FolderName);
                if (Directory.Exists(models)) return models;
            }
        }
        return Path.Combine(Directory.GetCurrentDirectory(), FolderName);
    }
}
