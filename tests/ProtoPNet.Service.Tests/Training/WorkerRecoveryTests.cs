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
        var options = new { epochs = 8, pushEvery = 0, warmEpochs = 1, noBaseline = true, syntheticTrainPerClass = 60, syntheticTestPerClass = 10, examples = 1, threads = 1 };
        var id = (await service.SubmitAsync("recovered", options)).GetProperty("id").GetString()!;

        // SIGTERM after the first epoch: the worker stops at its next batch, requeues the job and exits cleanly.
        using (var first = TrainingWorker.Start(service.Jobs, service.Models))
        {
            await service.WaitForAsync(id, j => TrainingService.EpochsDone(j) >= 1, 90, () => first.Output);
            first.Terminate();
            Assert.True(first.WaitForExit(TimeSpan.FromSeconds(30)), first.Output);
            Assert.True(first.ExitCode == 0, first.Output);
        }
        var requeued = await service.GetAsync(id);
        Assert.Equal("queued", TrainingService.Status(requeued));
        Assert.Equal(1, requeued.GetProperty("attempt").GetInt32());
        var checkpointed = TrainingService.EpochsDone(requeued);
        Assert.InRange(checkpointed, 1, 7);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(service.Jobs, id, "run", "checkpoints"), "epoch-*.pt"));

        // The next worker resumes from that checkpoint; SIGKILL it a little later, mid-job.
        int resumedAt, killedAfter;
        using (var second = TrainingWorker.Start(service.Jobs, service.Models))
        {
            var resumed = await service.WaitForAsync(id, j => j.GetProperty("attempt").GetInt32() == 2
                && j.GetProperty("resumedFromEpoch").ValueKind == System.Text.Json.JsonValueKind.Number
                && TrainingService.EpochsDone(j) > j.GetProperty("resumedFromEpoch").GetInt32(), 90, () => second.Output);
            resumedAt = resumed.GetProperty("resumedFromEpoch").GetInt32();
            Assert.Equal(checkpointed, resumedAt);
            second.KillHard();
            killedAfter = TrainingService.EpochsDone(await service.GetAsync(id));
            Assert.Contains("resuming from", second.Output);
        }
        var orphaned = await service.GetAsync(id);
        Assert.Equal("running", TrainingService.Status(orphaned));
        Assert.True(killedAfter < 8, "the job finished before its worker was killed: make it longer");

        // A replacement worker sees the lease go stale, takes the job over and finishes it from the last checkpoint.
        using var third = TrainingWorker.Start(service.Jobs, service.Models, staleAfterSeconds: 2);
        var done = await service.WaitForAsync(id, j => TrainingService.Status(j) is "succeeded" or "failed", 120, () => third.Output);
        Assert.True(TrainingService.Status(done) == "succeeded", third.Output);
        Assert.Equal(3, done.GetProperty("attempt").GetInt32());
        Assert.True(done.GetProperty("resumedFromEpoch").GetInt32() >= killedAfter && killedAfter > resumedAt,
            $"resumed from epoch {done.GetProperty("resumedFromEpoch")} after a kill at {killedAfter}");
        Assert.Equal(Enumerable.Range(1, 8), done.GetProperty("history").EnumerateArray().Select(e => e.GetProperty("epoch").GetInt32()));
        Assert.Single(service.Versions("recovered"));
    }
}
