using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using ProtoPNet.Service.Problems;

namespace ProtoPNet.Service.Training;

/// <summary>
/// The service's side of the jobs folder (docs/TRAINING_JOBS.md; the workers' side is the trainer's jobs.py): it queues
/// jobs, reads their status, cancels them and removes finished ones. A queued job (or one whose worker died) is
/// cancelled by taking its next lease, exactly as a worker takes a job, so a job is never both cancelled here and started
/// by a worker.
/// </summary>
public sealed partial class TrainingJobStore(IOptions<TrainingOptions> options, Models.ModelRegistry models, TimeProvider time,
    ILogger<TrainingJobStore> logger)
{
    public const string JobFormat = "protopnet-training-job/1";
    private const string JobFile = "job.json";
    private const string StatusFile = "status.json";
    private const string CancelFile = "cancel";
    private const string RemovingPrefix = ".removing-";
    private static readonly TimeSpan LeftoverAge = TimeSpan.FromMinutes(10);
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private readonly TrainingOptions _options = options.Value;

    public bool IsConfigured => !string.IsNullOrWhiteSpace(_options.JobsRoot);

    public string? DataRoot => string.IsNullOrWhiteSpace(_options.DataRoot) ? null : _options.DataRoot;

    private string Root => IsConfigured ? _options.JobsRoot! : throw new ProblemException(ProblemCatalog.TrainingNotConfigured,
        "Training is not configured: set Training:JobsRoot (environment Training__JobsRoot) to the jobs folder the training workers read.");

    /// <summary>Throws the 404 training-not-configured problem when there is no jobs folder.</summary>
    public void EnsureConfigured() => _ = Root;

    /// <summary>Queues a checked job: its folder is written aside and renamed into place, so a worker never sees half a job.</summary>
    public TrainingJob Create(JobSpec spec) => Writing(null, () => CreateJob(spec));

    private TrainingJob CreateJob(JobSpec spec)
    {
        var root = Root;
        Directory.CreateDirectory(root);
        var now = time.GetUtcNow();
        var id = $"{now:yyyyMMdd'T'HHmmssfff'Z'}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        var staging = Path.Combine(root, $".staging-{id}");
        Directory.CreateDirectory(staging);
        var job = new JsonObject
        {
            ["format"] = JobFormat, ["id"] = id, ["name"] = spec.Name, ["preset"] = spec.Preset, ["dataset"] = spec.Dataset,
            ["data"] = spec.Data, ["options"] = spec.Options.DeepClone(), ["createdAt"] = Timestamp(now),
        };
        var status = new JsonObject { ["id"] = id, ["status"] = TrainingJob.Queued, ["attempt"] = 0, ["history"] = new JsonArray() };
        WriteAtomically(Path.Combine(staging, JobFile), job);
        WriteAtomically(Path.Combine(staging, StatusFile), status);
        Directory.Move(staging, Path.Combine(root, id));
        return Get(id);
    }

    /// <summary>
    /// Every job, newest first, read as the listing is enumerated: a caller that takes the newest few reads only those
    /// (and as many more as a filter passes over), not the thousands a folder may keep. A job's id begins with its
    /// creation time; a job named otherwise (written by another program) is placed by its job.json's createdAt.
    /// </summary>
    public IEnumerable<TrainingJob> List()
    {
        var root = Root;
        if (File.Exists(root))
        {
            // Not "no jobs": every job queued there would fail the same way (a 503 for each write says so too).
            throw new ProblemException(ProblemCatalog.TrainingFolderUnavailable, $"The jobs folder {root} is a file, not a folder.");
        }
        if (!Directory.Exists(root)) return [];
        var newestFirst = Directory.EnumerateDirectories(root)
            .Select(Path.GetFileName)
            .Where(name => name is not null && JobId().IsMatch(name))
            .Select(name => CreatedFromId(name!) is { } created ? (Id: name!, Created: created, Read: null) : Placed(name!))
            .Where(job => job.Created is not null)
            .OrderByDescending(job => job.Created).ThenByDescending(job => job.Id, StringComparer.Ordinal)
            .ToArray();
        return newestFirst.Select(job => job.Read ?? TryReadListed(job.Id)).OfType<TrainingJob>();

        // A job named otherwise is read to be placed, and listed as read.
        (string Id, DateTimeOffset? Created, TrainingJob? Read) Placed(string id) => TryReadListed(id) is { } job ? (id, job.CreatedAt, job) : (id, null, null);
    }

    /// <summary>The creation time an id of the service's own form (<c>yyyyMMddTHHmmssfffZ-xxxxxxxx</c>) begins with.</summary>
    private static DateTimeOffset? CreatedFromId(string id) =>
        id.Length > 19 && id[19] == '-' && DateTimeOffset.TryParseExact(id.AsSpan(0, 19), "yyyyMMdd'T'HHmmssfff'Z'",
            System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var created)
            ? created
            : null;

    public TrainingJob Get(string id) => Find(id) ?? throw NotFound(id);

    /// <summary>The job, or null when there is none (or its job.json cannot be read).</summary>
    public TrainingJob? Find(string id) => TryRead(id);

    /// <summary>
    /// Asks for a job to be cancelled: a queued one is cancelled here and never starts; a running one is stopped by its
    /// worker before its next batch (<see cref="CancelOutcome.Stopping"/>).
    /// </summary>
    public CancelOutcome Cancel(string id) => Writing(id, () => CancelJob(id));

    private CancelOutcome CancelJob(string id)
    {
        var job = Get(id);
        if (job.Status == TrainingJob.Cancelled) return new CancelOutcome(job, false);
        if (job.IsFinished)
        {
            throw new ProblemException(ProblemCatalog.TrainingJobFinished, $"Training job {id} has already {job.Status}; there is nothing to cancel.");
        }
        var folder = Folder(id);
        File.WriteAllBytes(Path.Combine(folder, CancelFile), []);
        // As a worker claims: attempts first, then the status; only a queued status of the current attempt can be taken.
        var attempt = CurrentAttempt(folder);
        // No status (or none that can be read) is queued at attempt 0, as a worker takes it (jobs.py, claimable).
        var status = ReadStatus(folder) ?? new JsonObject { ["id"] = id, ["status"] = TrainingJob.Queued };
        var statusAttempt = status["attempt"] is null ? 0 : Number(status["attempt"]);
        var state = Text(status["status"]) ?? TrainingJob.Queued;
        // As a worker takes a job (jobs.py, claimable): a queued job; or one whose worker died (its lease stale), running
        // or never written by the attempt that took it. No worker may be left to take such a job over and stop it.
        var takeable = statusAttempt == attempt
            ? state == TrainingJob.Queued || state == TrainingJob.Running && LeaseIsStale(folder, attempt)
            : LeaseIsStale(folder, attempt);
        if (takeable && TakeLease(folder, attempt + 1))
        {
            var now = Timestamp(time.GetUtcNow());
            status["status"] = TrainingJob.Cancelled;
            status["attempt"] = attempt + 1;
            status["worker"] = "service";
            status["finishedAt"] = now;
            status["estimatedFinishAt"] = null;
            status["heartbeatAt"] = now;
            status["updatedAt"] = now;
            WriteAtomically(Path.Combine(folder, StatusFile), status);
            return new CancelOutcome(Get(id), false);
        }
        // Another caller took the next attempt a moment ago: a worker starting it, or another cancel about to write
        // "cancelled". Its status is read again for a moment, so a cancel that lost that race does not answer "queued".
        job = Get(id);
        for (var wait = 0; wait < 50 && job.Status == TrainingJob.Queued; wait++)
        {
            Thread.Sleep(10);
            job = Get(id);
        }
        return new CancelOutcome(job, !job.IsFinished);
    }

    /// <summary>
    /// Removes a finished job (succeeded, failed or cancelled) with its folder, the run folder inside it included; a
    /// queued or running job is refused, since a worker may be about to write into it. The folder is first renamed to a
    /// hidden name, so no reader (a worker looking for queued jobs above all) ever sees a job half removed.
    /// </summary>
    /// <returns>The job as it was.</returns>
    public TrainingJob Remove(string id) => Writing(id, () => RemoveJob(id));

    private TrainingJob RemoveJob(string id)
    {
        var job = Get(id);
        if (!job.IsFinished)
        {
            throw new ProblemException(ProblemCatalog.TrainingJobNotFinished, job.Status == TrainingJob.Queued
                ? $"Training job {id} is queued: cancel it first (DELETE /training/jobs/{id}), then remove it."
                : $"Training job {id} is running: cancel it first (DELETE /training/jobs/{id}), then remove it once its worker has stopped it (status cancelled).");
        }
        var removing = Path.Combine(Root, $"{RemovingPrefix}{id}-{Guid.NewGuid():N}");
        try
        {
            Directory.Move(Folder(id), removing);
        }
        catch (DirectoryNotFoundException)
        {
            throw NotFound(id);   // another remove was quicker
        }
        // The job is gone for every reader now: what follows only frees disk, and its failures are logged, not answered.
        try
        {
            // A rename keeps the folder's time: dated now, another service's sweep leaves it to this one.
            Directory.SetLastWriteTimeUtc(removing, time.GetUtcNow().UtcDateTime);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            // Then another service's sweep may delete it too: harmless.
        }
        DeleteRemoved(removing);
        SweepLeftovers(removing);
        logger.LogInformation("Removed training job {JobId} ({Status}, model {ModelName}) and its folder", id, job.Status, job.Name);
        return job;
    }

    /// <summary>
    /// A folder an earlier remove could not delete whole is tried again, so its disk comes back once it can; not one
    /// dated within the last minutes, which another service on the same folder may be deleting right now.
    /// </summary>
    private void SweepLeftovers(string current)
    {
        try
        {
            var settled = time.GetUtcNow().UtcDateTime - LeftoverAge;
            foreach (var leftover in Directory.EnumerateDirectories(Root, RemovingPrefix + "*")
                         .Where(path => path != current && Directory.GetLastWriteTimeUtc(path) < settled))
            {
                DeleteRemoved(leftover);
            }
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Looking for earlier removals' leftovers in {JobsRoot} failed: {Reason}", Root, error.Message);
        }
    }

    /// <summary>
    /// A change to the jobs folder (of job <paramref name="id"/>): a folder the service may not write or make (a file
    /// where a folder of its path should be) is a 503 naming it, not a fault; the job's folder vanishing meanwhile
    /// (removed by another call) is the job's 404.
    /// </summary>
    private T Writing<T>(string? id, Func<T> change)
    {
        try
        {
            return change();
        }
        catch (Exception error) when (id is not null && error is FileNotFoundException or DirectoryNotFoundException)
        {
            throw NotFound(id);
        }
        catch (Exception error) when (error is UnauthorizedAccessException or IOException)
        {
            logger.LogWarning("The jobs folder {JobsRoot} cannot be written: {Reason}", Root, error.Message);
            throw new ProblemException(ProblemCatalog.TrainingFolderUnavailable, $"The jobs folder {Root} cannot be written ({error.Message}).");
        }
    }

    private void DeleteRemoved(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            // The job is gone for every reader already; only disk is left, so this is said, not answered as an error.
            logger.LogWarning("The removed training job's folder {Folder} could not be deleted whole ({Reason}); it is tried again at the next removal, or delete it by hand",
                folder, error.Message);
        }
    }

    private string Folder(string id) => Path.Combine(Root, id);

    /// <summary>A job of the listing; one that cannot be read for a reason nobody foresaw is left out with a warning, not the whole list.</summary>
    private TrainingJob? TryReadListed(string id)
    {
        try
        {
            return TryRead(id);
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            logger.LogWarning(error, "Training job {JobId} cannot be read and is left out of the list", id);
            return null;
        }
    }

    private TrainingJob? TryRead(string id)
    {
        if (!JobId().IsMatch(id)) return null;
        var folder = Folder(id);
        // Any folder with a job.json is a job (TRAINING_JOBS.md): one that cannot be read as an object is listed with
        // empty fields, so it can be seen and removed (its worker ends it failed, saying why).
        JsonObject request;
        try
        {
            request = ReadObject(Path.Combine(folder, JobFile)) ?? [];
        }
        catch (Exception error) when (error is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or JsonException)
        {
            request = [];
        }
        // Other programs write these files too (TRAINING_JOBS.md): a field of the wrong type reads as absent, never as a fault.
        var status = ReadStatus(folder) ?? new JsonObject { ["status"] = TrainingJob.Queued };
        var progress = status["progress"] as JsonObject;
        // A status no worker knows ("paused") is never taken and never ends: it reads as failed, saying so, so that it
        // can be removed (and its events stream ends).
        var state = Text(status["status"]) ?? TrainingJob.Queued;
        var failure = Text(status["error"]);
        if (!TrainingJob.States.Contains(state))
        {
            failure ??= $"its status.json says status '{state}', which no worker knows";
            state = TrainingJob.Failed;
        }
        return new TrainingJob(
            id, Text(request["name"]) ?? "", Text(request["preset"]) ?? "", Text(request["dataset"]), Text(request["data"]),
            request["options"] is JsonObject given ? (JsonObject)given.DeepClone() : [],
            state,
            Number(status["attempt"]) is { } attempt ? (int)attempt : 0,
            progress is null ? null : new TrainingProgress(Text(progress["stage"]), (int)(Number(progress["epoch"]) ?? 0),
                (int)(Number(progress["epochs"]) ?? 0), Number(progress["fraction"]) ?? 0,
                Number(progress["imagesChecked"]) is { } checkedImages ? (int)checkedImages : null,
                Number(progress["imagesToCheck"]) is { } imagesToCheck ? (int)imagesToCheck : null),
            (status["metrics"] as JsonObject)?.Where(m => Number(m.Value) is not null).ToDictionary(m => m.Key, m => Number(m.Value)!.Value),
            (status["history"] as JsonArray ?? []).OfType<JsonObject>().Select(e => new TrainingEpoch(
                (int)(Number(e["epoch"]) ?? 0), Text(e["phase"]), Number(e["trainAccuracy"]), Number(e["testAccuracy"]))).ToArray(),
            Text(status["publishedVersion"]), failure,
            (status["warnings"] as JsonArray ?? []).Select(Text).OfType<string>()
                .Concat(NotServedWarning(state, Text(request["name"]), Text(status["publishedVersion"]))).ToArray(),
            File.Exists(Path.Combine(folder, CancelFile)),
            Time(request["createdAt"]) ?? Directory.GetCreationTimeUtc(folder),
            Time(status["startedAt"]), Time(status["finishedAt"]), Time(status["estimatedFinishAt"]), Time(status["heartbeatAt"]),
            Number(status["resumedFromEpoch"]) is { } resumed ? (int)resumed : null, Text(status["worker"]));
    }

    /// <summary>
    /// A succeeded job whose version is not in this service's model root was published by a worker whose --models names
    /// another folder (or the version was removed since): it succeeded, but nothing here serves it, which its answer says.
    /// Bundles are renamed into place before a job is marked succeeded, so a missing folder is never one still arriving.
    /// </summary>
    private IEnumerable<string> NotServedWarning(string state, string? name, string? version)
    {
        if (state != TrainingJob.Succeeded || string.IsNullOrEmpty(name) || string.IsNullOrEmpty(version)
            || Directory.Exists(Path.Combine(models.Root, name, version)))
        {
            yield break;
        }
        yield return $"{name}@{version} is not in this service's model root ({models.Root}), so this service does not serve it: " +
                     "the worker published into another folder (its --models must name this root), or the version was removed since";
    }

    private static JsonObject? ReadStatus(string folder)
    {
        try
        {
            return ReadObject(Path.Combine(folder, StatusFile));
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// A job file's JSON object (null when it holds another JSON value), read as Python's json module reads what the
    /// workers write, and whatever else another program left there: a key given twice keeps its last value, and a string
    /// that is not whole UTF-16 (a lone surrogate) or a number beyond a double's range reads as absent. JsonNode would
    /// throw for each when the field is first read, or when the answer holding it is written.
    /// </summary>
    private static JsonObject? ReadObject(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 });
        return Tolerant(document.RootElement) as JsonObject;

        static JsonNode? Tolerant(JsonElement element)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    var result = new JsonObject();
                    foreach (var property in element.EnumerateObject())
                    {
                        var value = Tolerant(property.Value);
                        if (value is null && property.Value.ValueKind != JsonValueKind.Null) result.Remove(property.Name);
                        else result[property.Name] = value;
                    }
                    return result;
                case JsonValueKind.Array:
                    var array = new JsonArray();
                    foreach (var item in element.EnumerateArray()) array.Add(Tolerant(item));
                    return array;
                case JsonValueKind.String:
                    try
                    {
                        return JsonValue.Create(element.GetString());
                    }
                    catch (InvalidOperationException)
                    {
                        return null;   // not whole UTF-16
                    }
                case JsonValueKind.Number:
                    return element.TryGetDouble(out var number) && double.IsFinite(number) ? JsonValue.Create(element.Clone()) : null;
                case JsonValueKind.True or JsonValueKind.False:
                    return JsonValue.Create(element.GetBoolean());
                default:
                    return null;
            }
        }
    }

    private static string? Text(JsonNode? node) => node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static double? Number(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.Number ? value.GetValue<double>() : null;

    private static DateTimeOffset? Time(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<string>(out var text) && DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal, out var moment) ? moment : null;

    private static string Timestamp(DateTimeOffset moment) => moment.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static int CurrentAttempt(string folder) =>
        Directory.EnumerateFiles(folder, "lease-*").Select(Path.GetFileName)
            .Select(name => LeaseName().Match(name!)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .DefaultIfEmpty(0).Max();

    private bool LeaseIsStale(string folder, int attempt)
    {
        var lease = new FileInfo(Path.Combine(folder, $"lease-{attempt:D6}"));
        return attempt > 0 && lease.Exists && time.GetUtcNow().UtcDateTime - lease.LastWriteTimeUtc > TimeSpan.FromSeconds(_options.StaleAfterSeconds);
    }

    /// <summary>Creates the lease file of <paramref name="attempt"/> (O_CREAT | O_EXCL); false when someone has it.</summary>
    private bool TakeLease(string folder, int attempt)
    {
        try
        {
            using var lease = new FileStream(Path.Combine(folder, $"lease-{attempt:D6}"), FileMode.CreateNew, FileAccess.Write);
            lease.Write(Encoding.UTF8.GetBytes($"{{\"owner\": \"service\", \"takenAt\": \"{Timestamp(time.GetUtcNow())}\"}}"));
            return true;
        }
        catch (IOException) when (File.Exists(Path.Combine(folder, $"lease-{attempt:D6}")))
        {
            return false;
        }
    }

    /// <summary>Readers see the old file or the whole new one: written beside, flushed, renamed over.</summary>
    private static void WriteAtomically(string path, JsonNode value)
    {
        var temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.service-{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(Encoding.UTF8.GetBytes(value.ToJsonString(Json)));
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static ProblemException NotFound(string id) =>
        new(ProblemCatalog.TrainingJobNotFound, $"There is no training job '{id}'.");

    /// <summary>Job ids are folder names: the trainer's jobs.py accepts the same.</summary>
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\z")]
    private static partial Regex JobId();

    [GeneratedRegex(@"^lease-(\d{6})\z")]
    private static partial Regex LeaseName();
}
