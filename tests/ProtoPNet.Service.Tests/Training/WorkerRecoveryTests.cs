using ProtoPNet.Tests.Shared;

namespace ProtoPNet.Service.Tests.Training;

/// <summary>
/// A job outlives the workers that run it: SIGTERM puts it back in the queue at the next batch, a worker killed outright
/// leaves a lease without heartbeat that another worker takes over; each time the next worker resumes from the last
/// checkpoint, and the job still publishes exactly one version. A jobs folder of its own, so no other worker interferes.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class WorkerRecoveryTests(TrainingFixture fixture)
{
    [Fact]
    public async Task A_job_survives_sigterm_and_sigkill_of_its_workers_and_resumes_from_its_checkpoints()
    {
        await using var service = new TrainingService(fixture.TemporaryFolder("recovery"));
        var options = new { epochs = 8, pushEvery = 0, warmEpochs = 1, noBaseline = true, syntheticTrainPerClass = 60, calibrationHoldout = 0, syntheticTestPerClass = 10, examples = 1, threads = 1 };
        var id = (await service.SubmitAsync("recovered", options)).GetProperty("id").GetString()!;

        // The next two workers start now, so that each is ready when it is needed (a worker takes a few seconds to start).
        using var first = TrainingWorker.Start(service.Jobs, service.Models, staleAfterSeconds: 3);
        await service.WaitForAsync(id, j => j.GetProperty("attempt").GetInt32() == 1 && TrainingService.EpochsDone(j) >= 1, 90, () => first.Output);
        using var second = TrainingWorker.Start(service.Jobs, service.Models, staleAfterSeconds: 3);
        using var third = TrainingWorker.Start(service.Jobs, service.Models, staleAfterSeconds: 3);

        // SIGTERM after the first epoch: the worker stops at its next batch, puts the job back in the queue and exits cleanly.
        first.Terminate();
        Assert.True(first.WaitForExit(TimeSpan.FromSeconds(30)), first.Output);
        Assert.True(first.ExitCode == 0, first.Output);
        Assert.Contains("put back in the queue", first.Output);
        // Its last checkpoint is that of the last epoch it logged (each epoch's line is followed by its checkpoint). Not
        // the newest file in the folder: the next worker may have taken the job and written more by now.
        var checkpointed = System.Text.RegularExpressions.Regex.Matches(first.Output, @"epoch (\d+)/8 ")
            .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).Max();
        Assert.InRange(checkpointed, 1, 7);

        // Another worker takes it (attempt 2) and resumes from that checkpoint; SIGKILL it one epoch later, mid-job.
        var resumed = await service.WaitForAsync(id, j => j.GetProperty("attempt").GetInt32() == 2
            && j.GetProperty("resumedFromEpoch").ValueKind == System.Text.Json.JsonValueKind.Number
            && TrainingService.EpochsDone(j) > j.GetProperty("resumedFromEpoch").GetInt32(), 90, () => second.Output, () => third.Output);
        var resumedAt = resumed.GetProperty("resumedFromEpoch").GetInt32();
        Assert.Equal(checkpointed, resumedAt);
        var resumer = second.Output.Contains("resuming from", StringComparison.Ordinal) ? second : third;
        var survivor = ReferenceEquals(resumer, second) ? third : second;
        resumer.KillHard();
        var orphaned = await service.GetAsync(id);
        var killedAfter = TrainingService.EpochsDone(orphaned);
        Assert.Equal("running", TrainingService.Status(orphaned));
        Assert.True(killedAfter < 8, "the job finished before its worker was killed: make it longer");

        // The other worker sees the lease go stale (3 s without a heartbeat), takes the job over and finishes it from the last checkpoint.
        var done = await service.WaitForAsync(id, j => TrainingService.Status(j) is "succeeded" or "failed", 120, () => survivor.Output);
        Assert.True(TrainingService.Status(done) == "succeeded", survivor.Output);
        Assert.Equal(3, done.GetProperty("attempt").GetInt32());
        Assert.True(done.GetProperty("resumedFromEpoch").GetInt32() >= killedAfter && killedAfter > resumedAt,
            $"resumed from epoch {done.GetProperty("resumedFromEpoch")} after a kill at {killedAfter}");
        Assert.Equal(Enumerable.Range(1, 8), done.GetProperty("history").EnumerateArray().Select(e => e.GetProperty("epoch").GetInt32()));
        Assert.Single(service.Versions("recovered"));
    }
}
