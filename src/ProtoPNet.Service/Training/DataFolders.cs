using System.Text;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Training;

/// <summary>
/// A folder under Training:DataRoot that a job can train on: <paramref name="Data"/> as a job names it (relative to the
/// data root), the <paramref name="Dataset"/> that reads it (<c>imagefolder</c> or <c>cub200</c>), its classes and
/// images by split as the trainer would read them, the image files among them that are empty or links to nothing
/// (<paramref name="UnreadableImages"/>: the trainer's image check stops on them unless the job has
/// <c>skipUnreadableImages</c>), and, where the trainer would refuse it whatever the job says, why (<paramref name="Problem"/>).
/// </summary>
public sealed record DataFolder(string Data, string Dataset, int Classes, int TrainImages, int TestImages, int UnreadableImages,
    string? Problem);

/// <summary>
/// GET /training/data: whether the service has a data root (<paramref name="Configured"/>), the folders found in it, and
/// whether the search stopped before it had looked everywhere it looks (<paramref name="Truncated"/>).
/// </summary>
public sealed record DataFolderList(bool Configured, IReadOnlyList<DataFolder> Folders, bool Truncated);

/// <summary>
/// Finds the folders under Training:DataRoot a job can name as <c>data</c>: an image folder (<c>train/</c>, and
/// <c>test/</c>, each with a folder per class) or a CUB-200-2011 folder (<c>images.txt</c> and <c>classes.txt</c>), in the
/// data root itself and up to <see cref="MaxDepth"/> levels below it, and counts them as the trainer reads them (its file
/// names, hidden files and folders passed over) with the trainer's checks that need no decoding. Hidden folders are not
/// searched, nor a found folder below itself, nor a symbolic link to a folder (each folder is listed under its own name,
/// and no link leads the search outside the data root or round in circles). Links inside a data set (a class folder kept
/// on another disk) are followed, as the trainer follows them: whoever fills the data root put them there.
/// </summary>
public static class DataFolders
{
    /// <summary>How deep below the data root folders are looked for (a data set's folder, or one in a folder of them).</summary>
    public const int MaxDepth = 2;

    /// <summary>
    /// The most folders looked at (a few file-system calls each: 20,000 take a fraction of a second): a data root that
    /// holds something else entirely is not searched for long.
    /// </summary>
    public const int MaxFoldersLooked = 20_000;

    /// <summary>
    /// The most subfolders of one folder searched: one big folder of something else (an archive of thousands of
    /// folders) does not use up the search before the data sets beside it are reached.
    /// </summary>
    public const int MaxSubfoldersSearched = 500;

    /// <summary>What macOS adds to a zip: not a class (the trainer passes it over too).</summary>
    private const string MacZipFolder = "__MACOSX";

    /// <summary>The folders of <paramref name="dataRoot"/> a job can train on; a root that is gone is a 503.</summary>
    public static DataFolderList Find(string? dataRoot, IReadOnlyList<string> imageExtensions)
    {
        if (string.IsNullOrWhiteSpace(dataRoot)) return new DataFolderList(false, [], false);
        var root = DataRoot.RealPath(Path.GetFullPath(dataRoot));
        if (root is null || !Directory.Exists(root))
        {
            // An empty answer would say "no data" where the data is there but not mounted (a volume gone, a path renamed).
            throw new ProblemException(ProblemCatalog.DataRootUnavailable,
                $"Training:DataRoot ({dataRoot}) is not a folder: it does not exist, or is a file; its data sets cannot be listed.");
        }

        var found = new List<DataFolder>();
        var pending = new Queue<(string Path, int Depth)>([(root, 0)]);
        var (looked, truncated) = (0, false);
        while (pending.Count > 0)
        {
            // Counted as looked at, not as found below: the folders of one level are all looked at before the next's.
            if (++looked > MaxFoldersLooked)
            {
                truncated = true;
                break;
            }
            var (folder, depth) = pending.Dequeue();
            var data = folder == root ? "." : Path.GetRelativePath(root, folder).Replace(Path.DirectorySeparatorChar, '/');
            if (Describe(folder, data, imageExtensions) is { } described)
            {
                found.Add(described);
                continue;
            }
            if (depth == MaxDepth) continue;
            var subfolders = ReadableSubfoldersOf(folder);
            truncated |= subfolders.Length > MaxSubfoldersSearched;
            // Links to folders are not followed: a folder is listed under its own name (a job may still name a link that
            // stays inside the data root), and a link to a folder above cannot lead round in circles.
            foreach (var child in subfolders.Take(MaxSubfoldersSearched).Where(child => new DirectoryInfo(child).LinkTarget is null))
            {
                pending.Enqueue((child, depth + 1));
            }
        }
        return new DataFolderList(true, found, truncated);
    }

    /// <summary>
    /// The data set a folder is laid out for: <c>imagefolder</c> when it holds <c>train/</c>, <c>cub200</c> when it holds
    /// <c>images.txt</c> and <c>classes.txt</c>, null for neither.
    /// </summary>
    public static string? LayoutOf(string folder) =>
        Directory.Exists(Path.Combine(folder, "train")) ? "imagefolder"
        : File.Exists(Path.Combine(folder, "images.txt")) && File.Exists(Path.Combine(folder, "classes.txt")) ? "cub200"
        : null;

    private static DataFolder? Describe(string folder, string data, IReadOnlyList<string> imageExtensions)
    {
        var layout = LayoutOf(folder);
        try
        {
            return layout switch
            {
                "imagefolder" => DescribeImageFolder(folder, data, imageExtensions),
                "cub200" => DescribeCub200(folder, data),
                _ => null,
            };
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            // A worker may read what this service cannot (another user, another mount): named, not hidden.
            return new DataFolder(data, layout!, 0, 0, 0, 0, $"the service cannot read it ({error.Message})");
        }
    }

    private static DataFolder DescribeImageFolder(string folder, string data, IReadOnlyList<string> imageExtensions)
    {
        var train = Split(Path.Combine(folder, "train"), imageExtensions);
        var testFolder = Path.Combine(folder, "test");
        var test = Directory.Exists(testFolder) ? Split(testFolder, imageExtensions) : null;
        var problem = SplitProblem("train", train)
            ?? (test is null ? "test/ is missing (a folder per class, as in train/)" : SplitProblem("test", test));
        if (problem is null && test is not null)
        {
            problem = ClassesDiffer(train, test) ?? (train.Classes.Count < 2 ? "train/ has one class folder; a classifier needs two or more" : null);
        }
        return new DataFolder(data, "imagefolder", train.Classes.Count, train.Images, test?.Images ?? 0,
            train.Unreadable.Count + (test?.Unreadable.Count ?? 0), problem);
    }

    /// <summary>The class folders of a split (by name, with their real paths) and its image files, as the trainer reads them.</summary>
    private sealed record SplitFolders(SortedDictionary<string, int> Classes, Dictionary<string, int> Readable,
        Dictionary<string, string> RealPaths, List<string> Unreadable)
    {
        public int Images => Classes.Values.Sum();
    }

    private static SplitFolders Split(string split, IReadOnlyList<string> imageExtensions)
    {
        var classes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var readable = new Dictionary<string, int>(StringComparer.Ordinal);
        var realPaths = new Dictionary<string, string>(StringComparer.Ordinal);
        var unreadable = new List<string>();
        foreach (var classFolder in SubfoldersOf(split).Where(f => Path.GetFileName(f) != MacZipFolder))
        {
            var name = Path.GetFileName(classFolder);
            realPaths[name] = DataRoot.RealPath(classFolder) ?? classFolder;
            var images = 0;
            foreach (var file in new DirectoryInfo(classFolder).EnumerateFiles())
            {
                var isImage = imageExtensions.Any(e => file.Name.EndsWith(e, StringComparison.OrdinalIgnoreCase));
                if (file.Name.StartsWith('.') || !isImage) continue;
                images++;
                if (Readable(file)) readable[name] = readable.GetValueOrDefault(name) + 1;
                else unreadable.Add($"{name}/{file.Name}");
            }
            classes[name] = images;
        }
        return new SplitFolders(classes, readable, realPaths, unreadable);
    }

    /// <summary>
    /// Whether the trainer's image check could read the file, as far as can be told without decoding it: not empty, not
    /// a link to nothing (or to itself). What does not decode is found by that check, when the job runs.
    /// </summary>
    private static bool Readable(FileInfo file)
    {
        try
        {
            var target = file.LinkTarget is null ? file : file.ResolveLinkTarget(returnFinalTarget: true) as FileInfo;
            return target is { Exists: true, Length: > 0 };
        }
        catch (IOException)
        {
            return false;   // a loop of links
        }
    }

    /// <summary>Why the trainer would refuse a split on its own (its checks that need no decoding), or null.</summary>
    private static string? SplitProblem(string name, SplitFolders split)
    {
        if (split.Classes.Count == 0) return $"{name}/ has no class folders";
        if (DuplicateClasses(split) is { } duplicate) return $"{name}/: {duplicate}";
        if (split.Images == 0) return $"{name}/ holds no images";
        var empty = split.Classes.Where(c => c.Value == 0).Select(c => c.Key).ToArray();
        if (name == "train" && empty.Length > 0) return $"these classes have no training images: {FirstOf(empty)}";
        // Left out, the files that cannot be read would leave a class, or the split, with nothing (the trainer stops then too).
        if (split.Readable.Values.Sum() == 0) return $"no image file of {name}/ can be read (all are empty or links to nothing)";
        var emptied = split.Classes.Keys.Where(c => split.Readable.GetValueOrDefault(c) == 0).ToArray();
        return name == "train" && emptied.Length > 0
            ? $"these classes have no training image that can be read (all are empty or links to nothing): {FirstOf(emptied)}"
            : null;
    }

    /// <summary>
    /// Two class folders that are one class, as the trainer refuses them: one name in two Unicode forms, or one folder
    /// linked under two names.
    /// </summary>
    private static string? DuplicateClasses(SplitFolders split)
    {
        var byNormalName = new Dictionary<string, string>(StringComparer.Ordinal);
        var byRealPath = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in split.Classes.Keys)
        {
            var normal = name.Normalize(NormalizationForm.FormC);
            if (!byNormalName.TryAdd(normal, name))
            {
                return $"the class folders '{byNormalName[normal]}' and '{name}' have the same name written in two Unicode forms; "
                    + "merge them into one folder";
            }
            if (!byRealPath.TryAdd(split.RealPaths[name], name))
            {
                return $"the class folders '{byRealPath[split.RealPaths[name]]}' and '{name}' are the same folder; a class needs a folder of its own";
            }
        }
        return null;
    }

    private static string? ClassesDiffer(SplitFolders train, SplitFolders test)
    {
        if (train.Classes.Keys.SequenceEqual(test.Classes.Keys)) return null;
        var onlyTrain = train.Classes.Keys.Except(test.Classes.Keys).ToArray();
        var onlyTest = test.Classes.Keys.Except(train.Classes.Keys).ToArray();
        return $"the class folders of train/ and test/ differ (only in train/: {FirstOf(onlyTrain)}; only in test/: {FirstOf(onlyTest)}; "
            + "a class without test images needs an empty folder in test/)";
    }

    /// <summary>A CUB-200-2011 folder, read as the trainer's load_cub200 reads it: its tables' checks, its splits, its files.</summary>
    private static DataFolder DescribeCub200(string folder, string data)
    {
        var tables = new Dictionary<string, Dictionary<int, string[]>>();
        var layout = new[] { ("images.txt", 1), ("image_class_labels.txt", 1), ("train_test_split.txt", 1), ("bounding_boxes.txt", 4), ("classes.txt", 1) };
        foreach (var (name, columns) in layout)
        {
            var (table, error) = ReadTable(Path.Combine(folder, name), columns);
            if (table is null) return new DataFolder(data, "cub200", 0, 0, 0, 0, $"{name}: {error}");
            tables[name] = table;
        }
        var classes = tables["classes.txt"];
        if (!classes.Keys.Order().SequenceEqual(Enumerable.Range(1, classes.Count))) return Cub("classes.txt must number classes 1..K");
        var (train, test, unreadable, missing) = (0, 0, new List<string>(), new List<string>());
        foreach (var (id, image) in tables["images.txt"].OrderBy(row => row.Key))
        {
            foreach (var other in new[] { "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt" })
            {
                if (!tables[other].ContainsKey(id)) return Cub($"image {id} has no row in {other}");
            }
            if (!int.TryParse(tables["image_class_labels.txt"][id][0], out var label)
                || !int.TryParse(tables["train_test_split.txt"][id][0], out var split)
                || !tables["bounding_boxes.txt"][id].All(v => double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out _)))
            {
                return Cub($"image {id} has a malformed label, split or box");
            }
            if (label < 1 || label > classes.Count) return Cub($"image {id} has class {label}, classes.txt has {classes.Count}");
            if (!InsideImages(image[0])) return Cub($"images.txt names '{image[0]}' for image {id}: a file outside images/ (a path inside images/, without '..', is expected)");
            var file = new FileInfo(Path.Combine(folder, "images", image[0]));
            if (!file.Exists && file.LinkTarget is null) missing.Add(image[0]);
            else if (!Readable(file)) unreadable.Add(image[0]);
            if (split == 1) train++;
            else test++;
        }
        var problem = missing.Count > 0 ? $"{missing.Count} image files named in images.txt are missing from images/ ({FirstOf(missing)})"
            : train == 0 ? "the train split is empty"
            : test == 0 ? "the test split is empty"
            : null;
        return new DataFolder(data, "cub200", classes.Count, train, test, unreadable.Count, problem);

        DataFolder Cub(string why) => new(data, "cub200", classes.Count, 0, 0, 0, why);
    }

    /// <summary>
    /// Whether an images.txt entry names a file inside images/: relative, and never up a level, as the trainer requires
    /// (the table is text, so a data set unpacked from an archive could otherwise make a job read any image on the machine).
    /// </summary>
    private static bool InsideImages(string relative) => !Path.IsPathRooted(relative) && !DataRoot.GoesUp(relative);

    /// <summary>
    /// A CUB table as the trainer's _read_table reads it: "id value..." rows, blank lines skipped; the value is the
    /// rest of the line (one column: a file name may hold spaces) or its first <paramref name="columns"/> fields.
    /// </summary>
    private static (Dictionary<int, string[]>? Table, string? Error) ReadTable(string path, int columns)
    {
        if (!File.Exists(path)) return (null, "missing");
        var table = new Dictionary<int, string[]>();
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) continue;
            if (parts.Length < columns + 1) return (null, $"line {number} has {parts.Length} fields, expected {columns + 1}");
            if (!int.TryParse(parts[0], out var id)) return (null, $"line {number} does not start with a number");
            table[id] = columns > 1 ? parts[1..(columns + 1)] : [string.Join(' ', parts[1..])];
        }
        return (table, null);
    }

    /// <summary>The folders to search in <paramref name="folder"/>: none where the service may not list it.</summary>
    private static string[] ReadableSubfoldersOf(string folder)
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
