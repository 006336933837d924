using System.Reflection;
using System.Text.Json;

namespace ProtoPNet.Service.Training;

/// <summary>A preset of the trainer: a named recipe, the data set it reads, its epochs and what it is for (a line for people).</summary>
public sealed record TrainerPreset(string Name, string Dataset, int Epochs, string Summary);

/// <summary>
/// One option a job may set: its camelCase <c>name</c>, the trainer's long <c>option</c>, its <c>type</c> (integer, number,
/// string, boolean or integers), the inclusive <c>minimum</c>/<c>maximum</c> of numbers, the <c>choices</c> a value must be
/// one of, and at most <c>maxItems</c> integers for a list.
/// </summary>
public sealed record TrainerOption(string Name, string Option, string Type, double? Minimum, double? Maximum,
    IReadOnlyList<JsonElement>? Choices, int? MaxItems, string Help)
{
    /// <summary>The trainer's setting the option sets: two options may set one (<c>augment</c> and <c>noAugment</c>).</summary>
    public required string Setting { get; init; }
}

/// <summary>
/// What the trainer accepts from a job: its presets, data sets (those it draws itself read no data folder; those read from
/// a folder with no default need one), the file names an image folder's classes are read for, and options. The list is the trainer's own
/// (<c>python -m protopnet_trainer options --json</c>), committed as Training/trainer-options.json and embedded here; a
/// test keeps the file equal to the trainer's output, so the service never accepts an option the worker would refuse.
/// </summary>
public sealed record TrainerCatalog(string Format, IReadOnlyList<TrainerPreset> Presets, IReadOnlyList<string> Datasets,
    IReadOnlyList<string> GeneratedDatasets, IReadOnlyList<string> FolderDatasets, IReadOnlyList<string> ImageExtensions,
    IReadOnlyList<TrainerOption> Options)
{
    public const string ResourceName = "trainer-options.json";

    public static TrainerCatalog Load()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the embedded {ResourceName} is missing");
        return JsonSerializer.Deserialize<TrainerCatalog>(stream, new JsonSerializerOptions(JsonSerializerDefaults.Web))
            ?? throw new InvalidOperationException($"{ResourceName} is empty");
    }

    public TrainerOption? Option(string name) => Options.FirstOrDefault(o => o.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
}
