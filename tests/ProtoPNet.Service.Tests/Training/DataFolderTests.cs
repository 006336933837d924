using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Training;

/// <summary>
/// GET /training/data: the folders under Training:DataRoot a job can train on, found and counted as the trainer reads them,
/// against the real service and the real trainer's image-folder reader.
/// </summary>
public sealed class DataFolderTests : IDisposable
{
    private const string Key = "data-folder-tests-admin-key";

    private readonly TemporaryDirectory _root = new("protopnet-data-folders-");

    private string Data => Path.Combine(_root.Path, "data");

    public DataFolderTests()
    {
        Directory.CreateDirectory(Path.Combine(_root.Path, "models"));
        // photos: what users' folders hold beside the images (hidden files, a Mac's zip folder, notes, a subfolder).
        WriteFiles("photos/train/cat", "a.jpg", "b.JPEG", "c.png", "._a.jpg", "notes.txt");
        WriteFiles("photos/train/cat/more", "d.jpg");
        WriteFiles("photos/train/dog", "a.webp", "b.tiff", "c.Gif", "d.bmp");
        WriteFiles("photos/train/__MACOSX/cat", "._a.jpg");
        WriteFiles("photos/train/.thumbnails", "x.jpg");
        WriteFiles("photos/train", "readme.txt");
        WriteFiles("photos/test/cat", "e.jpg");
        WriteFiles("photos/test/dog", "e.png", ".DS_Store");
        // Two levels down, with a class the test split lacks.
        WriteFiles("trips/birds/train/gull", "1.jpg");
        WriteFiles("trips/birds/train/tern", "1.jpg");
        WriteFiles("trips/birds/test/gull", "2.jpg");
        // Three levels down: not looked for.
        WriteFiles("a/b/c/train/x", "1.jpg");
        WriteFiles("a/b/c/test/x", "1.jpg");
        // A CUB-200-2011 folder: three classes, images 1 and 3 for training, 2 for testing.
        WriteText("cub/classes.txt", "1 001.Albatross\n2 002.Auklet\n3 003.Blackbird\n");
        WriteText("cub/images.txt", "1 001.Albatross/1.jpg\n2 002.Auklet/2.jpg\n3 003.Blackbird/3.jpg\n");
        WriteText("cub/train_test_split.txt", "1 1\n2 0\n3 1\n");
        WriteText("cub/image_class_labels.txt", "1 1\n2 2\n3 3\n");
        WriteText("cub/bounding_boxes.txt", "1 0 0 5 5\n2 0 0 5 5\n3 0 0 5 5\n");
        // Hidden, or leading outside the data root: not listed. A link inside it is, under its own name.
        WriteFiles(".cache/train/x", "1.jpg");
        WriteFiles(".cache/test/x", "1.jpg");
        WriteFiles("../outside/train/x", "1.jpg");
        WriteFiles("../outside/test/x", "1.jpg");
        Directory.CreateSymbolicLink(Path.Combine(Data, "escape"), Path.Combine(_root.Path, "outside"));
        Directory.CreateSymbolicLink(Path.Combine(Data, "photos-link"), Path.Combine(Data, "photos"));
        Directory.CreateDirectory(Path.Combine(Data, "empty"));
    }

    private void WriteFiles(string folder, params string[] names)
    {
        var path = Path.GetFullPath(Path.Combine(Data, folder));
        Directory.CreateDirectory(path);
        foreach (var name in names) File.WriteAllBytes(Path.Combine(path, name), [1, 2, 3]);
    }

    private void WriteText(string file, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(Data, file))!);
        File.WriteAllText(Path.Combine(Data, file), text);
    }

    private ServiceFactory Service(bool withDataRoot = true) => ServiceFactory.ForRoot(Path.Combine(_root.Path, "models"),
        [("Security:AdminApiKey", Key), ("Training:JobsRoot", Path.Combine(_root.Path, "jobs")), ("Training:DataRoot", withDataRoot ? Data : null)]);

    private static HttpClient AdminClient(ServiceFactory service)
    {
        var client = service.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", Key);
        return client;
    }

    private static async Task<JsonElement> ListAsync(HttpClient client) => await Http.JsonAsync(await client.GetAsync("/training/data"));

    private static JsonElement Folder(JsonElement list, string data) =>
        list.GetProperty("folders").EnumerateArray().Single(f => f.GetProperty("data").GetString() == data);

    [Fact]
    public async Task The_data_roots_image_folders_and_cub_folders_are_listed_as_the_trainer_counts_them()
    {
        await using var service = Service();
        var list = await ListAsync(AdminClient(service));

        Assert.True(list.GetProperty("configured").GetBoolean());
        Assert.False(list.GetProperty("truncated").GetBoolean());
        Assert.Equal(["cub", "photos", "photos-link", "trips/birds"],
            list.GetProperty("folders").EnumerateArray().Select(f => f.GetProperty("data").GetString()!).Order(StringComparer.Ordinal));

        var photos = Folder(list, "photos");
        Assert.Equal("imagefolder", photos.GetProperty("dataset").GetString());
        Assert.Equal(2, photos.GetProperty("classes").GetInt32());
        Assert.Equal(7, photos.GetProperty("trainImages").GetInt32());
        Assert.Equal(2, photos.GetProperty("testImages").GetInt32());
        Assert.Equal(JsonValueKind.Null, photos.GetProperty("problem").ValueKind);

        // The trainer's own reader, on the same folder, reads the same classes and images.
        var trainer = Pillow.RunPython("""
            import sys
            from protopnet_trainer.datasets import load_imagefolder
            source = load_imagefolder(sys.argv[1])
            print(len(source.train.classes), len(source.train), len(source.test))
            """, Path.Combine(Data, "photos")).Trim();
        Assert.Equal("2 7 2", trainer);

        var birds = Folder(list, "trips/birds");
        Assert.Equal(2, birds.GetProperty("classes").GetInt32());
        Assert.Contains("only in train/: tern", birds.GetProperty("problem").GetString());

        var cub = Folder(list, "cub");
        Assert.Equal("cub200", cub.GetProperty("dataset").GetString());
        Assert.Equal((3, 2, 1), (cub.GetProperty("classes").GetInt32(), cub.GetProperty("trainImages").GetInt32(), cub.GetProperty("testImages").GetInt32()));
        Assert.Equal(JsonValueKind.Null, cub.GetProperty("problem").ValueKind);
    }

    [Fact]
    public async Task A_listed_folder_is_a_job_the_service_accepts_as_listed()
    {
        await using var service = Service();
        var client = AdminClient(service);
        var photos = Folder(await ListAsync(client), "photos");
        var response = await client.PostAsJsonAsync("/training/jobs", new
        {
            name = "my-photos", preset = "smoke", dataset = photos.GetProperty("dataset").GetString(), data = photos.GetProperty("data").GetString(),
        });
        var job = await Http.JsonAsync(response, HttpStatusCode.Accepted);
        Assert.Equal("imagefolder", job.GetProperty("dataset").GetString());
        Assert.Equal("photos", job.GetProperty("data").GetString());
    }

    [Fact]
    public async Task A_folder_the_trainer_would_refuse_says_why()
    {
        WriteFiles("lonely/train/only", "1.jpg");
        WriteFiles("lonely/test/only", "1.jpg");
        WriteFiles("bare/train/a");
        WriteFiles("bare/train/b", "1.jpg");
        WriteFiles("bare/test/a", "1.jpg");
        WriteFiles("bare/test/b", "1.jpg");
        WriteFiles("untested/train/a", "1.jpg");
        WriteFiles("untested/train/b", "1.jpg");
        WriteFiles("untested/test/a", "notes.txt");
        WriteFiles("untested/test/b");
        await using var service = Service();
        var list = await ListAsync(AdminClient(service));
        Assert.Equal("train/ has one class folder; a classifier needs two or more", Folder(list, "lonely").GetProperty("problem").GetString());
        Assert.Equal("these classes have no training images: a", Folder(list, "bare").GetProperty("problem").GetString());
        Assert.Equal("test/ holds no images", Folder(list, "untested").GetProperty("problem").GetString());
    }

    [Fact]
    public async Task The_search_stops_after_its_limit_and_says_so()
    {
        for (var i = 0; i < DataFolderLimit; i++) Directory.CreateDirectory(Path.Combine(Data, "many", $"f{i:D4}"));
        await using var service = Service();
        var list = await ListAsync(AdminClient(service));
        Assert.True(list.GetProperty("truncated").GetBoolean());
    }

    private const int DataFolderLimit = ProtoPNet.Service.Training.DataFolders.MaxFoldersLooked;

    [Fact]
    public async Task Without_a_data_root_nothing_is_listed_and_it_says_why()
    {
        await using var service = Service(withDataRoot: false);
        var list = await ListAsync(AdminClient(service));
        Assert.False(list.GetProperty("configured").GetBoolean());
        Assert.Empty(list.GetProperty("folders").EnumerateArray());
    }

    public void Dispose() => _root.Dispose();
}
