using System.ComponentModel.DataAnnotations;

namespace ProtoPNet.Service.Training;

/// <summary>Configuration section <c>Training</c> (environment <c>Training__JobsRoot</c>, <c>Training__DataRoot</c>).</summary>
public sealed class TrainingOptions
{
    public const string SectionName = "Training";

    /// <summary>
    /// The jobs folder shared with the training workers (docs/TRAINING_JOBS.md). Empty (default): the service takes no
    /// training jobs and the /training endpoints answer 404 training-not-configured.
    /// </summary>
    public string? JobsRoot { get; set; }

    /// <summary>The only folder a job's <c>data</c> may name (relative to it). Empty (default): jobs cannot name data folders.</summary>
    public string? DataRoot { get; set; }

    /// <summary>How often the events stream of a job looks at its status file, in milliseconds (default 500).</summary>
    [Range(50, 10_000)]
    public int EventPollMilliseconds { get; set; } = 500;

    /// <summary>
    /// A running job whose lease has not beaten for this many seconds has lost its worker (the workers' own
    /// <c>--stale-after</c>, default 60): cancelling it ends it at once, as a worker would take it over. Default 60.
    /// </summary>
    [Range(10, 86_400)]
    public int StaleAfterSeconds { get; set; } = 60;

    /// <summary>
    /// How long a finished job (succeeded, failed, cancelled) is kept before the service removes it with its folder and
    /// run folder, e.g. <c>7.00:00:00</c>; the models it published stay. Empty (default): finished jobs are kept until
    /// removed (DELETE /training/jobs/{id}/folder).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "3650.00:00:00")]
    public TimeSpan? KeepFinishedJobs { get; set; }
}
