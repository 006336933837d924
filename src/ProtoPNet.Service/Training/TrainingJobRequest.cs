using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Training;

/// <summary>
/// The body of POST /training/jobs. <c>options</c> holds the trainer's options by their long names in camelCase
/// (<c>--lr-add-on</c> is <c>lrAddOn</c>), see GET /training/options.
/// </summary>
/// <param name="Name">The model name the bundle is published under (a folder name: ASCII letters, digits, '.', '_', '-').</param>
/// <param name="Preset">The trainer's preset, e.g. <c>smoke</c> or <c>fashion-mnist</c>.</param>
/// <param name="Dataset">Optional: another data set than the preset's (fashion-mnist, cub200, imagefolder, synthetic, synthetic-parts).</param>
/// <param name="Data">Optional: the data set's folder, relative to Training:DataRoot.</param>
/// <param name="Options">Optional: trainer options, e.g. <c>{"epochs": 4}</c>.</param>
public sealed record TrainingJobRequest(string Name, string Preset, string? Dataset, string? Data, IReadOnlyDictionary<string, JsonElement>? Options);

/// <summary>A checked job request, as job.json stores it.</summary>
public sealed record JobSpec(string Name, string Preset, string? Dataset, string? Data, JsonObject Options);

/// <summary>
/// Checks a job request field by field against the trainer's catalogue, so that the worker never gets a job it would
/// refuse: each refusal is a 400 invalid-training-job naming the field (also as the problem's <c>field</c> member).
/// </summary>
public static partial class TrainingJobValidator
{
    private static readonly string[] Fields = ["name", "preset", "dataset", "data", "options"];

    /// <summary>
    /// Refuses a body with a name or string that is not text: a lone surrogate escape (<c>"\ud800"</c>) or bytes that
    /// are not UTF-8. The parser leaves strings undecoded, so they would otherwise fail where a field is first read.
    /// </summary>
    public static void RefuseInvalidText(JsonElement element, string path = "body")
    {
        try
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.String:
                    element.GetString();
                    break;
                case JsonValueKind.Object:
                    foreach (var property in element.EnumerateObject())
                    {
                        var name = property.Name;
                        RefuseInvalidText(property.Value, path == "body" ? name : $"{path}.{name}");
                    }
                    break;
                case JsonValueKind.Array:
                    var index = 0;
                    foreach (var item in element.EnumerateArray()) RefuseInvalidText(item, $"{path}[{index++}]");
                    break;
            }
        }
        catch (InvalidOperationException error)
        {
            throw InvalidText(path, error);
        }
    }

    public static ProblemException InvalidText(string field, InvalidOperationException error) =>
        Invalid(field, $"holds a name or string that is not valid text ({error.Message.TrimEnd('.')}): write it as UTF-8, with escapes of whole characters");

    public static JobSpec Validate(JsonElement body, TrainerCatalog catalog, string? dataRoot)
    {
        if (body.ValueKind != JsonValueKind.Object) throw Invalid("body", "must be a JSON object with name, preset and optional dataset, data and options");
        var fields = FieldsOf(body);
        var name = RequiredString(fields, "name");
        if (!ModelName().IsMatch(name) || name.Contains("..", StringComparison.Ordinal))
        {
            throw Invalid("name", $"'{RequestText.Shown(name)}' is not a valid model name (ASCII letters, digits, '.', '_' and '-', starting with a letter, digit or '_', no '..', at most 128 characters)");
        }
        var preset = RequiredString(fields, "preset");
        if (catalog.Presets.All(p => p.Name != preset))
        {
            throw Invalid("preset", $"'{RequestText.Shown(preset)}' is not a preset of the trainer ({string.Join(", ", catalog.Presets.Select(p => p.Name))})");
        }
        var dataset = OptionalString(fields, "dataset");
        if (dataset is not null && !catalog.Datasets.Contains(dataset))
        {
            throw Invalid("dataset", $"'{RequestText.Shown(dataset)}' is not a data set of the trainer ({string.Join(", ", catalog.Datasets)})");
        }
        var data = OptionalString(fields, "data");
        var readFrom = dataset ?? catalog.Presets.First(p => p.Name == preset).Dataset;
        if (data is null && catalog.FolderDatasets.Contains(readFrom))
        {
            // The worker would take it and fail it at once, with the trainer's words for the command line ("--data").
            throw Invalid("data", $"the data set '{readFrom}' reads a folder that has no default: name it in data, relative to Training:DataRoot");
        }
        if (data is not null)
        {
            if (string.IsNullOrWhiteSpace(dataRoot)) throw Invalid("data", "Training:DataRoot is not configured, so a job cannot name a data folder");
            var (relative, error) = DataRoot.Resolve(dataRoot, data);
            data = relative ?? throw Invalid("data", error!);
            if (catalog.GeneratedDatasets.Contains(readFrom))
            {
                throw Invalid("data", $"the data set '{readFrom}' is drawn by the trainer and reads no folder: leave data out, or choose a data set that reads one ({string.Join(", ", catalog.Datasets.Except(catalog.GeneratedDatasets))}){DatasetOf(dataRoot, data)}");
            }
        }
        return new JobSpec(name, preset, dataset, data, Options(fields, catalog));
    }

    /// <summary>
    /// The body's fields by their names here, matched ignoring case as everywhere in this API (<c>NAME</c> is
    /// <c>name</c>); one given twice in two spellings is refused, as one given twice in one is by the parser.
    /// </summary>
    private static Dictionary<string, JsonElement> FieldsOf(JsonElement body)
    {
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        var spelled = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in body.EnumerateObject())
        {
            var field = Array.Find(Fields, f => f.Equals(property.Name, StringComparison.OrdinalIgnoreCase))
                ?? throw Invalid(RequestText.Shown(property.Name), $"is not a field of a training job (use {string.Join(", ", Fields)}; trainer options go into options)");
            RefuseASecondSpelling(spelled, field, property.Name, "body", "field");
            fields[field] = property.Value;
        }
        return fields;
    }

    /// <summary>Refuses a name given a second time in another spelling (<paramref name="spelled"/>: each name's first), which the parser's duplicate check cannot see.</summary>
    private static void RefuseASecondSpelling(Dictionary<string, string> spelled, string name, string spelling, string field, string what)
    {
        if (!spelled.TryAdd(name, spelling))
        {
            throw Invalid(field, $"gives the {what} {RequestText.Shown(name)} twice, as '{RequestText.Shown(spelled[name])}' and '{RequestText.Shown(spelling)}' (names are matched ignoring case)");
        }
    }

    /// <summary>
    /// The data set a folder is laid out for (as <c>GET /training/data</c> tells them apart), said where a job names the
    /// folder without one (the preset's own data set is drawn).
    /// </summary>
    private static string DatasetOf(string dataRoot, string data) => DataFolders.LayoutOf(Path.Combine(dataRoot, data)) is { } dataset
        ? $"; '{RequestText.Shown(data)}' is laid out as a data set of '{dataset}': add \"dataset\": \"{dataset}\""
        : "";

    /// <summary>The options by the trainer's names (matched ignoring case), each checked against its range.</summary>
    private static JsonObject Options(Dictionary<string, JsonElement> fields, TrainerCatalog catalog)
    {
        var options = new JsonObject();
        if (!fields.TryGetValue("options", out var given) || given.ValueKind == JsonValueKind.Null) return options;
        if (given.ValueKind != JsonValueKind.Object) throw Invalid("options", "must be an object of option names and values");
        var settingGivenBy = new Dictionary<string, string>(StringComparer.Ordinal);
        var spelled = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in given.EnumerateObject())
        {
            var field = $"options.{RequestText.Shown(property.Name)}";
            var option = catalog.Option(property.Name)
                ?? throw Invalid(field, $"is not an option of the trainer ({MeantOption(catalog, property.Name)}GET /training/options lists them)");
            RefuseASecondSpelling(spelled, option.Name, property.Name, "options", "option");
            Check(option, property.Value, field);
            // A flag given false sets nothing. On a command line the last of a pair (--augment, --no-augment) wins; in
            // a job's object neither is last.
            if (property.Value.ValueKind != JsonValueKind.False && !settingGivenBy.TryAdd(option.Setting, property.Name))
            {
                throw Invalid(field, $"contradicts options.{settingGivenBy[option.Setting]} (both set the trainer's {option.Setting}): give one of them");
            }
            options[option.Name] = JsonNode.Parse(property.Value.GetRawText());
        }
        return options;
    }

    /// <summary>
    /// The option an unknown name was likely meant as: the trainer's command-line spelling (<c>lr-add-on</c>,
    /// <c>--no-baseline</c>, <c>lr_add_on</c>) of a camelCase name, else the nearest name within two edits
    /// (<c>epoch</c>); empty when none is near. The name is only suggested, never taken.
    /// </summary>
    private static string MeantOption(TrainerCatalog catalog, string name)
    {
        var bare = name.TrimStart('-').Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal);
        var meant = (bare.Length > 0 && bare != name ? catalog.Option(bare)?.Name : null)
            ?? NearestName.Of(name, catalog.Options.Select(o => o.Name));
        return meant is null ? "" : $"did you mean '{meant}'? ";
    }

    private static void Check(TrainerOption option, JsonElement value, string field)
    {
        switch (option.Type)
        {
            case "boolean":
                if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw Invalid(field, $"must be true or false, not {RequestText.Shown(value.GetRawText())}");
                return;
            case "integers":
                if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0 || value.GetArrayLength() > (option.MaxItems ?? 0))
                {
                    throw Invalid(field, $"must be a list of 1 to {option.MaxItems} integers");
                }
                foreach (var item in value.EnumerateArray()) CheckNumber(option, item, field, integer: true);
                return;
            case "string":
                if (value.ValueKind != JsonValueKind.String) throw Invalid(field, $"must be a string, not {RequestText.Shown(value.GetRawText())}");
                break;
            default:
                CheckNumber(option, value, field, integer: option.Type == "integer");
                break;
        }
        if (option.Choices is { } choices && !choices.Any(choice => JsonElement.DeepEquals(choice, value) || SameNumber(choice, value)))
        {
            throw Invalid(field, $"{RequestText.Shown(value.GetRawText())} is not one of {string.Join(", ", choices.Select(c => c.ValueKind == JsonValueKind.String ? c.GetString() : c.GetRawText()))}");
        }
    }

    private static bool SameNumber(JsonElement a, JsonElement b) =>
        a.ValueKind == JsonValueKind.Number && b.ValueKind == JsonValueKind.Number && a.GetDouble() == b.GetDouble();

    private static void CheckNumber(TrainerOption option, JsonElement value, string field, bool integer)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || !double.IsFinite(number))
        {
            throw Invalid(field, $"must be {(integer ? "an integer" : "a number")}, not {RequestText.Shown(value.GetRawText())}");
        }
        if (integer && Math.Floor(number) != number) throw Invalid(field, $"must be an integer, not {RequestText.Shown(value.GetRawText())}");
        if (number < option.Minimum) throw Invalid(field, $"{RequestText.Shown(value.GetRawText())} is below the minimum {Format(option.Minimum.Value)}");
        if (number > option.Maximum) throw Invalid(field, $"{RequestText.Shown(value.GetRawText())} is above the maximum {Format(option.Maximum.Value)}");
    }

    private static string Format(double value) => value.ToString(CultureInfo.InvariantCulture);

    private static string RequiredString(Dictionary<string, JsonElement> fields, string field) =>
        OptionalString(fields, field) ?? throw Invalid(field, "is required");

    private static string? OptionalString(Dictionary<string, JsonElement> fields, string field)
    {
        if (!fields.TryGetValue(field, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Invalid(field, $"must be a string, not {RequestText.Shown(value.GetRawText())}");
    }

    public static ProblemException Invalid(string field, string message) =>
        new(ProblemCatalog.InvalidTrainingJob, $"{field}: {message}.", new Dictionary<string, object?> { ["field"] = field });

    /// <summary>A model name is a folder name of the model repository (the rule of every name in a path of this API).</summary>
    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\z")]
    private static partial Regex ModelName();
}
