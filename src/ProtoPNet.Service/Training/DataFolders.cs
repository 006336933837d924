namespace ProtoPNet.Service.Training;

/// <summary>
/// A folder under Training:DataRoot that a job can train on: <paramref name="Data"/> as a job names it (relative to the
/// data root), the <paramref name="Dataset"/> that reads it (<c>imagefolder</c> or <c>cub200</c>), its classes and
/// images by split as the trainer would read them, and, where the trainer would refuse it, why (<paramref name="Problem"/>).
/// </summary>
public sealed record DataFolder(string Data, string Dataset, int Classes, int TrainImages, int TestImages, string? Problem);

/// <summary>
/// GET /training/data: whether the service has a data root (<paramref name="Configured"/>), the folders found in it, and
/// whether the search stopped before it had looked everywhere it looks (<paramref name="Truncated"/>).
/// </summary>
public sealed record DataFolderList(bool Configured, IReadOnlyList<DataFolder> Folders, bool Truncated);

/// <summary>
/// Finds the folders under Training:DataRoot a job can name as <c>data</c>: an image folder (<c>train/</c> and <c>test/</c>,
/// each with a folder per class) or a CUB-200-2011 folder (<c>images.txt</c> and <c>classes.txt</c>), in the data root
/// itself and up to <see cref="MaxDepth"/> levels below it, and counts them as the trainer reads them (its file names,
/// hidden files and folders passed over). Hidden folders are not searched, a found folder not below itself, and a
/// symbolic link only where it stays inside the data root, as a job's <c>data</c> must.
/// </summary>
public static class DataFolders
{
    /// <summary>How deep below the data root folders are looked for (a data set's folder, or one in a folder of them).</summary>
    public const int MaxDepth = 2;

    /// <summary>The most folders looked at: a data root that holds something else entirely is not searched for long.</summary>
    public const int MaxFoldersLooked = 1000;

    /// <summary>What macOS adds to a zip: not a class (the trainer passes it over too).</summary>
    private const string MacZipFolder = "__MACOSX";

    public static DataFolderList Find(string? dataRoot, IReadOnlyList<string> imageExtensions)
    {
        if (string.IsNullOrWhiteSpace(dataRoot)) return new DataFolderList(false, [], false);
        var root = DataRoot.RealPath(Path.GetFullPath(dataRoot));
        if (root is null || !Directory.Exists(root)) return new DataFolderList(true, [], false);

        var found = new List<DataFolder>();
        var pending = new Queue<(string Path, int Depth)>([(root, 0)]);
        var looked = 0;
        while (pending.Count > 0)
        {
            if (++looked > MaxFoldersLooked) return new DataFolderList(true, found, true);
            var (folder, depth) = pending.Dequeue();
            var data = folder == root ? "." : Path.GetRelativePath(root, folder).Replace(Path.DirectorySeparatorChar, '/');
            if (Describe(folder, data, imageExtensions) is { } described)
            {
                found.Add(described);
                continue;
            }
            if (depth == MaxDepth) continue;
            foreach (var child in ReadableSubfoldersOf(folder))
            {
                // Where a link leads is where a job would read: only inside the data root.
                var real = DataRoot.RealPath(child);
                if (real is not null && DataRoot.IsInside(root, real)) pending.Enqueue((child, depth + 1));
            }
        }
        return new DataFolderList(true, found, false);
    }

    private static DataFolder? Describe(string folder, string data, IReadOnlyList<string> imageExtensions)
    {
        try
        {
            if (Directory.Exists(Path.Combine(folder, "train")) && Directory.Exists(Path.Combine(folder, "test")))
            {
                return DescribeImageFolder(folder, data, imageExtensions);
            }
            if (File.Exists(Path.Combine(folder, "images.txt")) && File.Exists(Path.Combine(folder, "classes.txt")))
            {
                return DescribeCub200(folder, data);
            }
            return null;
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            // A worker may read what this service cannot (another user, another mount): named, not hidden.
            return new DataFolder(data, File.Exists(Path.Combine(folder, "images.txt")) ? "cub200" : "imagefolder", 0, 0, 0,
                $"the service cannot read it ({error.Message})");
        }
    }

    private static DataFolder DescribeImageFolder(string folder, string data, IReadOnlyList<string> imageExtensions)
    {
        var train = ClassImages(Path.Combine(folder, "train"), imageExtensions);
        var test = ClassImages(Path.Combine(folder, "test"), imageExtensions);
        return new DataFolder(data, "imagefolder", train.Count, train.Values.Sum(), test.Values.Sum(), ImageFolderProblem(train, test));
    }

    /// <summary>Why the trainer would refuse the folder (its checks, in its order), or null.</summary>
    private static string? ImageFolderProblem(SortedDictionary<string, int> train, SortedDictionary<string, int> test)
    {
        if (train.Count == 0) return "train/ has no class folders";
        if (test.Count == 0) return "test/ has no class folders";
        if (train.Values.Sum() == 0) return "train/ holds no images";
        if (test.Values.Sum() == 0) return "test/ holds no images";
        var empty = train.Where(c => c.Value == 0).Select(c => c.Key).ToArray();
        if (empty.Length > 0) return $"these classes have no training images: {FirstOf(empty)}";
        if (!train.Keys.SequenceEqual(test.Keys))
        {
            var onlyTrain = train.Keys.Except(test.Keys).ToArray();
            var onlyTest = test.Keys.Except(train.Keys).ToArray();
            return $"the class folders of train/ and test/ differ (only in train/: {FirstOf(onlyTrain)}; only in test/: {FirstOf(onlyTest)}; "
                + "a class without test images needs an empty folder in test/)";
        }
        if (train.Count < 2) return "train/ has one class folder; a classifier needs two or more";
        return null;
    }

    /// <summary>The class folders of a split and the image files each holds directly, as the trainer counts them.</summary>
    private static SortedDictionary<string, int> ClassImages(string split, IReadOnlyList<string> imageExtensions)
    {
        var classes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var classFolder in SubfoldersOf(split).Where(f => Path.GetFileName(f) != MacZipFolder))
        {
            classes[Path.GetFileName(classFolder)] = Directory.EnumerateFiles(classFolder).Select(Path.GetFileName)
                .Count(name => !name!.StartsWith('.') && imageExtensions.Any(e => name.EndsWith(e, StringComparison.OrdinalIgnoreCase)));
        }
        return classes;
    }

    private static DataFolder DescribeCub200(string folder, string data)
    {
        var classes = File.ReadLines(Path.Combine(folder, "classes.txt")).Count(line => line.Trim().Length > 0);
        // train_test_split.txt: "<image id> 1" for a training image, "<image id> 0" for a test image.
        var splitFile = Path.Combine(folder, "train_test_split.txt");
        if (!File.Exists(splitFile)) return new DataFolder(data, "cub200", classes, 0, 0, "train_test_split.txt is missing");
        var flags = File.ReadLines(splitFile).Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 2).Select(parts => parts[1]).ToArray();
        var problem = File.Exists(Path.Combine(folder, "image_class_labels.txt")) && File.Exists(Path.Combine(folder, "bounding_boxes.txt"))
            ? null
            : "image_class_labels.txt or bounding_boxes.txt is missing";
        return new DataFolder(data, "cub200", classes, flags.Count(f => f == "1"), flags.Count(f => f == "0"), problem);
    }

    /// <summary>The folders to search in <paramref name="folder"/>: none where the service may not list it.</summary>
    private static IEnumerable<string> ReadableSubfoldersOf(string folder)
    {
        try
        {
            return SubfoldersOf(folder).ToArray();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The folders in <paramref name="folder"/> but hidden ones, by name.</summary>
    private static IEnumerable<string> SubfoldersOf(string folder) =>
        Directory.EnumerateDirectories(folder).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal);

    private static string FirstOf(IReadOnlyList<string> names) =>
        names.Count == 0 ? "none" : string.Join(", ", names.Take(5)) + (names.Count > 5 ? $" and {names.Count - 5} more" : "");
}
