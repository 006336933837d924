using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ProtoPNet.Inference.Runtime;

namespace ProtoPNet.Inference.Bundles;

/// <summary>
/// Loads one bundle folder and runs every check of MODEL_BUNDLE.md before anything is served from it:
/// manifest consistency, sha256 of the graph, input/output names and shapes, the probe, and
/// <c>logits == W x similarities</c>. Any failure is a <see cref="BundleRefusedException"/>.
/// </summary>
public sealed class BundleLoader(SessionFactory sessionFactory)
{
    public const string ManifestFileName = "model.json";
    public const string BundleFormat = "protopnet-bundle";
    public const int SupportedFormatVersion = 1;

    /// <summary>
    /// The largest model.json read (64 MiB): a manifest of thousands of prototypes is a few megabytes; a 1 GB one ran the
    /// service out of memory at every rescan.
    /// </summary>
    public const long MaxManifestBytes = 64L << 20;

    /// <summary>Absolute and relative parts of the tolerance: |actual - expected| &lt;= 1e-3 + 1e-3 * |expected|.</summary>
    public const double Tolerance = 1e-3;

    public static bool WithinTolerance(double actual, double expected) => Math.Abs(actual - expected) <= Allowed(expected);

    /// <summary>How far a value may be from <paramref name="expected"/>: 1e-3 + 1e-3 * |expected|.</summary>
    private static double Allowed(double expected) => Tolerance + Tolerance * Math.Abs(expected);

    /// <summary>When a bundle folder's model.json was last written: what tells a rewritten (or fixed) bundle from the one seen before.</summary>
    public static DateTime ManifestWrittenUtc(string directory) => File.GetLastWriteTimeUtc(Path.Combine(directory, ManifestFileName));

    /// <summary>
    /// When a bundle's graph file was last written, and its length; null when it is gone. A change since the load
    /// means the graph on disk is no longer the one served (replaced, cut short, deleted), though model.json is unchanged.
    /// </summary>
    public static GraphStamp? GraphStampOf(string graphPath)
    {
        var file = new FileInfo(graphPath);
        return file.Exists ? new GraphStamp(file.LastWriteTimeUtc, file.Length) : null;
    }

    public ModelBundle Load(string directory)
    {
        var stopwatch = Stopwatch.StartNew();
        var manifestWritten = ManifestWrittenUtc(directory);
        var manifest = ReadManifest(directory);
        var weights = CheckManifest(directory, manifest);

        if (manifest.Onnx.File.Contains('\0'))
        {
            throw new BundleRefusedException(directory, "onnx.file holds a NUL character: it must name a file in the bundle folder");
        }
        var onnxPath = Path.Combine(directory, manifest.Onnx.File);
        if (Path.GetDirectoryName(Path.GetFullPath(onnxPath)) != Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar))
        {
            throw new BundleRefusedException(directory, $"onnx.file '{manifest.Onnx.File}' must be a file in the bundle folder");
        }
        if (!File.Exists(onnxPath))
        {
            throw new BundleRefusedException(directory, $"the graph file '{manifest.Onnx.File}' is missing");
        }
        CheckReadableFile(directory, onnxPath, manifest.Onnx.File, maxBytes: null);
        var graphStamp = GraphStampOf(onnxPath);   // before its hash: a change after that is seen at the next scan
        var actualSha = Sha256Of(onnxPath);
        if (!string.Equals(actualSha, manifest.Onnx.Sha256.Trim(), StringComparison.OrdinalIgnoreCase))
        {
            throw new BundleRefusedException(directory,
                $"sha256 mismatch for {manifest.Onnx.File}: manifest says {manifest.Onnx.Sha256}, file is {actualSha}");
        }

        var bundleSession = OpenSession(directory, manifest, weights, intraOpThreads: null);
        return new ModelBundle(directory, manifest, bundleSession, weights, DateTimeOffset.UtcNow, stopwatch.Elapsed.TotalMilliseconds)
        {
            ManifestWrittenUtc = manifestWritten,
            GraphStamp = graphStamp,
        };
    }

    /// <summary>
    /// Another session of a loaded bundle's graph, whose runs use <paramref name="intraOpThreads"/> threads (for the
    /// execution strategy to measure), checked against the probe and warmed up as the first was; the caller owns it.
    /// </summary>
    public BundleSession LoadSession(ModelBundle bundle, int intraOpThreads) =>
        OpenSession(bundle.Directory, bundle.Manifest, bundle.Weights, intraOpThreads);

    /// <summary>
    /// A session of the bundle's graph (intra-op threads as configured, or <paramref name="intraOpThreads"/>), its
    /// signature and probe checked and warmed up; disposed again when a check fails.
    /// </summary>
    private BundleSession OpenSession(string directory, BundleManifest manifest, float[] weights, int? intraOpThreads)
    {
        InferenceSession session;
        ProviderChoice provider;
        try
        {
            (session, provider) = sessionFactory.Create(Path.Combine(directory, manifest.Onnx.File), intraOpThreads);
        }
        catch (OnnxRuntimeException exception)
        {
            throw new BundleRefusedException(directory, $"ONNX Runtime cannot load {manifest.Onnx.File}: {OneLine(exception.Message)}", exception);
        }

        var bundleSession = new BundleSession(session, provider, manifest.Input.Channels, manifest.Input.Height,
            manifest.Input.Width, manifest.Classes.Count, manifest.Prototypes.Count, manifest.FeatureMap.Height,
            manifest.FeatureMap.Width);
        try
        {
            CheckGraphSignature(directory, manifest, bundleSession);
            var similaritySlack = SimilaritySlack(manifest);
            var logitSlack = LogitSlack(similaritySlack, weights);
            CheckProbe(directory, manifest, bundleSession, weights, similaritySlack, logitSlack);
            WarmUp(directory, manifest, bundleSession, weights, logitSlack);
        }
        catch
        {
            bundleSession.Dispose();
            throw;
        }
        return bundleSession;
    }

    private static BundleManifest ReadManifest(string directory)
    {
        var path = Path.Combine(directory, ManifestFileName);
        try
        {
            CheckReadableFile(directory, path, ManifestFileName, MaxManifestBytes);
            return BundleManifest.Parse(File.ReadAllText(path));
        }
        catch (JsonException exception)
        {
            throw new BundleRefusedException(directory, $"{ManifestFileName} is not a valid manifest: {JsonFault(exception)}", exception);
        }
        catch (IOException exception)
        {
            throw new BundleRefusedException(directory, $"{ManifestFileName} cannot be read: {OneLine(exception.Message)}", exception);
        }
    }

    /// <summary>
    /// A JSON fault of the manifest where an editor shows it: System.Text.Json counts lines and bytes from 0
    /// ("LineNumber: 0 | BytePositionInLine: 73" is the first line's 74th byte).
    /// </summary>
    private static string JsonFault(JsonException exception)
    {
        var message = OneLine(exception.Message);
        if (exception.LineNumber is not { } line) return message;
        var details = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (details < 0) details = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        if (details >= 0) message = message[..details];
        var member = exception.Path is { Length: > 1 } path ? $"at {path}, " : "";
        return $"{InJsonTerms(message.TrimEnd('.', ' '), exception.Path)} ({member}line {line + 1}, byte {exception.BytePositionInLine + 1})";
    }

    /// <summary>
    /// System.Text.Json names the .NET type it wanted ("could not be converted to System.Nullable`1[System.Int32]",
    /// "on type 'ProtoPNet.Inference.Bundles.LastLayerSection'"); the manifest's author reads JSON.
    /// </summary>
    private static string InJsonTerms(string message, string? path)
    {
        const string NotConverted = "The JSON value could not be converted to ";
        if (message.StartsWith(NotConverted, StringComparison.Ordinal))
        {
            return $"a value is not {JsonKind(message[NotConverted.Length..], path)}";
        }
        const string NullField = "The property or field '";
        if (message.StartsWith(NullField, StringComparison.Ordinal) && message.Contains("doesn't allow setting null", StringComparison.Ordinal))
        {
            var name = message[NullField.Length..message.IndexOf('\'', NullField.Length)];
            return $"'{name}' is null, where a value is required";
        }
        return message;
    }

    private static string JsonKind(string typeName, string? path)
    {
        const string NullableOf = "System.Nullable`1[";
        if (typeName.StartsWith(NullableOf, StringComparison.Ordinal)) typeName = typeName[NullableOf.Length..^1];
        if (typeName.StartsWith("System.", StringComparison.Ordinal) || typeName.EndsWith("[]", StringComparison.Ordinal))
        {
            return typeName switch
            {
                "System.Int32" => "a 32-bit integer",
                "System.Double" => "a number",
                "System.String" => "a string",
                "System.Boolean" => "true or false",
                _ => "an array",
            };
        }
        // A record made through its constructor (PixelBox, FeatureCell) names itself for a parameter it could not
        // convert, and the path ends in that parameter: the parameter's own type is what was wanted.
        var member = path is null ? null : path[(path.LastIndexOf('.') + 1)..];
        var property = member is null ? null : typeof(BundleManifest).Assembly.GetType(typeName)?.GetProperty(
            member, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase);
        return property is null ? "an object" : JsonKind((Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType).FullName!, null);
    }

    /// <summary>
    /// A bundle file is read only when it is a file with bytes, within <paramref name="maxBytes"/>: a FIFO or a device in
    /// its place (whose size is 0, as an empty file's) blocked the read, and with it every scan and reload, for good.
    /// </summary>
    private static void CheckReadableFile(string directory, string path, string name, long? maxBytes)
    {
        var file = new FileInfo(path);
        if (file.LinkTarget is not null)
        {
            file = file.ResolveLinkTarget(returnFinalTarget: true) is FileInfo { Exists: true } target
                ? target
                : throw new BundleRefusedException(directory, $"{name} is a link to no file");
        }
        if (file.Length == 0) throw new BundleRefusedException(directory, $"{name} is empty or not a regular file");
        if (file.Length > maxBytes)
        {
            throw new BundleRefusedException(directory, string.Create(CultureInfo.InvariantCulture,
                $"{name} holds {file.Length} bytes, more than the {maxBytes} a manifest may have"));
        }
    }

    /// <summary>Checks that the manifest agrees with itself; returns the last-layer weights as a flat K x M matrix.</summary>
    private static float[] CheckManifest(string directory, BundleManifest manifest)
    {
        void Refuse(string reason) => throw new BundleRefusedException(directory, reason);

        if (manifest.Format != BundleFormat) Refuse($"format is '{manifest.Format}', expected '{BundleFormat}'");
        if (manifest.FormatVersion != SupportedFormatVersion) Refuse($"formatVersion {manifest.FormatVersion} is not supported (this service reads {SupportedFormatVersion})");
        // The folder name is the version clients ask for and the order versions are served in; a manifest that says
        // otherwise would serve under another name, and two folders could then serve under one version.
        var folder = Path.GetFileName(Path.TrimEndingDirectorySeparator(directory));
        if (manifest.Version != folder) Refuse($"model.json says version '{manifest.Version}' but its folder is named '{folder}'");
        // Likewise the model folder is the name clients ask for: a manifest naming another model would serve there.
        var modelFolder = Path.GetFileName(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(directory)));
        if (manifest.Name != modelFolder) Refuse($"model.json says name '{manifest.Name}' but its model folder is named '{modelFolder}'");
        var input = manifest.Input;
        if (!ColorSpaces.TryParse(input.ColorSpace, out var colorSpace)) Refuse($"input.colorSpace '{input.ColorSpace}' is not 'rgb' or 'gray'");
        if (input.Channels != ColorSpaces.ChannelCount(colorSpace)) Refuse($"input.channels {input.Channels} does not match colorSpace '{input.ColorSpace}'");
        if (input.Height < 1 || input.Width < 1 || input.Height > 4096 || input.Width > 4096) Refuse($"input size {input.Height}x{input.Width} is out of range");
        if (!string.Equals(input.Resize, "stretch", StringComparison.OrdinalIgnoreCase)) Refuse($"input.resize '{input.Resize}' is not supported (only 'stretch')");
        if (!Resamplers.TryGet(input.Interpolation, out _)) Refuse($"input.interpolation '{input.Interpolation}' is not supported");
        if (!ContrastNormalizer.IsKnown(input.Contrast)) Refuse($"input.contrast '{input.Contrast}' is not 'none' or 'auto'");
        if (manifest.FeatureMap.Height < 1 || manifest.FeatureMap.Width < 1) Refuse("featureMap size must be positive");

        var classCount = manifest.Classes.Count;
        var prototypeCount = manifest.Prototypes.Count;
        if (classCount < 1) Refuse("the manifest lists no classes");
        if (prototypeCount < 1) Refuse("the manifest lists no prototypes");
        for (var k = 0; k < classCount; k++)
        {
            if (manifest.Classes[k].Index != k) Refuse($"classes[{k}].index is {manifest.Classes[k].Index}, expected {k}");
        }
        for (var j = 0; j < prototypeCount; j++)
        {
            var prototype = manifest.Prototypes[j];
            if (prototype.Index != j) Refuse($"prototypes[{j}].index is {prototype.Index}, expected {j}");
            if (prototype.ClassIndex < 0 || prototype.ClassIndex >= classCount) Refuse($"prototypes[{j}].classIndex {prototype.ClassIndex} is not a class");
        }

        var rows = manifest.LastLayer.Weights;
        if (rows.Count != classCount) Refuse($"lastLayer.weights has {rows.Count} rows, expected {classCount} (one per class)");
        var weights = new float[classCount * prototypeCount];
        for (var k = 0; k < classCount; k++)
        {
            if (rows[k].Count != prototypeCount) Refuse($"lastLayer.weights row {k} has {rows[k].Count} columns, expected {prototypeCount} (one per prototype)");
            for (var j = 0; j < prototypeCount; j++) weights[k * prototypeCount + j] = (float)rows[k][j];
        }

        if (manifest.Probe.Input != ProbeInput.Name) Refuse($"probe.input '{manifest.Probe.Input}' is unknown (expected '{ProbeInput.Name}')");
        if (manifest.Probe.Logits.Count != classCount) Refuse($"probe.logits has {manifest.Probe.Logits.Count} values, expected {classCount}");
        if (manifest.Probe.Similarities.Count != prototypeCount) Refuse($"probe.similarities has {manifest.Probe.Similarities.Count} values, expected {prototypeCount}");

        if (manifest.Unfamiliarity is { } unfamiliarity)
        {
            if (!UnfamiliaritySection.IsKnownMeasure(unfamiliarity.Measure))
            {
                Refuse($"unfamiliarity.measure '{unfamiliarity.Measure}' is not one this service computes (expected '{UnfamiliaritySection.NegativeMaxSimilarity}')");
            }
        }
        return weights;
    }

    private static void CheckGraphSignature(string directory, BundleManifest manifest, BundleSession session)
    {
        void Refuse(string reason) => throw new BundleRefusedException(directory, reason);

        var inputs = session.InputMetadata;
        if (inputs.Count != 1 || !inputs.ContainsKey(BundleSession.InputName))
        {
            Refuse($"graph inputs are [{string.Join(", ", inputs.Keys)}], expected exactly [{BundleSession.InputName}]");
        }
        CheckShape(directory, BundleSession.InputName, inputs[BundleSession.InputName],
            [manifest.Input.Channels, manifest.Input.Height, manifest.Input.Width]);

        var outputs = session.OutputMetadata;
        string[] required = [BundleSession.LogitsName, BundleSession.SimilaritiesName, BundleSession.SimilarityMapsName];
        var missing = required.Where(name => !outputs.ContainsKey(name)).ToArray();
        if (missing.Length > 0)
        {
            Refuse($"graph outputs are [{string.Join(", ", outputs.Keys)}], missing [{string.Join(", ", missing)}]");
        }
        CheckShape(directory, BundleSession.LogitsName, outputs[BundleSession.LogitsName], [manifest.Classes.Count]);
        CheckShape(directory, BundleSession.SimilaritiesName, outputs[BundleSession.SimilaritiesName], [manifest.Prototypes.Count]);
        CheckShape(directory, BundleSession.SimilarityMapsName, outputs[BundleSession.SimilarityMapsName],
            [manifest.Prototypes.Count, manifest.FeatureMap.Height, manifest.FeatureMap.Width]);
    }

    /// <summary>
    /// Checks a [N, ...] tensor's element type, that N is dynamic, and the dimensions after N; symbolic dimensions (-1)
    /// are checked by the probe run.
    /// </summary>
    private static void CheckShape(string directory, string name, NodeMetadata metadata, int[] expectedAfterBatch)
    {
        if (metadata.ElementDataType != TensorElementType.Float)
        {
            throw new BundleRefusedException(directory, $"'{name}' is {metadata.ElementDataType}, expected float32");
        }
        var dimensions = metadata.Dimensions;
        var expectedText = $"[N, {string.Join(", ", expectedAfterBatch)}]";
        var actualText = "[" + string.Join(", ", dimensions.Select(d => d < 0 ? "?" : d.ToString(CultureInfo.InvariantCulture))) + "]";
        if (dimensions.Length != expectedAfterBatch.Length + 1)
        {
            throw new BundleRefusedException(directory, $"'{name}' has shape {actualText}, expected {expectedText}");
        }
        if (dimensions[0] >= 0)
        {
            throw new BundleRefusedException(directory, $"'{name}' has shape {actualText}: its batch size is fixed at {dimensions[0]}, but the first dimension must be dynamic (N)");
        }
        for (var i = 0; i < expectedAfterBatch.Length; i++)
        {
            var actual = dimensions[i + 1];
            if (actual >= 0 && actual != expectedAfterBatch[i])
            {
                throw new BundleRefusedException(directory, $"'{name}' has shape {actualText}, expected {expectedText}");
            }
        }
    }

    private static void CheckProbe(string directory, BundleManifest manifest, BundleSession session, float[] weights,
        double[] similaritySlack, double[] logitSlack)
    {
        var input = ProbeInput.Create(session.Channels, session.Height, session.Width);
        using var outputs = RunChecked(directory, session, input, "the probe");
        CompareToProbe(directory, "logits", outputs.LogitsOf(0), manifest.Probe.Logits, logitSlack);
        CompareToProbe(directory, "similarities", outputs.SimilaritiesOf(0), manifest.Probe.Similarities, similaritySlack);
        CheckInvariant(directory, "the probe", outputs, weights);
    }

    /// <summary>Each logit's share of its similarities' slack, through the last layer's weights (K x M, row-major).</summary>
    private static double[] LogitSlack(double[] similaritySlack, float[] weights)
    {
        var prototypes = similaritySlack.Length;
        var slack = new double[weights.Length / prototypes];
        for (var k = 0; k < slack.Length; k++)
        {
            for (var j = 0; j < prototypes; j++) slack[k] += Math.Abs(weights[k * prototypes + j]) * similaritySlack[j];
        }
        return slack;
    }

    /// <summary>
    /// How far a distance computed in float32 may land from the exporter's: it is ‖z‖² − 2 z·p + ‖p‖², a difference of
    /// squared norms of up to about a thousand, which float32 rounds at about 1e-4 whatever the summation order.
    /// </summary>
    private const double DistanceRounding = 1e-4;

    /// <summary>
    /// Per prototype, what a similarity may differ by beyond the tolerance because its distance is rounded: the log
    /// similarity ln((d + 1) / (d + ε)) changes by (1 − ε) / ((d + 1)(d + ε)) per unit of distance, which is thousands
    /// for a prototype that nearly matches the probe (d near 0, a model trained briefly), and next to nothing for the
    /// distances of a probe that matches nothing closely. The distance comes from the manifest's own similarity.
    /// </summary>
    internal static double[] SimilaritySlack(BundleManifest manifest)
    {
        var expected = manifest.Probe.Similarities;
        var slack = new double[expected.Count];
        if (manifest.Similarity?.Function is { } function && function != "log")
        {
            Array.Fill(slack, DistanceRounding);   // linear: the similarity is minus the distance
            return slack;
        }
        var epsilon = manifest.Similarity?.Epsilon ?? 1e-4;
        for (var j = 0; j < slack.Length; j++)
        {
            var ratio = Math.Exp(expected[j]);
            var distance = ratio > 1 ? Math.Max(0, (1 - epsilon * ratio) / (ratio - 1)) : double.PositiveInfinity;
            slack[j] = double.IsFinite(distance) ? DistanceRounding * (1 - epsilon) / ((distance + 1) * (distance + epsilon)) : 0;
        }
        return slack;
    }

    private static void CompareToProbe(string directory, string name, ReadOnlySpan<float> actual, IReadOnlyList<double> expected,
        IReadOnlyList<double> slack)
    {
        var worstIndex = -1;
        var worstExcess = 0.0;
        for (var i = 0; i < actual.Length; i++)
        {
            var excess = Math.Abs(actual[i] - expected[i]) - (Allowed(expected[i]) + slack[i]);
            if (excess > worstExcess || double.IsNaN(actual[i]))
            {
                worstExcess = double.IsNaN(actual[i]) ? double.PositiveInfinity : excess;
                worstIndex = i;
            }
        }
        if (worstIndex >= 0)
        {
            throw new BundleRefusedException(directory, string.Create(CultureInfo.InvariantCulture,
                $"probe mismatch: {name}[{worstIndex}] is {actual[worstIndex]:G7}, the manifest expects {expected[worstIndex]:G7} (tolerance {Tolerance:G3} + {Tolerance:G3}*|expected| + {slack[worstIndex]:G3} for float32 rounding of its distances)"));
        }
    }

    /// <summary>logits[k] must equal sum_j W[k, j] * similarities[j]: the explanation relies on it.</summary>
    private static void CheckInvariant(string directory, string inputName, NetworkOutputs outputs, float[] weights)
    {
        var classCount = outputs.ClassCount;
        var prototypeCount = outputs.PrototypeCount;
        for (var n = 0; n < outputs.Count; n++)
        {
            var logits = outputs.LogitsOf(n);
            var similarities = outputs.SimilaritiesOf(n);
            for (var k = 0; k < classCount; k++)
            {
                var sum = 0.0;
                for (var j = 0; j < prototypeCount; j++) sum += (double)weights[k * prototypeCount + j] * similarities[j];
                if (!WithinTolerance(sum, logits[k]))
                {
                    throw new BundleRefusedException(directory, string.Create(CultureInfo.InvariantCulture,
                        $"broken invariant logits == W x similarities on {inputName}: logits[{k}] is {logits[k]:G7} but W x similarities gives {sum:G7}"));
                }
            }
        }
    }

    /// <summary>
    /// One run of a batch of two, the probe image and a mid-grey one: it pays the first-run costs before the bundle is
    /// served, shows that the graph takes batches (the batcher runs many images at once; a graph whose batch is fixed
    /// inside fails here) and that a row's result does not depend on the rows beside it; and checks the invariant again.
    /// </summary>
    private static void WarmUp(string directory, BundleManifest manifest, BundleSession session, float[] weights, double[] logitSlack)
    {
        var elements = session.ImageElementCount;
        var input = new float[2 * elements];
        ProbeInput.Create(session.Channels, session.Height, session.Width).CopyTo(input, 0);
        Array.Fill(input, 0.5f, elements, elements);
        using var outputs = RunChecked(directory, session, input, "a batch of two images", rows: 2);
        CompareToProbe(directory, "logits (the probe in a batch of two)", outputs.LogitsOf(0), manifest.Probe.Logits, logitSlack);
        CheckInvariant(directory, "a batch of two images", outputs, weights);
    }

    private static NetworkOutputs RunChecked(string directory, BundleSession session, float[] input, string what, int rows = 1)
    {
        try
        {
            return session.Run(input, rows);
        }
        catch (OnnxRuntimeException exception)
        {
            throw new BundleRefusedException(directory, $"running {what} failed (output shapes differ from the manifest, or a batch size fixed in the graph?): {OneLine(exception.Message)}", exception);
        }
    }

    private static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}
