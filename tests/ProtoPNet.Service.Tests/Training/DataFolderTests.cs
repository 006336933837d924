using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ProtoPNet.Service.Tests.Infrastructure;
using ProtoPNet.Service.Training;
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
        WriteFiles("cub/images/001.Albatross", "1.jpg");
        WriteFiles("cub/images/002.Auklet", "2.jpg");
        WriteFiles("cub/images/003.Blackbird", "3.jpg");
        // Hidden, leading outside the data root, or a folder already listed under another name: not listed.
        WriteFiles(".cache/train/x", "1.jpg");
        WriteFiles(".cache/test/x", "1.jpg");
        WriteFiles("../outside/train/x", "1.jpg");
        WriteFiles("../outside/test/x", "1.jpg");
        Directory.CreateSymbolicLink(Path.Combine(Data, "escape"), Path.Combine(_root.Path, "outside"));
        Directory.CreateSymbolicLink(Path.Combine(Data, "photos-link"), Path.Combine(Data, "photos"));
        Directory.CreateSymbolicLink(Path.Combine(Data, "self"), Data);
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
        Assert.Equal(["cub", "photos", "trips/birds"],
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

    /// <summary>Each folder the trainer refuses without decoding an image, with the trainer's reason (checked against the trainer's own words).</summary>
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
        WriteFiles("trainonly/train/a", "1.jpg");
        WriteFiles("trainonly/train/b", "1.jpg");
        // One class in two Unicode forms (typed on a Mac and on Linux), and one folder linked under a second class name.
        foreach (var split in new[] { "train", "test" })
        {
            WriteFiles($"unicode/{split}/caf\u00e9", "1.jpg");
            WriteFiles($"unicode/{split}/cafe\u0301", "1.jpg");
            WriteFiles($"alias/{split}/a", "1.jpg");
            Directory.CreateSymbolicLink(Path.Combine(Data, "alias", split, "b"), Path.Combine(Data, "alias", split, "a"));
            // Real images here: the trainer decodes them when it leaves out the broken ones.
            foreach (var name in new[] { "a", "b" })
            {
                Directory.CreateDirectory(Path.Combine(Data, "hollow", split, name));
                using var image = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(8, 8);
                SixLabors.ImageSharp.ImageExtensions.SaveAsPng(image, Path.Combine(Data, "hollow", split, name, "1.png"));
            }
        }
        File.WriteAllBytes(Path.Combine(Data, "hollow", "train", "a", "2.png"), []);
        File.CreateSymbolicLink(Path.Combine(Data, "hollow", "train", "b", "3.png"), Path.Combine(Data, "nowhere.png"));
        // CUB folders without their test images, without image files, or with classes numbered from 0.
        WriteCub("cubnotest", "1 1\n2 1\n", images: true);
        WriteCub("cubmissing", "1 1\n2 0\n", images: false);
        WriteCub("cubzero", "1 1\n2 0\n", images: true);
        WriteText("cubzero/classes.txt", "0 zero\n1 one\n");
        // A CUB folder whose image_class_labels.txt gives class 0 (the classes are numbered from 1).
        WriteCub("cubzerolabel", "1 1\n2 0\n", images: true);
        WriteText("cubzerolabel/image_class_labels.txt", "1 1\n2 0\n");
        // CUB folders whose images.txt names an image outside images/, which exists: absolute, and up a level.
        WriteFiles("../outside", "secret.jpg");
        var secret = Path.GetFullPath(Path.Combine(Data, "..", "outside", "secret.jpg"));
        WriteCub("cubabsolute", "1 1\n2 0\n", images: true);
        WriteText("cubabsolute/images.txt", $"1 {secret}\n2 2/2.jpg\n");
        WriteCub("cubparent", "1 1\n2 0\n", images: true);
        WriteText("cubparent/images.txt", "1 1/../../../../outside/secret.jpg\n2 2/2.jpg\n");
        // An image folder where one class's only file is empty, and one file that is a loop of links.
        WriteFiles("emptyclass/train/a", "1.jpg");
        WriteFiles("emptyclass/test/a", "1.jpg");
        WriteFiles("emptyclass/test/b", "1.jpg");
        Directory.CreateDirectory(Path.Combine(Data, "emptyclass", "train", "b"));
        File.WriteAllBytes(Path.Combine(Data, "emptyclass", "train", "b", "1.jpg"), []);
        File.CreateSymbolicLink(Path.Combine(Data, "hollow", "test", "a", "loop.png"), Path.Combine(Data, "hollow", "test", "a", "loop.png"));
        await using var service = Service();
        var list = await ListAsync(AdminClient(service));
        string? Problem(string data) => Folder(list, data).GetProperty("problem").GetString();
        Assert.Equal("train/ has one class folder; a classifier needs two or more", Problem("lonely"));
        Assert.Equal("these classes have no training images: a", Problem("bare"));
        Assert.Equal("test/ holds no images", Problem("untested"));
        Assert.Equal("test/ is missing (a folder per class, as in train/)", Problem("trainonly"));
        Assert.Contains("have the same name written in two Unicode forms", Problem("unicode"));
        Assert.Equal("train/: the class folders 'a' and 'b' are the same folder; a class needs a folder of its own", Problem("alias"));
        // Files the image check stops on: counted, and no problem, as a job that leaves them out trains.
        Assert.Equal(JsonValueKind.Null, Folder(list, "hollow").GetProperty("problem").ValueKind);
        Assert.Equal(3, Folder(list, "hollow").GetProperty("unreadableImages").GetInt32());
        Assert.Equal(0, Folder(list, "bare").GetProperty("unreadableImages").GetInt32());
        Assert.Equal("the test split is empty", Problem("cubnotest"));
        Assert.Equal("2 image files named in images.txt are missing from images/ (1/1.jpg, 2/2.jpg)", Problem("cubmissing"));
        Assert.Equal("classes.txt must number classes 1..K", Problem("cubzero"));
        Assert.Equal("image 2 has class 0, classes.txt has 2", Problem("cubzerolabel"));
        Assert.Equal($"images.txt names '{secret}' for image 1: a file outside images/ (a path inside images/, without '..', is expected)", Problem("cubabsolute"));
        Assert.Equal("images.txt names '1/../../../../outside/secret.jpg' for image 1: a file outside images/ (a path inside images/, without '..', is expected)", Problem("cubparent"));
        Assert.Equal("these classes have no training image that can be read (all are empty or links to nothing): b", Problem("emptyclass"));

        // The trainer refuses the same folders (its own reader and image check), and the hollow one only without
        // skipUnreadableImages.
        string Trainer(string data, bool skip = false) => Pillow.RunPython("""
            import sys
            from protopnet_trainer.config import TrainConfig
            from protopnet_trainer.datasets import load_data_source
            from protopnet_trainer.errors import TrainerError
            try:
                load_data_source(TrainConfig(dataset=sys.argv[1], data=sys.argv[2], image_size=16, skip_unreadable_images=sys.argv[3] == "skip"),
                                 log=lambda line: None)
                print("trained")
            except TrainerError as error:
                print("refused:", error)
            """, Folder(list, data).GetProperty("dataset").GetString()!, Path.Combine(Data, data), skip ? "skip" : "no").Trim();
        foreach (var data in new[] { "lonely", "bare", "untested", "trainonly", "unicode", "alias", "hollow", "cubnotest", "cubmissing", "cubzero", "emptyclass" })
        {
            Assert.StartsWith("refused:", Trainer(data));
        }
        foreach (var data in new[] { "cubabsolute", "cubparent", "cubzerolabel" })
        {
            Assert.Equal($"refused: cub200: {Problem(data)}", Trainer(data));
        }
        Assert.Equal("trained", Trainer("hollow", skip: true));
        Assert.StartsWith("refused:", Trainer("emptyclass", skip: true));
    }

    private void WriteCub(string folder, string split, bool images)
    {
        WriteText($"{folder}/classes.txt", "1 one\n2 two\n");
        WriteText($"{folder}/images.txt", "1 1/1.jpg\n2 2/2.jpg\n");
        WriteText($"{folder}/train_test_split.txt", split);
        WriteText($"{folder}/image_class_labels.txt", "1 1\n2 2\n");
        WriteText($"{folder}/bounding_boxes.txt", "1 0 0 5 5\n2 0 0 5 5\n");
        if (!images) return;
        WriteFiles($"{folder}/images/1", "1.jpg");
        WriteFiles($"{folder}/images/2", "2.jpg");
    }

    /// <summary>A CUB folder counted as the trainer reads it: file names with spaces, split rows of images not listed, an empty image.</summary>
    [Fact]
    public async Task A_cub_folder_is_counted_as_the_trainer_reads_it()
    {
        WriteText("cubreal/classes.txt", "1 001.Black footed Albatross\n2 002.Laysan Albatross\n");
        WriteText("cubreal/images.txt", "1 001.A/a one.jpg\n2 001.A/a two.jpg\n3 002.L/l one.jpg\n4 002.L/l two.jpg\n\n");
        WriteText("cubreal/train_test_split.txt", "1 1\n2 0\n3 1\n4 0\n5 1\n6 1\n7 0\n");
        WriteText("cubreal/image_class_labels.txt", "1 1\n2 1\n3 2\n4 2\n");
        WriteText("cubreal/bounding_boxes.txt", "1 0 0 5 5\n2 0 0 5.5 5\n3 1 1 4 4\n4 0 0 5 5\n");
        WriteFiles("cubreal/images/001.A", "a one.jpg", "a two.jpg");
        WriteFiles("cubreal/images/002.L", "l one.jpg");
        File.WriteAllBytes(Path.Combine(Data, "cubreal", "images", "002.L", "l two.jpg"), []);
        await using var service = Service();
        var cub = Folder(await ListAsync(AdminClient(service)), "cubreal");
        Assert.Equal((2, 2, 2, 1), (cub.GetProperty("classes").GetInt32(), cub.GetProperty("trainImages").GetInt32(),
            cub.GetProperty("testImages").GetInt32(), cub.GetProperty("unreadableImages").GetInt32()));
        Assert.Equal(JsonValueKind.Null, cub.GetProperty("problem").ValueKind);
        var trainer = Pillow.RunPython("""
            import sys
            from protopnet_trainer.datasets import load_cub200
            source = load_cub200(sys.argv[1], crop_to_box=False)
            print(len(source.classes), len(source.train), len(source.test))
            """, Path.Combine(Data, "cubreal")).Trim();
        Assert.Equal("2 2 2", trainer);
    }

    /// <summary>Folders of thousands of others beside the data sets: they are still found, and the answer says the search was cut.</summary>
    [Fact]
    public async Task Big_folders_of_something_else_do_not_hide_the_data_sets_beside_them()
    {
        for (var archive = 0; archive < 11; archive++)
        {
            for (var i = 0; i <= DataFolders.MaxSubfoldersSearched; i++) Directory.CreateDirectory(Path.Combine(Data, $"archive{archive:D2}", $"f{i:D4}"));
        }
        foreach (var data in new[] { "zz-photos", "zz-later/photos" })
        {
            WriteFiles($"{data}/train/a", "1.jpg");
            WriteFiles($"{data}/train/b", "1.jpg");
            WriteFiles($"{data}/test/a", "1.jpg");
            WriteFiles($"{data}/test/b", "1.jpg");
        }
        await using var service = Service();
        var list = await ListAsync(AdminClient(service));
        Assert.True(list.GetProperty("truncated").GetBoolean());
        foreach (var data in new[] { "photos", "zz-photos", "zz-later/photos" })
        {
            Assert.Equal(JsonValueKind.Null, Folder(list, data).GetProperty("problem").ValueKind);
        }
    }

    [Fact]
    public async Task A_data_root_that_is_gone_is_a_503_not_an_empty_list()
    {
        await using var service = Service();
        var client = AdminClient(service);
        Directory.Move(Data, Data + "-moved");
        try
        {
            var problem = await Http.ProblemAsync(await client.GetAsync("/training/data"), HttpStatusCode.ServiceUnavailable, "data-root-unavailable");
            Assert.Contains("Training:DataRoot", problem.GetProperty("detail").GetString());
        }
        finally
        {
            Directory.Move(Data + "-moved", Data);
        }
    }

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
