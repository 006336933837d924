using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace ProtoPNet.Service.Training;

/// <summary>
/// Where a running job is: its <c>stage</c>, the <c>epoch</c> (1-based) of <c>epochs</c>, and the done <c>fraction</c> of
/// the work (0 to 1); while its data's image files are checked (stage <c>checking-images</c>), how many of how many.
/// </summary>
public sealed record TrainingProgress(string? Stage, int Epoch, int Epochs, double Fraction, int? ImagesChecked = null, int? ImagesToCheck = null);

/// <summary>One finished epoch, for an accuracy curve.</summary>
public sealed record TrainingEpoch(int Epoch, string? Phase, double? TrainAccuracy, double? TestAccuracy);

/// <summary>
/// A training job as GET /training/jobs/{id} answers it: the request (job.json) and the worker's status (status.json).
/// See docs/TRAINING_JOBS.md for every field.
/// </summary>
public sealed record TrainingJob(
    string Id,
    string Name,
    string Preset,
    string? Dataset,
    string? Data,
    JsonObject Options,
    string Status,
    int Attempt,
    TrainingProgress? Progress,
    IReadOnlyDictionary<string, double>? Metrics,
    IReadOnlyList<TrainingEpoch> History,
    string? PublishedVersion,
    string? Error,
    IReadOnlyList<string> Warnings,
    bool CancelRequested,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    DateTimeOffset? EstimatedFinishAt,
    DateTimeOffset? HeartbeatAt,
    int? ResumedFromEpoch,
    string? Worker)
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    /// <summary>Every state a job can be in (docs/TRAINING_JOBS.md), in the order a job goes through them.</summary>
    public static readonly IReadOnlyList<string> States = [Queued, Running, Succeeded, Failed, Cancelled];

    [JsonIgnore]
    public bool IsFinished => Status is Succeeded or Failed or Cancelled;
}

/// <summary>What DELETE /training/jobs/{id} did: the job now, and whether its worker is still stopping it.</summary>
public sealed record CancelOutcome(TrainingJob Job, bool Stopping);
