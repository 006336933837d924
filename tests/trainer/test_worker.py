"""The training worker and its jobs folder: taking a job exactly once, status writing, taking over a job whose
worker died, SIGTERM's requeue, cancelling, failing jobs, and the job options the service validates with."""
import json
import os
import re
import shutil
import threading
import time

import pytest

from protopnet_trainer.cli import build_parser, train_job_from_argv
from protopnet_trainer.job_options import JobOptionError, JobOptions, check_model_name
from protopnet_trainer.jobs import JobFolder, JobQueue, Lease, claimable
from protopnet_trainer.worker import JobStatus, ShutdownSignal, Worker, WorkerSettings, resolve_data

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
COMMITTED_OPTIONS = os.path.join(REPO, "src", "ProtoPNet.Service", "Training", "trainer-options.json")

# The tiny model of conftest.tiny_config, as a job's options.
TINY = {"imageSize": 16, "syntheticClasses": 3, "syntheticTrainPerClass": 12, "syntheticTestPerClass": 4,
        "smallCnnWidths": [8, 16], "smallCnnConvs": 1, "prototypeDim": 8, "prototypesPerClass": 2,
        "noAugment": True, "epochs": 3, "warmEpochs": 1, "pushStart": 1, "pushEvery": 1, "lastLayerIterations": 2,
        "batchSize": 8, "testBatchSize": 16, "pushBatchSize": 16, "device": "cpu", "seed": 3, "noBaseline": True, "calibrationHoldout": 0,
        "examples": 2, "threads": 1}


@pytest.fixture(scope="module")
def options():
    return JobOptions.from_parser(build_parser())


def queue_job(root, job_id, name="tiny", options=None, **fields):
    """A job as the service queues it: the folder is written aside, then renamed into place."""
    request = {"format": "protopnet-training-job/1", "id": job_id, "name": name, "preset": "smoke",
               "dataset": None, "data": None, "options": dict(TINY if options is None else options),
               "createdAt": "2026-11-30T00:00:00.000Z", **fields}
    staging = os.path.join(root, f".staging-{job_id}")
    os.makedirs(staging)
    with open(os.path.join(staging, "job.json"), "w") as f:
        json.dump(request, f)
    with open(os.path.join(staging, "status.json"), "w") as f:
        json.dump({"id": job_id, "status": "queued", "attempt": 0}, f)
    os.rename(staging, os.path.join(root, job_id))
    return JobFolder(os.path.join(root, job_id))


def make_worker(tmp_path, options, log=None, shutdown=None, **settings):
    values = dict(jobs=str(tmp_path / "jobs"), models=str(tmp_path / "models"), poll=0.05, heartbeat=0.2,
                  stale_after=5.0, once=True)
    values.update(settings)
    return Worker(WorkerSettings(**values), options, train_job_from_argv, shutdown or ShutdownSignal(),
                  log=log or (lambda line: None))


def versions(tmp_path, name):
    family = tmp_path / "models" / name
    return sorted(p.name for p in family.iterdir() if not p.name.startswith(".")) if family.is_dir() else []


# ---------------------------------------------------------------------------------------------- claiming

def test_racing_claimers_take_each_job_exactly_once(tmp_path):
    root = tmp_path / "jobs"
    root.mkdir()
    for i in range(6):
        queue_job(str(root), f"job-{i}")
    queue = JobQueue(str(root), stale_after=60)
    taken, start = [], threading.Barrier(8)

    def claimer(n):
        start.wait()
        for _ in range(7):   # at most 6 jobs to take: a claimer that takes a seventh has taken one twice
            lease = queue.claim(f"claimer-{n}")
            if lease is None:
                return
            taken.append((lease.folder.id, lease.attempt))
            # A real worker marks it running at once (JobStatus); until then the job still reads "queued", and
            # only the lease's O_EXCL keeps a second claimer out.
            lease.folder.write_status({"id": lease.folder.id, "status": "running", "attempt": lease.attempt})

    threads = [threading.Thread(target=claimer, args=(n,), daemon=True) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == [(f"job-{i}", 1) for i in range(6)]
    assert all(JobFolder(str(root / f"job-{i}")).current_attempt() == 1 for i in range(6))


def test_a_running_job_is_taken_over_only_once_its_lease_is_stale(tmp_path):
    folder = queue_job(str(tmp_path), "job-1")
    assert folder.take_lease(1, "first")
    folder.write_status({"id": "job-1", "status": "running", "attempt": 1})
    assert not claimable(folder, 1, folder.status(), stale_after=30)
    assert JobQueue(str(tmp_path), stale_after=30).claim("second") is None

    old = time.time() - 60
    os.utime(folder.lease_path(1), (old, old))          # its worker stopped beating a minute ago
    lease = JobQueue(str(tmp_path), stale_after=30).claim("second")
    assert lease is not None and lease.attempt == 2
    assert Lease(folder, 1, "first").lost() and not lease.lost()
    assert not folder.take_lease(2, "third")            # an attempt is never given twice


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_finished_jobs_are_never_taken(tmp_path, state):
    folder = queue_job(str(tmp_path), "job-1")
    folder.write_status({"id": "job-1", "status": state, "attempt": 1})
    assert JobQueue(str(tmp_path), stale_after=0).claim("w") is None


def test_finished_jobs_are_read_once_and_then_passed_over(tmp_path, monkeypatch):
    """An idle worker looks at the queue every --poll: a job it has seen finished is not read again (a folder of
    thousands of finished jobs cost a core's tenth), and a removed one is forgotten."""
    for n in range(5):
        folder = queue_job(str(tmp_path), f"job-{n}")
        assert folder.take_lease(1, "w")
        folder.write_status({"id": f"job-{n}", "status": "succeeded", "attempt": 1})
    reads = []
    status = JobFolder.status
    monkeypatch.setattr(JobFolder, "status", lambda self: reads.append(self.id) or status(self))
    queue = JobQueue(str(tmp_path), stale_after=60)
    assert queue.claim("w") is None and len(reads) == 5
    assert queue.claim("w") is None and len(reads) == 5
    queue_job(str(tmp_path), "job-9")
    assert queue.claim("w").folder.id == "job-9" and reads[5:] == ["job-9"]


def test_status_is_written_whole_and_not_after_the_lease_is_lost(tmp_path):
    folder = queue_job(str(tmp_path), "job-1")
    assert folder.take_lease(1, "w")
    lease = Lease(folder, 1, "w")
    status = JobStatus(lease, "w")
    status.write(progress={"stage": "joint", "epoch": 2, "epochs": 3, "fraction": 0.5})
    written = folder.status()
    assert written["status"] == "running" and written["attempt"] == 1 and written["progress"]["epoch"] == 2
    assert written["heartbeatAt"] and written["startedAt"]
    assert [n for n in os.listdir(folder.path) if n.endswith(".tmp")] == []

    assert folder.take_lease(2, "other")                # taken over
    status.write(progress={"stage": "joint", "epoch": 3, "epochs": 3, "fraction": 0.9})
    assert folder.status()["progress"]["epoch"] == 2    # the lost holder writes nothing more


def test_a_status_with_a_diverged_metric_is_still_json(tmp_path):
    folder = queue_job(str(tmp_path), "job-1")
    assert folder.take_lease(1, "w")
    status = JobStatus(Lease(folder, 1, "w"), "w")
    status.write(metrics={"loss": float("nan"), "crossEntropy": float("inf"), "trainAccuracy": 0.5},
                 history=[{"epoch": 1, "trainAccuracy": float("-inf")}])

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    with open(os.path.join(folder.path, "status.json"), encoding="utf-8") as f:
        written = json.load(f, parse_constant=refuse)     # as strict as the service's reader
    assert written["metrics"] == {"loss": None, "crossEntropy": None, "trainAccuracy": 0.5}
    assert written["history"] == [{"epoch": 1, "trainAccuracy": None}] and written["status"] == "running"


# ---------------------------------------------------------------------------------------------- running jobs

def test_a_job_runs_to_a_published_version_with_progress_per_stage(tmp_path, options, monkeypatch):
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    seen = []
    write = JobFolder.write_status

    def recording_write(self, status):   # the real write, each status kept as it was written
        seen.append(json.loads(json.dumps(status.get("progress"))))
        write(self, status)

    monkeypatch.setattr(JobFolder, "write_status", recording_write)
    make_worker(tmp_path, options).run()
    status = folder.status()
    assert status["status"] == "succeeded", status
    assert status["publishedVersion"] == versions(tmp_path, "tiny")[0]
    assert [h["epoch"] for h in status["history"]] == [1, 2, 3]
    assert status["progress"]["fraction"] == 1.0 and status["finishedAt"] and status["error"] is None
    stages = {p["stage"] for p in seen if p}
    assert {"starting", "warm-up", "joint", "push", "last-layer", "export"} <= stages
    fractions = [p["fraction"] for p in seen if p]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    assert {0.25, 0.5, 0.75} <= set(fractions)     # 3 epochs and the export, a quarter each
    # Only the final checkpoint is left: the epoch checkpoints resume an unfinished job, and this one will not resume.
    assert os.listdir(os.path.join(folder.path, "run", "checkpoints")) == ["final.pt"]


def test_a_job_whose_worker_died_after_publishing_ends_with_that_version(tmp_path, options):
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    make_worker(tmp_path, options).run()
    [published] = versions(tmp_path, "tiny")
    # As a worker killed between the rename into place and `succeeded` leaves it: running, its lease without heartbeat.
    status = folder.status()
    assert folder.take_lease(2, "dead")
    folder.write_status({**status, "status": "running", "attempt": 2, "publishedVersion": None, "finishedAt": None})
    old = time.time() - 60
    os.utime(folder.lease_path(2), (old, old))

    lines = []
    make_worker(tmp_path, options, log=lines.append).run()
    status = folder.status()
    assert status["status"] == "succeeded" and status["attempt"] == 3 and status["publishedVersion"] == published
    assert versions(tmp_path, "tiny") == [published]          # neither trained nor published again
    assert any("nothing to resume" in line for line in lines), lines
    assert not any("epoch 1/3" in line for line in lines), lines


def test_sigterm_requeues_and_a_dead_workers_job_resumes_from_its_checkpoint(tmp_path, options, monkeypatch):
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    shutdown = ShutdownSignal()

    def log(line):   # SIGTERM's handler sets this event; here it comes after the first epoch
        if "epoch 1/3" in line:
            shutdown.event.set()

    make_worker(tmp_path, options, log=log, shutdown=shutdown).run()
    status = folder.status()
    assert status["status"] == "queued" and status["attempt"] == 1
    assert [h["epoch"] for h in status["history"]] == [1]
    assert os.listdir(os.path.join(folder.path, "run", "checkpoints")) == ["epoch-001.pt"]
    assert versions(tmp_path, "tiny") == []

    # A second worker took it and died without a trace but its lease: no heartbeat for a minute.
    assert folder.take_lease(2, "dead")
    folder.write_status({**status, "status": "running", "attempt": 2})
    old = time.time() - 60
    os.utime(folder.lease_path(2), (old, old))

    # Every status the resumed attempt writes keeps what the first one did: its history and its share of the work.
    seen = []
    write = JobFolder.write_status

    def recording_write(self, written):
        seen.append(json.loads(json.dumps(written)))
        write(self, written)

    monkeypatch.setattr(JobFolder, "write_status", recording_write)
    lines = []
    make_worker(tmp_path, options, log=lines.append, stale_after=5.0).run()
    resumed = [s for s in seen if s.get("attempt") == 3]
    assert resumed and all([h["epoch"] for h in s["history"]][:1] == [1] for s in resumed), [s["history"] for s in resumed]
    fractions = [s["progress"]["fraction"] for s in resumed]
    assert fractions == sorted(fractions) and fractions[0] >= status["progress"]["fraction"] > 0, fractions
    status = folder.status()
    assert status["status"] == "succeeded" and status["attempt"] == 3
    assert status["resumedFromEpoch"] == 1
    assert any("resuming from" in line and "epoch-001.pt" in line for line in lines)
    assert [h["epoch"] for h in status["history"]] == [1, 2, 3]
    assert len(versions(tmp_path, "tiny")) == 1


def test_a_cancelled_job_stops_between_batches_and_publishes_nothing(tmp_path, options):
    running = queue_job(str(tmp_path / "jobs"), "job-1", name="running")
    queued = queue_job(str(tmp_path / "jobs"), "job-2", name="queued")
    queued.request_cancel()

    def log(line):
        if "epoch 1/3" in line:
            running.request_cancel()

    make_worker(tmp_path, options, log=log).run()
    assert running.status()["status"] == "cancelled" and len(running.status()["history"]) == 1
    assert queued.status()["status"] == "cancelled" and not queued.status()["history"]
    assert not os.path.exists(os.path.join(queued.path, "run"))     # never started
    assert versions(tmp_path, "running") == [] and versions(tmp_path, "queued") == []


def image_folder_job(tmp_path, job_id, name, per_class=6, **options):
    """A job on a small image folder under the data root (3 classes of `per_class` 16x16 PNGs in train/ and test/)."""
    from PIL import Image
    folder = tmp_path / "data" / name
    for split in ("train", "test"):
        for label in range(3):
            (folder / split / f"c{label}").mkdir(parents=True, exist_ok=True)
            for n in range(per_class):
                Image.new("RGB", (16, 16), (80 * label, 10 * n, 0)).save(folder / split / f"c{label}" / f"{n}.png")
    job_options = {**TINY, "epochs": 1, "warmEpochs": 0, "pushStart": 0, **options}
    for key in ("syntheticClasses", "syntheticTrainPerClass", "syntheticTestPerClass"):
        job_options.pop(key)
    return queue_job(str(tmp_path / "jobs"), job_id, name=name, dataset="imagefolder", data=name, options=job_options), folder


def test_an_image_folder_jobs_check_is_reported_and_its_warnings_are_in_its_status(tmp_path, options, monkeypatch):
    job, folder = image_folder_job(tmp_path, "job-1", "photos", skipUnreadableImages=True)
    (folder / "train" / "c1" / "5.png").write_bytes(b"not a png")
    (folder / "train" / "c2" / "._0.png").write_bytes(b"\x00\x05\x16\x07" + bytes(40))   # a Mac's sidecar file
    seen = []
    write = JobFolder.write_status

    def recording_write(self, status):
        seen.append(json.loads(json.dumps(status.get("progress"))))
        write(self, status)

    monkeypatch.setattr(JobFolder, "write_status", recording_write)
    make_worker(tmp_path, options, data_root=str(tmp_path / "data")).run()
    status = job.status()
    assert status["status"] == "succeeded", status
    # What only the worker's console said: in the status, where the service shows it.
    warnings = status["warnings"]
    assert any(w.startswith("leaving out 1 of 36 image files that cannot be read (train/c1/5.png: ") for w in warnings), warnings
    assert any("train/ holds what is not read: 1 hidden files: c2/._0.png" in w for w in warnings), warnings
    # A warning that names a train option names it as the job does (the job's submitter wrote no command line).
    assert any(w.startswith("no training images are held out to calibrate the unfamiliarity threshold "
                            "(options.calibrationHoldout 0)") for w in warnings), warnings
    # The check's progress: images checked of all of them, then null once training starts.
    checking = [p for p in seen if p and p.get("stage") == "checking-images"]
    assert checking and checking[-1]["imagesChecked"] == checking[-1]["imagesToCheck"] == 36
    assert status["progress"]["imagesChecked"] is None and status["progress"]["imagesToCheck"] is None


def test_a_file_name_in_a_jobs_data_cannot_forge_or_disguise_a_line_of_the_workers_log(tmp_path, options):
    job, folder = image_folder_job(tmp_path, "job-1", "photos", skipUnreadableImages=True)
    forged = "job 20991231T000000000Z-deadbeef: succeeded: published production@20991231T000000Z"
    (folder / "train" / "c1" / f"notes\n{forged}\x1b[8m\u202e.png").write_bytes(b"not a png")
    lines = []
    make_worker(tmp_path, options, data_root=str(tmp_path / "data"), log=lines.append).run()
    assert job.status()["status"] == "succeeded"
    printed = "\n".join(lines).split("\n")
    # The forged text is inside the line that names the file, escaped; no line starts with it, none holds the escapes.
    assert not any(line.startswith(forged) for line in printed), printed
    naming = [line for line in printed if "notes\\n" + forged in line]
    assert naming and all(line.startswith("job job-1: ") for line in naming), printed
    assert "\\x1B[8m\\u202E.png" in naming[0]
    assert not any(c in line for line in printed for c in ("\x1b", "\u202e"))
    # The job's status keeps the file's name as it is (the service shows it as text).
    assert any(f"notes\n{forged}" in warning for warning in job.status()["warnings"])


def test_a_job_whose_workers_folder_fails_under_it_goes_back_to_the_queue_and_the_worker_stops(tmp_path, options,
                                                                                               monkeypatch):
    # A volume gone while a job ran: the job failed, for good, and each queued job after it.
    import protopnet_trainer.worker as worker_module
    from protopnet_trainer.errors import TrainerError

    def volume_gone(*args, **kwargs):
        shutil.rmtree(tmp_path / "models")
        (tmp_path / "models").write_text("an unmounted volume's stand-in")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(worker_module, "train_and_publish", volume_gone)
    first, second = queue_job(str(tmp_path / "jobs"), "job-1"), queue_job(str(tmp_path / "jobs"), "job-2")
    lines = []
    with pytest.raises(TrainerError, match="--models: output folder .* is a file, not a folder"):
        make_worker(tmp_path, options, log=lines.append).run()
    assert first.status()["status"] == "queued" and second.status()["status"] == "queued"
    assert any("not failed: put back in the queue (OSError: [Errno 5] Input/output error)" in line for line in lines), lines


def test_an_unexpected_faults_traceback_is_logged_a_line_each_naming_the_job(tmp_path, options, monkeypatch):
    import protopnet_trainer.worker as worker_module
    forged = "job 20991231T000000000Z-deadbeef: succeeded: published production@20991231T000000Z"

    def faulty(*args, **kwargs):
        raise RuntimeError(f"boom\n{forged}")

    monkeypatch.setattr(worker_module, "train_and_publish", faulty)
    job = queue_job(str(tmp_path / "jobs"), "job-1")
    lines = []
    make_worker(tmp_path, options, log=lines.append).run()
    status = job.status()
    assert status["status"] == "failed" and status["error"] == "RuntimeError: boom"
    printed = "\n".join(lines).split("\n")
    # The traceback, through the error's last line (the forged text, named as the job's), then the job's failure.
    start, end = printed.index("job job-1: Traceback (most recent call last):"), printed.index(f"job job-1: {forged}")
    assert printed[end - 1] == "job job-1: RuntimeError: boom" and any("in faulty" in line for line in printed[start:end])
    assert all(line.startswith("job job-1: ") for line in printed[start:end]), printed
    assert printed[end + 1] == "job job-1: failed: RuntimeError: boom"


def test_a_failed_jobs_error_names_options_as_a_job_names_them(tmp_path, options):
    """Its submitter wrote a job, not a command line: --skip-unreadable-images is options.skipUnreadableImages there."""
    job, folder = image_folder_job(tmp_path, "job-1", "photos")
    (folder / "test" / "c0" / "1.png").write_bytes(b"not a png")
    make_worker(tmp_path, options, data_root=str(tmp_path / "data")).run()
    status = job.status()
    assert status["status"] == "failed"
    assert status["error"].startswith("1 of 36 image files cannot be read (test/c0/1.png: ")
    assert status["error"].endswith("or pass options.skipUnreadableImages to leave them out")


def test_a_job_cancelled_while_its_images_are_checked_stops_there(tmp_path, options, monkeypatch):
    from protopnet_trainer.data import FileImages
    job, _ = image_folder_job(tmp_path, "job-1", "photos", per_class=40)
    write = JobFolder.write_status
    decoded = []
    load = FileImages.__call__

    def slow_load(self, index):   # 5 ms an image: the 240 take over half a second, a stop comes within the first few
        decoded.append(index)
        time.sleep(0.005)
        return load(self, index)

    monkeypatch.setattr(FileImages, "__call__", slow_load)

    def cancelling_write(self, status):   # cancelled as soon as the check has said it began
        write(self, status)
        if (status.get("progress") or {}).get("stage") == "checking-images":
            self.request_cancel()

    monkeypatch.setattr(JobFolder, "write_status", cancelling_write)
    make_worker(tmp_path, options, data_root=str(tmp_path / "data")).run()
    status = job.status()
    assert status["status"] == "cancelled", status
    # Stopped within the check (its first images), not after all 240 of them or at training's first batch.
    assert status["progress"]["stage"] == "checking-images" and status["progress"]["imagesChecked"] < 240
    assert not status["history"] and versions(tmp_path, "photos") == []
    # The rest were not even handed to the threads: a few ahead of the check, per thread.
    assert len(decoded) <= 20, f"{len(decoded)} of 240 images were decoded"


def test_a_failing_job_ends_failed_with_one_line_and_the_worker_goes_on(tmp_path, options):
    (tmp_path / "data" / "empty").mkdir(parents=True)
    bad_option = queue_job(str(tmp_path / "jobs"), "job-1", name="bad", options={"epochs": 0})
    no_images = queue_job(str(tmp_path / "jobs"), "job-2", name="empty", dataset="imagefolder", data="empty",
                          options={"epochs": 1})
    other_format = queue_job(str(tmp_path / "jobs"), "job-0", name="later", format="protopnet-training-job/2")
    good = queue_job(str(tmp_path / "jobs"), "job-3")
    make_worker(tmp_path, options, data_root=str(tmp_path / "data")).run()

    for folder, fragment in ((bad_option, "options.epochs: 0 is below the minimum 1"), (no_images, "empty"),
                             (other_format, 'format: is "protopnet-training-job/2"; this worker reads protopnet-training-job/1')):
        status = folder.status()
        assert status["status"] == "failed" and status["finishedAt"]
        assert fragment in status["error"] and "\n" not in status["error"]
    # The data is named as the job named it, not by the worker's path to it.
    assert no_images.status()["error"].startswith("imagefolder: empty ") and str(tmp_path) not in no_images.status()["error"]
    assert versions(tmp_path, "bad") == [] and versions(tmp_path, "empty") == [] and versions(tmp_path, "later") == []
    assert good.status()["status"] == "succeeded"


def test_a_worker_whose_job_was_taken_over_writes_nothing_more_into_the_run_folder(tmp_path, options):
    """Taken over between an epoch's last batch and its checkpoint: the checkpoint is not written (it would stand
    beside, or over, the new holder's), and the run stops there."""
    folder = queue_job(str(tmp_path / "jobs"), "job-1")

    def log(line):   # printed after the epoch's metrics, before its checkpoint
        if "epoch 2/3" in line:
            assert folder.take_lease(2, "the worker that took over")

    make_worker(tmp_path, options, log=log).run()
    assert os.listdir(os.path.join(folder.path, "run", "checkpoints")) == ["epoch-001.pt"]
    assert folder.status()["attempt"] == 1 and folder.status()["status"] == "running"   # the holder of 2 writes next
    assert versions(tmp_path, "tiny") == []


def test_a_worker_taken_over_during_its_export_neither_says_succeeded_nor_removes_checkpoints(tmp_path, options):
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    lines = []

    def log(line):
        lines.append(line)
        if ": published " in line:   # the export is done, the worker has not written its end yet
            assert folder.take_lease(2, "the worker that took over")

    make_worker(tmp_path, options, log=log).run()
    assert folder.status()["status"] == "running" and folder.status()["attempt"] == 1
    assert "epoch-003.pt" in os.listdir(os.path.join(folder.path, "run", "checkpoints"))   # the new holder's to drop
    assert any("another worker took this job over while it published" in line for line in lines), lines


def test_a_folder_that_cannot_be_taken_or_has_gone_does_not_stop_the_queue(tmp_path, options, monkeypatch):
    gone = queue_job(str(tmp_path / "jobs"), "job-0", name="gone")
    locked = queue_job(str(tmp_path / "jobs"), "job-1", name="locked")
    good = queue_job(str(tmp_path / "jobs"), "job-2")
    take, attempts = JobFolder.take_lease, JobFolder.current_attempt

    def take_lease(self, attempt, owner):   # as a folder this worker may not write (root ignores permissions)
        if self.id == locked.id:
            raise PermissionError(13, "Permission denied", self.lease_path(attempt))
        return take(self, attempt, owner)

    def current_attempt(self):   # as a folder removed between the listing and the look inside
        if self.id == gone.id:
            raise FileNotFoundError(2, "No such file or directory", self.path)
        return attempts(self)

    monkeypatch.setattr(JobFolder, "take_lease", take_lease)
    monkeypatch.setattr(JobFolder, "current_attempt", current_attempt)
    lines = []
    worker = make_worker(tmp_path, options, log=lines.append)
    worker.run()
    assert good.status()["status"] == "succeeded"
    assert locked.status()["status"] == "queued" and gone.status()["status"] == "queued"
    worker.run()   # told once, not at every look
    skipped = [line for line in lines if "skipped" in line]
    assert len(skipped) == 1 and "job-1" in skipped[0] and "Permission denied" in skipped[0], lines


def test_a_job_json_that_is_not_an_object_fails_its_job_saying_so(tmp_path, options):
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    with open(os.path.join(folder.path, "job.json"), "w") as f:
        f.write("[1, 2]")
    make_worker(tmp_path, options).run()
    assert folder.status()["status"] == "failed"
    assert "job.json cannot be read: it holds a JSON list, not an object" in folder.status()["error"]


@pytest.mark.parametrize("damage", [{"progress": [1, 2]}, {"progress": "abc"}, {"attempt": "0"}, {"attempt": None},
                                    {"history": {}, "metrics": 3, "startedAt": 5}])
def test_a_status_with_fields_of_the_wrong_type_is_still_run(tmp_path, options, damage):
    # A hand-edited or damaged status.json: its fields of the wrong type count as absent. It used to crash the
    # worker (and each worker that took the job over) or leave the job queued for good, unseen.
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    with open(os.path.join(folder.path, "status.json"), "w") as f:
        json.dump({"id": "job-1", "status": "queued", "attempt": 0, **damage}, f)
    later = queue_job(str(tmp_path / "jobs"), "job-2", name="later")
    make_worker(tmp_path, options).run()
    assert folder.status()["status"] == "succeeded"
    assert later.status()["status"] == "succeeded"


def test_run_folders_under_runs_go_once_their_job_is_removed(tmp_path, options):
    runs = tmp_path / "runs"
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    worker = make_worker(tmp_path, options, runs=str(runs))
    worker.run()
    assert folder.status()["status"] == "succeeded"
    assert (runs / "job-1" / "checkpoints" / "final.pt").is_file()
    (runs / "smoke" / "checkpoints").mkdir(parents=True)     # a `train` run of someone's, not a job's
    queue_job(str(tmp_path / "jobs"), "job-2", options={**TINY, "epochs": 0})   # fails at once: its run folder stays
    worker.run()
    assert (runs / "job-2").is_dir()

    # A run folder of a job of another jobs folder sharing --runs: never this worker's to remove.
    (runs / "job-9").mkdir()
    (runs / "job-9" / ".protopnet-job").write_text(json.dumps({"job": "job-9", "jobs": str(tmp_path / "other-jobs")}))

    shutil.rmtree(folder.path)      # the finished job removed (DELETE /training/jobs/{id}/folder)
    worker.sweep_runs(now=time.time())   # within a minute of the last sweep: nothing yet
    assert (runs / "job-1").is_dir()
    worker.sweep_runs(now=time.time() + 61)
    assert sorted(p.name for p in runs.iterdir()) == ["job-2", "job-9", "smoke"]

    # A jobs folder that lists nothing (an unmounted volume looks so) removes nothing.
    shutil.rmtree(tmp_path / "jobs" / "job-2")
    worker.sweep_runs(now=time.time() + 200)
    assert (runs / "job-2").is_dir()


# ---------------------------------------------------------------------------------------------- job options

def test_the_services_copy_of_the_job_options_is_the_trainers(options):
    with open(COMMITTED_OPTIONS, encoding="utf-8") as f:
        committed = json.load(f)
    assert committed == options.document(), (
        "src/ProtoPNet.Service/Training/trainer-options.json is out of date: regenerate it with "
        "PYTHONPATH=src/trainer /usr/bin/python3 -m protopnet_trainer options --json > "
        "src/ProtoPNet.Service/Training/trainer-options.json")


def test_no_two_job_options_differ_only_in_case(options):
    # The service matches a job's option names ignoring case, as every name of its API, and keeps the trainer's.
    names = [option["name"] for option in options.document()["options"]]
    assert len({name.lower() for name in names}) == len(names)


def test_the_job_data_sets_are_the_trainers():
    from protopnet_trainer import datasets, job_options
    assert job_options.DATASETS == datasets.DATASETS


def test_the_job_folder_data_sets_are_those_without_a_default_folder(tmp_path):
    from protopnet_trainer import datasets, job_options
    from protopnet_trainer.config import GENERATED_DATASETS, TrainConfig
    from protopnet_trainer.errors import TrainerError
    for name in job_options.FOLDER_DATASETS:
        with pytest.raises(TrainerError, match="--data"):
            datasets.READERS[name](TrainConfig(dataset=name, data=None))
    # The others draw their images, or have a default folder (fashion-mnist's Debian package).
    assert set(datasets.DATASETS) - set(job_options.FOLDER_DATASETS) == {"fashion-mnist", *GENERATED_DATASETS}


def test_the_job_backbones_are_the_trainers():
    # job_options spells them out (trunks.py imports torch): the trainer's list is the truth.
    from protopnet_trainer import job_options, trunks
    assert job_options.CHOICES["--backbone"] == list(trunks.TRUNKS)


def test_job_options_are_the_train_commands_long_options_in_camel_case(options):
    assert options.by_name["lrAddOn"].option == "--lr-add-on"
    assert options.by_name["smallCnnWidths"].type == "integers"
    assert options.by_name["noBaseline"].type == "boolean"
    for excluded in ("models", "runDir", "resume", "baselineResult", "preset", "data"):
        assert excluded not in options.by_name
    words = options.argv({"epochs": 4, "lrTrunk": 0.001, "noBaseline": True, "augment": False,
                          "smallCnnWidths": [8, 16], "backbone": "small-cnn"})
    assert words == ["--epochs=4", "--lr-trunk=0.001", "--no-baseline", "--small-cnn-widths=8,16",
                     "--backbone=small-cnn"]
    args = build_parser().parse_args(["train", "--preset", "smoke", *words])
    assert args.epochs == 4 and args.joint_lr_trunk == 0.001 and args.small_cnn_widths == [8, 16]
    # One of a pair given false gives no word, so it contradicts nothing.
    assert options.argv({"withBaseline": True, "noBaseline": False}) == ["--with-baseline"]
    assert options.by_name["noBaseline"].setting == options.by_name["withBaseline"].setting == "with_baseline"


def test_every_value_in_range_reaches_the_trainer_as_given(options):
    """repr(-5e-05) is '-5e-05', which argparse would take for an option's name as a separate word."""
    for name in ("coefSep", "coefClst"):
        option = options.by_name[name]
        for value in (option.minimum, -5e-05, -1e-12, 0.0, 1e-12, option.maximum):
            if value is None or not option.minimum <= value <= option.maximum:
                continue
            args = build_parser().parse_args(["train", "--preset", "smoke", *options.argv({name: value})])
            assert getattr(args, option.option[2:].replace("-", "_")) == value, (name, value)


@pytest.mark.parametrize("bad, field, fragment", [
    ({"epoch": 3}, "options.epoch", "not an option"),
    ({"epochs": 0}, "options.epochs", "below the minimum 1"),
    ({"epochs": 1001}, "options.epochs", "above the maximum 1000"),
    ({"epochs": 2.5}, "options.epochs", "integer"),
    ({"epochs": "4"}, "options.epochs", "integer"),
    ({"lrTrunk": float("nan")}, "options.lrTrunk", "number"),
    ({"backbone": "alexnet"}, "options.backbone", "not one of"),
    ({"trunkWeights": "/etc/passwd"}, "options.trunkWeights", "not one of"),
    ({"noBaseline": "yes"}, "options.noBaseline", "true or false"),
    ({"smallCnnWidths": [8, 0]}, "options.smallCnnWidths", "below the minimum 1"),
    # Both of a pair that set one setting: on a command line the last would win; a job's object has no last.
    ({"withBaseline": True, "noBaseline": True}, "options.noBaseline",
     "contradicts options.withBaseline (both set the trainer's with_baseline): give one of them"),
    ({"noAugment": True, "augment": True}, "options.augment", "contradicts options.noAugment"),
])
def test_bad_options_name_their_field(options, bad, field, fragment):
    with pytest.raises(JobOptionError) as error:
        options.argv(bad)
    assert error.value.field == field and fragment in str(error.value)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "..", "a..b", "x" * 129, 5, None])
def test_model_names_are_folder_names(name):
    with pytest.raises(JobOptionError):
        check_model_name(name)


def test_data_stays_inside_the_data_root(tmp_path):
    root = tmp_path / "data"
    (root / "set").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "escape")
    assert resolve_data("set", str(root)) == os.path.realpath(root / "set")
    for bad, fragment in (("../outside", ".."), (str(tmp_path / "outside"), "relative"),
                          ("escape", "outside the data root"), ("missing", "not a folder")):
        with pytest.raises(JobOptionError, match=fragment):
            resolve_data(bad, str(root))
    with pytest.raises(JobOptionError, match="no --data-root"):
        resolve_data("set", None)


def test_the_api_document_names_every_job_data_set():
    # docs/API.md lists the data sets a job may name, in prose and in the GET /training/options example.
    from protopnet_trainer import job_options
    with open(os.path.join(REPO, "docs", "API.md"), encoding="utf-8") as f:
        document = f.read()
    listed = json.loads(re.search(r'"datasets": (\[[^\]]*\])', document).group(1))
    assert listed == list(job_options.DATASETS)
    prose = re.search(r"another data set than the preset's: ([^.]*)\.", document).group(1)
    assert re.findall(r"`([^`]+)`", prose) == list(job_options.DATASETS)


def test_a_job_whose_workers_keep_dying_is_ended_failed_after_max_takeovers(tmp_path, options):
    """A job that kills its worker (out of memory, say) is taken over by each worker in turn: after --max-takeovers
    deaths it is ended failed, saying why; before that it runs as any taken-over job does."""
    for job_id, takeovers, expected in (("job-1", 3, "failed"), ("job-2", 2, "succeeded")):
        folder = queue_job(str(tmp_path / "jobs"), job_id)
        assert folder.take_lease(1, "a worker that died")
        folder.write_status({"id": job_id, "status": "running", "attempt": 1, "takeovers": takeovers})
        old = time.time() - 600
        os.utime(folder.lease_path(1), (old, old))
        make_worker(tmp_path, options, max_takeovers=3).run()
        status = folder.status()
        assert status["status"] == expected and status["takeovers"] == takeovers + 1, status
        if expected == "failed":
            assert "stopped without finishing it 4 times" in status["error"] and "--max-takeovers 3" in status["error"]
    # A job put back in the queue by its worker (SIGTERM) is not taken over: its count stays.
    folder = queue_job(str(tmp_path / "jobs"), "job-3")
    assert folder.take_lease(1, "a worker that was stopped")
    folder.write_status({"id": "job-3", "status": "queued", "attempt": 1, "takeovers": 3})
    make_worker(tmp_path, options, max_takeovers=3).run()
    assert folder.status()["status"] == "succeeded" and folder.status()["takeovers"] == 3


def test_a_job_whose_status_cannot_be_written_does_not_end_the_worker(tmp_path, options):
    """A status.json that is a folder (junk in the jobs folder, or a volume gone read-only): the worker says so in one
    line and goes on with the next job."""
    junk = queue_job(str(tmp_path / "jobs"), "job-1")
    os.remove(os.path.join(junk.path, "status.json"))
    os.makedirs(os.path.join(junk.path, "status.json"))
    good = queue_job(str(tmp_path / "jobs"), "job-2")
    lines = []
    make_worker(tmp_path, options, log=lines.append).run()
    assert good.status()["status"] == "succeeded"
    assert any(line.startswith("job job-1: not handled (IsADirectoryError") for line in lines), lines


def test_a_job_cancelled_while_its_bundle_is_written_publishes_nothing(tmp_path, options, monkeypatch):
    """The export is not interrupted, but a cancel that came meanwhile is looked at before the bundle is made visible."""
    folder = queue_job(str(tmp_path / "jobs"), "job-1")
    write = JobFolder.write_status

    def cancelling_write(self, status):
        if (status.get("progress") or {}).get("stage") == "export" and status.get("status") == "running":
            folder.request_cancel()
        write(self, status)

    monkeypatch.setattr(JobFolder, "write_status", cancelling_write)
    make_worker(tmp_path, options).run()
    assert folder.status()["status"] == "cancelled"
    assert not (tmp_path / "models" / "tiny").exists() or os.listdir(tmp_path / "models" / "tiny") == []


@pytest.mark.parametrize("stage", ["push", "prune"])
def test_a_stop_asked_during_the_push_or_the_prune_is_taken_between_their_batches(tmp_path, tiny, stage):
    """A whole pass over the training set: a cancel (or SIGTERM, or a lost lease) must not wait for its end."""
    from protopnet_trainer.watch import RunWatch, StopRun, WatchedTrainer
    cfg = tiny(push_batch_size=4, prune_k=3, prune_threshold=1)   # 36 training images: 9 batches a pass
    asked = []

    def should_stop():
        if watch.stage_name != stage:
            return None
        asked.append(stage)   # the stage's start asks once, then every batch
        return "cancel" if len(asked) == 3 else None

    watch = RunWatch(lambda snapshot: None, should_stop)
    trainer = WatchedTrainer(cfg, str(tmp_path / "run"), progress=False, log=lambda line: None, watch=watch)
    with pytest.raises(StopRun, match="cancel"):
        trainer.push(1) if stage == "push" else trainer.prune()
    assert len(asked) == 3 < 1 + len(trainer.loaders.push)


def test_the_fraction_keeps_an_epochs_batches_through_its_push_and_last_layer():
    from types import SimpleNamespace
    from protopnet_trainer.watch import RunWatch
    watch = RunWatch(report=lambda status: None, should_stop=lambda: None, interval=3600)
    watch.trainer = SimpleNamespace(epoch=1, history=[])   # one epoch done and checkpointed
    watch.epochs = 4
    fractions = []
    for stage in ("joint", "push", "last-layer"):
        watch.stage(stage)
        if stage == "joint":
            watch.batch(10, 10, training=True)
        fractions.append(watch.fraction())
    watch.trainer.epoch = 2
    watch.epoch_end(2)
    fractions.append(watch.fraction())
    # The second epoch's batches count from its joint stage through its push and last layer (they went out of the
    # count there, and the job's progress went back) until its checkpoint counts the epoch whole.
    assert fractions == [pytest.approx(2 / 5)] * 4, fractions


def test_a_list_option_holds_at_most_its_items():
    from protopnet_trainer.cli import build_parser
    from protopnet_trainer.job_options import JobOptionError, JobOptions
    options = JobOptions.from_parser(build_parser())
    options.argv({"smallCnnWidths": [8] * 8})
    with pytest.raises(JobOptionError, match="1 to 8 integers"):
        options.argv({"smallCnnWidths": [8] * 9})
