using System.Text.Json;
using System.Text.Json.Nodes;
using ProtoPNet.Inference.Bundles;
using ProtoPNet.Service.Apis;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Training;

namespace ProtoPNet.Service.OpenApi;

/// <summary>Example bodies shown in Swagger UI, one per operation and per error.</summary>
public static class ApiExamples
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private const string Version = "20261129T010203Z";
    private const string VersionUrl = "/models/fashion-mnist/versions/" + Version;

    private static readonly ClassifyResponse Classify = new(
        new ModelReference("fashion-mnist", Version),
        new ImageSize(600, 800),
        new PreprocessingResponse(new ImageSize(600, 800), "gray", 28, 28, "stretch", "bilinear", "auto", true),
        false,
        new UnfamiliarityResponse("negative-max-similarity", -6.02, -2.31, new UnfamiliarityCalibrationResponse(0.01, "test[5000:10000]", 5000)),
        new ClassScoreResponse(9, "Ankle boot", 0.97, 12.31),
        [new ClassScoreResponse(9, "Ankle boot", 0.97, 12.31), new ClassScoreResponse(7, "Sneaker", 0.02, 8.42), new ClassScoreResponse(5, "Sandal", 0.01, 7.9)],
        new ExplanationResponse(9, "Ankle boot", 12.31,
        [
            new PrototypeContributionResponse(93, 9, "Ankle boot", 5.21, 1.0, 5.21, new PixelBox(120, 390, 210, 160),
                new FeatureCellResponse(5, 2), HeatmapPng.ForExample("data:image/png;base64,iVBORw0KGgo..."), $"{VersionUrl}/prototypes/93/patch.png", $"{VersionUrl}/prototypes/93/source.png")
            {
                ProbabilityWithoutBox = 0.26, Drop = 0.71,
            },
        ], 7.10),
        new TimingsResponse(0.4, 1.2, 0.3, 3.2) { Verify = 1.1 });

    private static readonly InputResponse Input = new(1, 28, 28, "gray", "stretch", "bilinear", "auto", false);
    private static readonly ClassResponse[] Classes = [new(0, "T-shirt/top"), new(1, "Trouser"), new(9, "Ankle boot")];
    private static readonly JsonElement Training = JsonDocument.Parse("""
        {"dataset":"fashion-mnist","epochs":30,"metrics":{"testAccuracy":0.912,"trainAccuracy":0.94},"baseline":{"testAccuracy":0.918}}
        """).RootElement;

    private static readonly ModelResponse Model = new("fashion-mnist", [Version], Version, true, Classes, Input, 100, Training,
        DateTimeOffset.Parse("2026-11-29T02:00:00Z"), "CPUExecutionProvider");

    private static readonly V2ModelMetadata V2Metadata = new("fashion-mnist", [Version], "onnxruntime_onnx",
        [new V2TensorMetadata("image", "FP32", [-1, 1, 28, 28])],
        [new V2TensorMetadata("logits", "FP32", [-1, 10]), new V2TensorMetadata("similarities", "FP32", [-1, 100]),
         new V2TensorMetadata("similarity_maps", "FP32", [-1, 100, 7, 7]), new V2TensorMetadata("unfamiliarity", "FP32", [-1]),
         new V2TensorMetadata("unfamiliar", "BOOL", [-1])]);

    private static readonly V2InferenceResponse V2Answer = new("fashion-mnist", Version,
        [
            new V2ResponseOutput("logits", [1, 10], "FP32", new[] { -3.1f, -4.2f, -2.9f, -3.8f, -3.3f, 1.7f, -2.5f, 4.4f, -1.2f, 12.31f }),
            new V2ResponseOutput("unfamiliar", [1], "BOOL", new[] { false }),
        ]) { Id = "42" };

    private static readonly TrainingJob TrainingJobExample = new("20261130T080000123Z-1a2b3c4d", "my-model", "smoke", null, null,
        new JsonObject { ["epochs"] = 4 }, TrainingJob.Running, 1, new TrainingProgress("joint", 3, 4, 0.55),
        new Dictionary<string, double> { ["trainAccuracy"] = 0.91, ["testAccuracy"] = 0.88, ["lossTotal"] = 0.42 },
        [new TrainingEpoch(1, "warm", 0.52, 0.61), new TrainingEpoch(2, "warm", 0.83, 0.8)], null, null,
        ["leaving out 1 of 1240 image files that cannot be read (train/tulip/IMG_0412.jpg: image file is truncated)"], false,
        DateTimeOffset.Parse("2026-11-30T08:00:00.123Z"), DateTimeOffset.Parse("2026-11-30T08:00:02.5Z"), null,
        DateTimeOffset.Parse("2026-11-30T08:00:41Z"), DateTimeOffset.Parse("2026-11-30T08:00:20Z"), null, "trainer-1:42");

    /// <summary>The 200 (or 202) example of each operation, by operation id.</summary>
    public static readonly IReadOnlyDictionary<string, object> Success = new Dictionary<string, object>
    {
        ["Classify"] = Classify,
        ["ClassifyBatch"] = new BatchClassifyResponse([Classify, new
        {
            type = "urn:protopnet:problem:image-not-decodable", title = "The image cannot be decoded", status = 400,
            detail = "The body is not an image in a supported format (PNG, JPEG, GIF, BMP, WebP or TIFF).",
            traceId = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }]),
        ["ListModels"] = new ModelsResponse("fashion-mnist", "CPUExecutionProvider",
            "libonnxruntime_providers_cuda.so: cannot open shared object file", [Model],
            [new RefusedBundleResponse("models/fashion-mnist/20261128T000000Z", "sha256 mismatch for model.onnx: manifest says 3f2a..., file is 9b1c...")],
            Loading: false),
        ["GetModel"] = Model,
        ["GetModelVersion"] = new ModelVersionResponse("fashion-mnist", Version, true, "2026-11-29T01:02:03Z", Classes, Input, 100,
            new FeatureCellResponse(7, 7), Training, DateTimeOffset.Parse("2026-11-29T02:00:00Z"), 85.2, "CPUExecutionProvider",
            "9b1c0d5e...", VersionUrl + "/prototypes")
        {
            ExecutionStrategy = new ExecutionStrategyResponse(16, 2, 1, 1, "measured",
            [
                new StrategyMeasurementResponse(1, 2, 2, 3700, 0.46), new StrategyMeasurementResponse(4, 2, 2, 4800, 0.41),
                new StrategyMeasurementResponse(16, 2, 2, 5500, 0.37), new StrategyMeasurementResponse(1, 2, 1, 3930, 0.44),
                new StrategyMeasurementResponse(4, 2, 1, 5110, 0.39), new StrategyMeasurementResponse(16, 2, 1, 5790, 0.35),
            ],
            [new LoneMeasurementResponse(2, 0.76, 44), new LoneMeasurementResponse(1, 0.7, 45)], PaddedBatches: false),
            Interpretability = new InterpretabilitySection
            {
                Images = 10000, Split = "test", Parts = false, Accuracy = 0.9412, NoiseStability = 0.93, NoiseSigma = 0.2,
                JpegStability = 0.97, JpegQuality = 75, ConsistencyThreshold = 0.8,
                Deletion = new DeletionScores { MeanDropTopBox = 0.31, MeanDropRandomBox = 0.04, Ratio = 7.75 },
                MeanColour = [0.286], BackgroundPrototypes = 3, BackgroundShare = 0.03,
                Prototypes = [new PrototypeInterpretability { Index = 93, NoiseStability = 0.95, JpegStability = 0.98, Background = false }],
                Engine = "onnxruntime 1.20.1", Seconds = 41.5,
            },
        },
        ["ListPrototypes"] = new PrototypesResponse("fashion-mnist", Version,
        [
            new PrototypeResponse(93, 9, "Ankle boot",
                new PrototypeSource { Split = "train", Item = "12345", FeatureCell = new FeatureCell(5, 2), Box = new PixelBox(5, 17, 11, 8) },
                new PrototypePicturesResponse($"{VersionUrl}/prototypes/93/patch.png", $"{VersionUrl}/prototypes/93/source.png", $"{VersionUrl}/prototypes/93/activation.png")),
        ]),
        ["Live"] = new LiveResponse("alive"),
        ["Ready"] = new ReadyResponse("ready", "CPUExecutionProvider", "fashion-mnist", [$"fashion-mnist@{Version}"]),
        ["Metrics"] = """
            # HELP protopnet_batch_size Images per network run.
            # TYPE protopnet_batch_size histogram
            protopnet_batch_size_bucket{model="fashion-mnist",version="20261129T010203Z",le="1"} 3
            protopnet_batch_size_bucket{model="fashion-mnist",version="20261129T010203Z",le="2"} 5
            protopnet_batch_size_bucket{model="fashion-mnist",version="20261129T010203Z",le="+Inf"} 12
            protopnet_batch_size_sum{model="fashion-mnist",version="20261129T010203Z"} 96
            protopnet_batch_size_count{model="fashion-mnist",version="20261129T010203Z"} 12
            # HELP protopnet_requests_total Requests by model, version, endpoint and HTTP status.
            # TYPE protopnet_requests_total counter
            protopnet_requests_total{endpoint="Classify",model="fashion-mnist",status="200",version="20261129T010203Z"} 96
            """,
        ["ReloadModel"] = new ReloadResponse("fashion-mnist", "20261130T080000Z", ["20261130T080000Z", Version], ["fashion-mnist@20261130T080000Z"], [],
            [new RefusedBundleResponse("fashion-mnist/20261130T090000Z", "probe mismatch: logits[3] is 1.25, the manifest expects 2.5 (tolerance 1e-3 + 1e-3*|expected|)")],
            [new SettlingBundleResponse("fashion-mnist/20261130T100000Z", "sha256 mismatch for model.onnx: manifest says 9c1e…, file is 3f2a…", 4)]),
        ["ReloadModels"] = new ReloadAllResponse(["fashion-mnist@20261130T080000Z", "flowers@20261201T101500Z"], "fashion-mnist",
            ["fashion-mnist@20261130T080000Z"], [$"fashion-mnist@{Version}"],
            [new RefusedBundleResponse("flowers/20261201T110000Z", "model.json is not valid JSON: line 3, byte 17: ',' is invalid after a value")], []),
        ["V2ServerMetadata"] = new V2ServerMetadata("protopnet-service", "1.0.0", [V2Api.BinaryTensorDataExtension]),
        ["V2ServerLive"] = new V2ServerLive(true),
        ["V2ServerReady"] = new V2ServerReady(true),
        ["V2ModelReady"] = new V2ModelReady("fashion-mnist", true),
        ["V2ModelReadyVersion"] = new V2ModelReady("fashion-mnist", true),
        ["V2ModelMetadata"] = V2Metadata,
        ["V2ModelMetadataVersion"] = V2Metadata,
        ["V2Infer"] = V2Answer,
        ["V2InferVersion"] = V2Answer,
        ["SubmitTrainingJob"] = TrainingJobExample with { Status = TrainingJob.Queued, Attempt = 0, Progress = null, Metrics = null, History = [], Warnings = [], StartedAt = null, EstimatedFinishAt = null, HeartbeatAt = null, Worker = null },
        ["ListTrainingJobs"] = new[] { TrainingJobExample },
        ["GetTrainingJob"] = TrainingJobExample,
        ["CancelTrainingJob"] = TrainingJobExample with { CancelRequested = true },
        ["RemoveTrainingJob"] = TrainingJobExample with
        {
            Status = TrainingJob.Succeeded, Progress = new TrainingProgress("export", 4, 4, 1.0), PublishedVersion = "20261130T080045Z",
            FinishedAt = DateTimeOffset.Parse("2026-11-30T08:00:45Z"), EstimatedFinishAt = null,
        },
        ["WatchTrainingJob"] = "event: job\ndata: " + JsonSerializer.Serialize(TrainingJobExample, Json) + "\n\n",
        ["ListTrainingOptions"] = new TrainerCatalog("protopnet-trainer-options/1", [new TrainerPreset("smoke", "synthetic", 20,
                "A tiny colour model on synthetic shapes (32x32, a small CNN): well under a minute on 2 CPU cores, to try the pipeline.")],
            ["fashion-mnist", "cub200", "imagefolder", "synthetic", "synthetic-parts"], ["synthetic", "synthetic-parts"], ["cub200", "imagefolder"],
            [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"],
            [new TrainerOption("epochs", "--epochs", "integer", 1, 1000, null, null, "total epochs (warm-up + joint)") { Setting = "epochs" }]),
        ["ListTrainingData"] = new DataFolderList(true, [
            new DataFolder("my-photos", "imagefolder", 3, 240, 60, 0, null),
            new DataFolder("CUB_200_2011", "cub200", 200, 5994, 5794, 0, null),
            new DataFolder("holiday", "imagefolder", 5, 400, 100, 2, null),
            new DataFolder("field-trip/birds", "imagefolder", 4, 96, 0, 0, "test/ holds no images"),
        ], false),
    };

    /// <summary>A v2 error example per status, by operation id prefix V2.</summary>
    public static V2Error V2ErrorFor(int status) => status switch
    {
        401 => new V2Error("This endpoint needs the header X-Api-Key."),
        403 => new V2Error("The X-Api-Key header does not hold the key this endpoint needs."),
        404 => new V2Error("No model named 'cub200' is loaded. Loaded: fashion-mnist."),
        413 => new V2Error("The body is larger than 1269760 bytes, the most a request of 32 images needs for this model."),
        429 => new V2Error("This client sent more than 100 requests in 60 s (RateLimiting:PermitLimit); retry after 12 s."),
        503 => new V2Error("fashion-mnist@20261129T010203Z is overloaded: 256 images are queued (limit 256). Retry shortly."),
        _ => new V2Error("Input 'image' has shape [N, 1, 28, 28] with N >= 1; the request says [1, 3, 28, 28]."),
    };

    public static JsonNode? ToNode(object value) => JsonSerializer.SerializeToNode(value, value.GetType(), Json);
}
