using System.Net.ServerSentEvents;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Problems;
using ProtoPNet.Service.Serving;
using ProtoPNet.Service.Training;

namespace ProtoPNet.Service.Apis;

/// <summary>
/// /training: training jobs for the workers of the jobs folder (Training:JobsRoot): submit, list, follow (also as
/// Server-Sent Events), cancel and remove; and what a job may use (the trainer's options, the data folders).
/// Administrative: every endpoint needs Security:AdminApiKey in X-Api-Key.
/// </summary>
public static class TrainingApi
{
    public const string EventType = "job";

    public static IEndpointRouteBuilder MapTrainingApi(this IEndpointRouteBuilder app)
    {
        // Every training endpoint is administrative: the key is checked for the whole group, so none can miss it.
        var group = app.MapGroup("/training").WithTags("Training").RequireAdminKey();

        group.MapPost("/jobs", SubmitAsync)
            .WithName("SubmitTrainingJob")
            .WithSummary("Queue a training job (administrative)")
            .WithDescription("""
                Queues a job for the training workers: `name` (the model name to publish under), `preset`, and optionally
                `dataset`, `data` (a folder relative to Training:DataRoot) and `options` (the trainer's options by their long
                names in camelCase, e.g. `{"epochs": 4}`; GET /training/options lists them with their ranges). Answers 202 with
                the queued job and its URL in Location. A worker trains it exactly as `protopnet_trainer train` would and
                publishes the bundle into the model repository, where this service loads it by itself.
                """)
            .Accepts<TrainingJobRequest>("application/json")
            .Produces<TrainingJob>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status408RequestTimeout)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        group.MapGet("/jobs", List)
            .WithName("ListTrainingJobs")
            .WithSummary("List the training jobs (administrative)")
            .WithDescription("Every job of the jobs folder, newest first, with its status and progress; `status` (e.g. `queued,running`) keeps the jobs in those states and `limit` the newest N.")
            .Produces<TrainingJob[]>()
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .TakesOnlyQuery("status", "limit");

        group.MapGet("/jobs/{id}", Get)
            .WithName("GetTrainingJob")
            .WithSummary("Describe one training job (administrative)")
            .WithDescription("Status (queued, running, succeeded, failed, cancelled), progress (stage, epoch, epochs, fraction), the latest epoch's metrics, the accuracy of every epoch, the published version, the error of a failed job, and its times.")
            .Produces<TrainingJob>()
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapGet("/jobs/{id}/events", Events)
            .WithoutHead()
            .WithName("WatchTrainingJob")
            .WithSummary("Follow one training job as Server-Sent Events (administrative)")
            .WithDescription("""
                `text/event-stream`: an event `job` with the job (as GET /training/jobs/{id}) at once, then one whenever its
                status, stage, epoch, progress, history, published version, error, warnings or cancel request is seen to
                change (never for a heartbeat alone; it is looked at every
                Training:EventPollMilliseconds; changes closer together arrive as one event, the latest); the stream ends
                after the event of a finished job (succeeded, failed or cancelled).
                """)
            .Produces<string>(StatusCodes.Status200OK, "text/event-stream")
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapDelete("/jobs/{id}", Cancel)
            .WithName("CancelTrainingJob")
            .WithSummary("Cancel a training job (administrative)")
            .WithDescription("""
                A queued job is cancelled at once and never starts (200, status cancelled). A running job is stopped by its
                worker before its next batch and publishes nothing (202, status still running with cancelRequested true,
                then cancelled). Cancelling a cancelled job answers 200 again; a job that already succeeded or failed, 409.
                """)
            .Produces<TrainingJob>()
            .Produces<TrainingJob>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        group.MapDelete("/jobs/{id}/folder", Remove)
            .WithName("RemoveTrainingJob")
            .WithSummary("Remove a finished training job and its folder (administrative)")
            .WithDescription("""
                Removes a job that has succeeded, failed or been cancelled: its folder in the jobs folder goes, with the run
                folder inside it (checkpoints, push pictures, metrics); a run folder a worker keeps elsewhere (its --runs)
                goes when a worker next looks (within a minute of it being idle). A published model is not touched: it
                lives in the model repository. Answers 200 with the job as it was. A queued or running job is refused with
                409: cancel it first (DELETE /training/jobs/{id}).
                """)
            .Produces<TrainingJob>()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        group.MapGet("/options", GetOptions)
            .WithName("ListTrainingOptions")
            .WithSummary("The presets, data sets and options a job may use (administrative)")
            .WithDescription("The trainer's presets (with their data set and epochs), data sets, and every option a job's `options` may set, with its trainer option, type, inclusive minimum and maximum, choices and help.")
            .Produces<TrainerCatalog>()
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapGet("/data", ListData)
            .WithName("ListTrainingData")
            .WithSummary("The data folders a job can train on (administrative)")
            .WithDescription($"""
                The folders under Training:DataRoot that a job can name as `data`, found in the data root and up to
                {DataFolders.MaxDepth} levels below it: an image folder (`train/` and `test/`, a folder per class; `dataset`
                `imagefolder`) or a CUB-200-2011 folder (`images.txt`, `classes.txt`; `dataset` `cub200`), each with its
                classes and images per split as the trainer counts them, and `problem` where the trainer would refuse it.
                `configured` is false where the service has no data root (jobs then name no data); a data root that is
                gone is a 503.
                """)
            .Produces<DataFolderList>()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return app;
    }

    /// <summary>
    /// The endpoint's content type matching also lets any <c>application/*+json</c> through (merge-patch+json,
    /// problem+json), which are not a job: only JSON itself, or no content type, is taken; a header that cannot be read
    /// (an unterminated quote) is a 400, as for an upload.
    /// </summary>
    private static void RefuseOtherThanJson(HttpRequest request)
    {
        if (string.IsNullOrEmpty(request.ContentType)) return;
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(request.ContentType, out var type))
        {
            throw ProblemCatalog.UnreadableContentType(request.ContentType, "'application/json'");
        }
        if (type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)) return;
        throw new ProblemException(ProblemCatalog.UnsupportedMediaType,
            $"Content-Type '{RequestText.Printable(request.ContentType)}' is not accepted by POST /training/jobs: send the job as application/json. The API is described at /swagger.");
    }

    public static string JobUrl(string id) => $"/training/jobs/{Uri.EscapeDataString(id)}";

    internal static async Task<Accepted<TrainingJob>> SubmitAsync(HttpRequest request, TrainingJobStore store, TrainerCatalog catalog,
        CancellationToken cancellationToken)
    {
        store.EnsureConfigured();
        RefuseOtherThanJson(request);
        JsonElement body;
        try
        {
            // A field given twice would leave which one counts to the reader: refused, as any other malformed JSON.
            using var document = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { AllowDuplicateProperties = false },
                cancellationToken);
            body = document.RootElement.Clone();
        }
        catch (JsonException error)
        {
            throw TrainingJobValidator.Invalid("body", $"is not JSON: {RequestText.JsonError(error)}");
        }
        catch (InvalidOperationException error)
        {
            // The duplicate check reads every property name: one that is not text fails there.
            throw TrainingJobValidator.InvalidText("body", error);
        }
        TrainingJobValidator.RefuseInvalidText(body);
        var job = store.Create(TrainingJobValidator.Validate(body, catalog, store.DataRoot));
        return TypedResults.Accepted(JobUrl(job.Id), job);
    }

    /// <param name="status">Only jobs in these states, comma-separated, in any case: queued, running, succeeded, failed, cancelled.</param>
    /// <param name="limit">At most this many jobs, the newest (a folder keeps every finished job until it is removed).</param>
    internal static Ok<IReadOnlyList<TrainingJob>> List(TrainingJobStore store, string? status = null, string? limit = null)
    {
        store.EnsureConfigured();
        // In any case, as the service's other named values (heatmaps=PNG) are.
        var wanted = status?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(w => w.ToLowerInvariant()).ToArray();
        if (wanted is not null && (wanted.Length == 0 || wanted.Any(w => !TrainingJob.States.Contains(w))))
        {
            throw new ProblemException(ProblemCatalog.InvalidParameter,
                $"status '{status}' names no job state: use one or more of {string.Join(", ", TrainingJob.States)}, comma-separated.");
        }
        int? most = null;
        if (limit is not null)
        {
            if (!int.TryParse(limit, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var parsed) || parsed < 1)
            {
                throw new ProblemException(ProblemCatalog.InvalidParameter, $"limit must be a whole number from 1 to {int.MaxValue}; it is '{RequestText.Echo(limit)}'.");
            }
            most = parsed;
        }
        var jobs = store.List();
        if (wanted is not null) jobs = jobs.Where(job => wanted.Contains(job.Status));
        if (most is { } count) jobs = jobs.Take(count);
        return TypedResults.Ok<IReadOnlyList<TrainingJob>>(jobs.ToArray());
    }

    /// <param name="id">The job id, e.g. <c>20261130T080000123Z-1a2b3c4d</c>.</param>
    internal static Ok<TrainingJob> Get(string id, TrainingJobStore store)
    {
        store.EnsureConfigured();
        return TypedResults.Ok(store.Get(id));
    }

    /// <param name="id">The job id.</param>
    internal static Results<Ok<TrainingJob>, Accepted<TrainingJob>> Cancel(string id, TrainingJobStore store)
    {
        store.EnsureConfigured();
        var outcome = store.Cancel(id);
        return outcome.Stopping ? TypedResults.Accepted(JobUrl(id), outcome.Job) : TypedResults.Ok(outcome.Job);
    }

    /// <param name="id">The job id.</param>
    internal static Ok<TrainingJob> Remove(string id, TrainingJobStore store)
    {
        store.EnsureConfigured();
        return TypedResults.Ok(store.Remove(id));
    }

    /// <param name="id">The job id.</param>
    internal static ServerSentEventsResult<TrainingJob> Events(string id, TrainingJobStore store, IOptions<TrainingOptions> options,
        IHostApplicationLifetime lifetime, CancellationToken cancellationToken)
    {
        store.EnsureConfigured();
        var first = store.Get(id);   // an unknown job is a 404 before the stream starts
        // The stream also ends when the service stops: an open one would otherwise hold the shutdown for its whole timeout.
        var ends = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        return TypedResults.ServerSentEvents(Changes(first, store, TimeSpan.FromMilliseconds(options.Value.EventPollMilliseconds), ends));
    }

    internal static Ok<TrainerCatalog> GetOptions(TrainingJobStore store, TrainerCatalog catalog)
    {
        store.EnsureConfigured();
        return TypedResults.Ok(catalog);
    }

    internal static Ok<DataFolderList> ListData(TrainingJobStore store, TrainerCatalog catalog)
    {
        store.EnsureConfigured();
        return TypedResults.Ok(DataFolders.Find(store.DataRoot, catalog.ImageExtensions));
    }

    /// <summary>The job now, then each time what a watcher sees of it changes, until it has finished.</summary>
    private static async IAsyncEnumerable<SseItem<TrainingJob>> Changes(TrainingJob job, TrainingJobStore store, TimeSpan poll,
        CancellationTokenSource ends)
    {
        using var _ = ends;
        var seen = Fingerprint(job);
        yield return new SseItem<TrainingJob>(job, EventType);
        while (!job.IsFinished && !ends.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(poll, ends.Token);
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
            // A job folder removed meanwhile ends the stream (its last event stands).
            if (store.Find(job.Id) is not { } latest) yield break;
            job = latest;
            var now = Fingerprint(job);
            if (now == seen) continue;
            seen = now;
            yield return new SseItem<TrainingJob>(job, EventType);
        }
    }

    /// <summary>What an event is sent for: not the heartbeat, which changes every few seconds while nothing else does.</summary>
    private static string Fingerprint(TrainingJob job) =>
        string.Join('|', job.Status, job.Progress?.Stage, job.Progress?.Epoch, job.Progress?.Fraction.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture),
            job.Progress?.ImagesChecked, job.History.Count, job.PublishedVersion, job.Error, job.Warnings.Count, job.CancelRequested);
}
