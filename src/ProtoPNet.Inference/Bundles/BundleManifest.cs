using System.Text.Json;
using System.Text.Json.Serialization;

namespace ProtoPNet.Inference.Bundles;

/// <summary>The bundle's model.json (MODEL_BUNDLE.md). Fields this service does not use are kept out.</summary>
public sealed record BundleManifest
{
    public required string Format { get; init; }
    public required int FormatVersion { get; init; }
    public required string Name { get; init; }
    public required string Version { get; init; }
    public string? CreatedUtc { get; init; }
    public required OnnxSection Onnx { get; init; }
    public required InputSection Input { get; init; }
    public required IReadOnlyList<ClassEntry> Classes { get; init; }
    public required FeatureMapSection FeatureMap { get; init; }
    public SimilaritySection? Similarity { get; init; }
    public required IReadOnlyList<PrototypeEntry> Prototypes { get; init; }
    public required LastLayerSection LastLayer { get; init; }
    public required ProbeSection Probe { get; init; }
    /// <summary>Kept as raw JSON: shown in /models as the trainer wrote it.</summary>
    public JsonElement? Training { get; init; }
    /// <summary>Optional (additive): a few test images stored in the bundle for people to try, e.g. on the web page.</summary>
    public IReadOnlyList<ExampleEntry>? Examples { get; init; }
    /// <summary>Optional (additive): the threshold above which an image counts as unfamiliar, calibrated by the trainer.</summary>
    public UnfamiliaritySection? Unfamiliarity { get; init; }
    /// <summary>The scorecard as model.json has it; read into <see cref="Interpretability"/> by <see cref="Parse"/>.</summary>
    [JsonPropertyName("interpretability")]
    public JsonElement? InterpretabilityJson { get; init; }

    /// <summary>
    /// Optional (informational): the trainer's scorecard of the explanations (<see cref="InterpretabilitySection"/>);
    /// null without one, or when it cannot be read (<see cref="InterpretabilityProblem"/> says why).
    /// </summary>
    [JsonIgnore]
    public InterpretabilitySection? Interpretability { get; init; }

    /// <summary>Why the scorecard was left out; the bundle serves without it, as it is informational.</summary>
    [JsonIgnore]
    public string? InterpretabilityProblem { get; init; }

    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        // Numbers are JSON numbers within a double's range: not "NaN" or "Infinity" in a string, nor 1e400 (read as
        // infinity). The service's answers repeat the manifest's scorecard and calibration, and could not be written
        // with one; a probe value of NaN would compare as "no mismatch" with anything.
        NumberHandling = JsonNumberHandling.Strict,
        Converters = { new FiniteDoubleConverter() },
        // A null where the manifest needs a value ("input": null) is a bad manifest, not a null reference later.
        RespectNullableAnnotations = true,
    };

    /// <summary>Reads model.json; a JsonException names what is malformed, a null in a list included.</summary>
    public static BundleManifest Parse(string json)
    {
        BundleManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<BundleManifest>(json, JsonOptions) ?? throw new JsonException("model.json is empty");
        }
        catch (JsonException)
        {
            RequireMembers(json);   // a missing member is named; any other fault keeps the deserializer's message
            throw;
        }
        // The deserializer checks a property's nullability but not a list element's.
        RequireNoNulls(manifest.Classes, "classes");
        RequireNoNulls(manifest.Prototypes, "prototypes");
        RequireNoNulls(manifest.LastLayer.Weights, "lastLayer.weights");
        if (manifest.Examples is { } examples) RequireNoNulls(examples, "examples");
        var (interpretability, problem) = ReadInterpretability(manifest.InterpretabilityJson, manifest.Prototypes.Count);
        return manifest with { Interpretability = interpretability, InterpretabilityProblem = problem };
    }

    /// <summary>
    /// The informational scorecard, or why it is left out: a value of another type, a prototype entry that is null or
    /// names no prototype of this model, or one named twice. A scorecard that does not fit the model would badge the
    /// wrong prototypes; it must not refuse a bundle whose network is fine.
    /// </summary>
    private static (InterpretabilitySection? Section, string? Problem) ReadInterpretability(JsonElement? json, int prototypeCount)
    {
        if (json is not { ValueKind: not JsonValueKind.Null } element) return (null, null);
        InterpretabilitySection? section;
        try
        {
            section = element.Deserialize<InterpretabilitySection>(JsonOptions);
        }
        catch (JsonException exception)
        {
            return (null, exception is NonFiniteNumberException
                ? $"interpretability{exception.Path?.TrimStart('$')} holds {exception.Message}"
                : $"interpretability{exception.Path?.TrimStart('$')} holds a value of another type than a scorecard's");
        }
        var seen = new HashSet<int>();
        for (var i = 0; i < (section?.Prototypes?.Count ?? 0); i++)
        {
            var entry = section!.Prototypes![i];
            if (entry is null) return (null, $"interpretability.prototypes[{i}] is null");
            if (entry.Index < 0 || entry.Index >= prototypeCount)
            {
                return (null, $"interpretability.prototypes[{i}] is for prototype {entry.Index}, which this model (of {prototypeCount} prototypes) does not have");
            }
            if (!seen.Add(entry.Index)) return (null, $"interpretability.prototypes names prototype {entry.Index} twice");
        }
        return (section, null);
    }

    /// <summary>The manifest's required members by their JSON names.</summary>
    private static readonly string[] RequiredMembers = typeof(BundleManifest).GetProperties()
        .Where(p => p.IsDefined(typeof(System.Runtime.CompilerServices.RequiredMemberAttribute), inherit: false))
        .Select(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name)).ToArray();

    /// <summary>Names the first required member the manifest lacks (the deserializer's own message is about the type).</summary>
    private static void RequireMembers(string json)
    {
        using var document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException("it is not a JSON object.");
        var present = document.RootElement.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        if (RequiredMembers.FirstOrDefault(name => !present.Contains(name)) is { } missing) throw new JsonException($"it has no '{missing}'.");
    }

    private static void RequireNoNulls<T>(IReadOnlyList<T> items, string path)
    {
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i] is null) throw new JsonException($"{path}[{i}] is null.");
        }
    }
}

public sealed record OnnxSection
{
    public required string File { get; init; }
    public required string Sha256 { get; init; }
    public int? Opset { get; init; }
}

public sealed record InputSection
{
    public required int Channels { get; init; }
    public required int Height { get; init; }
    public required int Width { get; init; }
    /// <summary>"rgb" or "gray" ("grey" accepted too).</summary>
    public required string ColorSpace { get; init; }
    public string Resize { get; init; } = "stretch";
    /// <summary>The interpolation the trainer resized with; bilinear when absent.</summary>
    public string? Interpolation { get; init; }
    /// <summary>"auto": <see cref="ContrastNormalizer"/> after resizing; "none" (or absent): nothing.</summary>
    public string? Contrast { get; init; }
    /// <summary>
    /// Whether JPEGs are decoded at a reduced DCT scale, as the trainer decoded its images (<c>ImageDecoder.JpegDraftScale</c>);
    /// absent: in full.
    /// </summary>
    public bool JpegDraft { get; init; }
    public IReadOnlyList<double>? Mean { get; init; }
    public IReadOnlyList<double>? Std { get; init; }
}

public sealed record ClassEntry
{
    public required int Index { get; init; }
    public required string Name { get; init; }
}

public sealed record FeatureMapSection
{
    public required int Height { get; init; }
    public required int Width { get; init; }
}

public sealed record SimilaritySection
{
    public string? Function { get; init; }
    public double? Epsilon { get; init; }
}

public sealed record PrototypeEntry
{
    public required int Index { get; init; }
    public required int ClassIndex { get; init; }
    public PrototypeSource? Source { get; init; }
    public PrototypeImages? Images { get; init; }
}

public sealed record PrototypeSource
{
    public string? Split { get; init; }
    public string? Item { get; init; }
    public FeatureCell? FeatureCell { get; init; }
    public PixelBox? Box { get; init; }
}

public sealed record PrototypeImages
{
    public string? Patch { get; init; }
    public string? Source { get; init; }
    public string? Activation { get; init; }
}

/// <summary>An example image stored in the bundle: its path relative to the bundle folder and its true class.</summary>
public sealed record ExampleEntry
{
    public required string File { get; init; }
    public int? ClassIndex { get; init; }
}

public sealed record FeatureCell(int Row, int Column);

/// <summary>A rectangle in pixels, origin top-left, inclusive of Width x Height pixels.</summary>
public sealed record PixelBox(int X, int Y, int Width, int Height);

public sealed record LastLayerSection
{
    /// <summary>K x M: one row per class, one column per prototype.</summary>
    public required IReadOnlyList<IReadOnlyList<double>> Weights { get; init; }
}

public sealed record ProbeSection
{
    public required string Input { get; init; }
    public required IReadOnlyList<double> Logits { get; init; }
    public required IReadOnlyList<double> Similarities { get; init; }
}

/// <summary>
/// The unfamiliarity calibration: an image whose <see cref="Measure"/> score is above <see cref="Threshold"/> is flagged
/// unfamiliar. The trainer chose the threshold so that <see cref="TargetShare"/> of the held-out training images in
/// <see cref="Calibration"/> are flagged.
/// </summary>
public sealed record UnfamiliaritySection
{
    /// <summary>Minus the highest similarity of any prototype to any cell of the image (the only measure so far).</summary>
    public const string NegativeMaxSimilarity = "negative-max-similarity";

    public required string Measure { get; init; }
    public required double Threshold { get; init; }
    public double? TargetShare { get; init; }
    public UnfamiliarityCalibration? Calibration { get; init; }

    public static bool IsKnownMeasure(string? measure) => measure == NegativeMaxSimilarity;
}

/// <summary>The images the threshold was calibrated on: which split, how many, and the share of them it flags.</summary>
public sealed record UnfamiliarityCalibration
{
    public string? Split { get; init; }
    public int? Size { get; init; }
    public double? FlaggedShare { get; init; }
}

/// <summary>A number of the manifest beyond a double's range (1e400), which would be read as infinity.</summary>
internal sealed class NonFiniteNumberException(string message) : JsonException(message);

/// <summary>Reads the manifest's numbers as System.Text.Json does, refusing those beyond a double's range.</summary>
internal sealed class FiniteDoubleConverter : JsonConverter<double>
{
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        // A string ("NaN") or anything else: System.Text.Json then reports "could not be converted", with the path.
        if (reader.TokenType != JsonTokenType.Number) throw new JsonException();
        var value = reader.GetDouble();
        return double.IsFinite(value) ? value : throw new NonFiniteNumberException("a number beyond a double's range");
    }

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
}
