"""The training worker: takes queued jobs one at a time from a jobs folder (jobs.py), trains each exactly as the
`train` command does, keeps its status.json up to date, and publishes its bundle into the model repository.

SIGTERM (or SIGINT) stops the job between two batches and puts it back in the queue; its checkpoints stay, and the
next worker resumes from the last one. A worker that dies leaves a lease without heartbeat: after `stale_after`
seconds another worker takes the job over and resumes it the same way. A job that fails ends `failed` with one line
saying why, publishes nothing, and the worker goes on with the next one.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from . import alive
from .console import escaped, say
from .datasets import stays_below
from .errors import TrainerError, one_line
from .job_options import JobOptionError, JobOptions, check_model_name
from .jobs import (CANCELLED, FAILED, JOB_FORMAT, QUEUED, RUNNING, SUCCEEDED, JobFolder, JobQueue, Lease, utc_now,
                   utc_time)
from .pipeline import TrainJob, train_and_publish
from .publish import check_writable
from .run_folder import RunFolder
from .watch import RunWatch, StopRun, WatchedTrainer

Log = Callable[[str], None]
# In each run folder a worker makes under --runs: which job of which jobs folder it belongs to, so that it is removed
# once that job is (and never by a worker of another jobs folder sharing --runs).
RUN_MARKER = ".protopnet-job"
WARNING = "warning: "   # a run's log lines that begin so are its warnings (status.json's warnings)
RUNS_SWEEP_SECONDS = 60.0
# Turns `train` command-line words into the TrainJob the train command would run (the CLI's own parsing).
TrainJobFromArgv = Callable[[List[str]], TrainJob]


@dataclass
class WorkerSettings:
    jobs: str                          # the jobs folder
    models: str                        # the model repository the bundles are published into
    runs: Optional[str] = None         # run folders (<runs>/<job id>); default: each job's own folder
    data_root: Optional[str] = None    # the only folder a job's `data` may name (relative to it)
    poll: float = 2.0                  # seconds between looks at an empty queue
    heartbeat: float = 5.0             # seconds between heartbeats of the running job's lease
    stale_after: float = 60.0          # a running job whose lease has not beaten for this long is taken over
    progress_interval: float = 1.0     # at most this often a status write for progress within an epoch
    progress: bool = False             # progress bars (stderr), as train's
    once: bool = False                 # exit when the queue is empty (tests, cron)
    alive_file: Optional[str] = None   # touched by the loop and the job's heartbeat (alive.py: the health check)
    max_takeovers: int = 3             # a job whose workers died more than this many times (taken over) is ended failed


class WorkerCannotServe(TrainerError):
    """A folder of the worker's own (--models, --runs, --data-root) cannot serve any job: the worker stops."""


class ShutdownSignal:
    """SIGTERM / SIGINT: the worker finishes nothing more; the running job stops at its next batch."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, number: int, _frame: Any) -> None:
        say(f"worker: {signal.Signals(number).name} received: stopping the running job at its next batch")
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def resolve_data(data: Any, data_root: Optional[str]) -> str:
    """A job's `data`, relative to the data root, as an absolute path that stays inside it (symbolic links
    resolved): a job never reads outside the configured data root."""
    if not isinstance(data, str) or not data:
        raise JobOptionError("data", "must be a folder path relative to the data root")
    if not data_root:
        raise JobOptionError("data", "this worker has no --data-root, so a job cannot name a data folder")
    if not stays_below(data):
        raise JobOptionError("data", f"'{data}' must be relative to the data root, without '..'")
    root = os.path.realpath(data_root)
    target = os.path.realpath(os.path.join(root, data))
    if os.path.commonpath([root, target]) != root:
        raise JobOptionError("data", f"'{data}' leads outside the data root")
    if not os.path.isdir(target):
        raise JobOptionError("data", f"'{data}' is not a folder under the data root")
    return target


def train_argv(request: Dict[str, Any], options: JobOptions, settings: WorkerSettings, run_dir: str,
               resume: bool) -> List[str]:
    """The `train` command line of a job (job.json), its format, fields and options checked again."""
    if request.get("format") != JOB_FORMAT:
        raise JobOptionError("format", f"is {json.dumps(request.get('format'))}; this worker reads {JOB_FORMAT} jobs")
    name = check_model_name(request.get("name"))
    preset = request.get("preset")
    presets = [p["name"] for p in options.document()["presets"]]
    if preset is None:
        raise JobOptionError("preset", f"is required (one of {', '.join(presets)})")
    if preset not in presets:
        raise JobOptionError("preset", f"'{preset}' is not a preset of the trainer ({', '.join(presets)})")
    words = ["train", "--preset", preset]
    dataset = request.get("dataset")
    if dataset is not None:
        datasets = options.document()["datasets"]
        if dataset not in datasets:
            raise JobOptionError("dataset", f"'{dataset}' is not a data set of the trainer ({', '.join(datasets)})")
        words += ["--dataset", dataset]
    if request.get("data") is not None:
        words += ["--data", resolve_data(request["data"], settings.data_root)]
    words += options.argv(request.get("options") or {})
    words += ["--models", settings.models, "--name", name, "--run-dir", run_dir]
    return words + (["--resume"] if resume else [])


class JobStatus:
    """status.json of the job this worker holds: every write is atomic, and none is made once the lease is lost.
    The main thread (progress) and the heartbeat thread both write, one at a time."""

    def __init__(self, lease: Lease, worker: str):
        self.lease = lease
        self.lock = threading.Lock()
        previous = lease.folder.status() or {}
        self.values: Dict[str, Any] = {
            "id": lease.folder.id, "status": RUNNING, "attempt": lease.attempt, "worker": worker,
            # The earlier attempt's progress, but not how far its image check got: this attempt checks them again.
            "progress": {**(previous.get("progress") or {"epoch": 0, "epochs": 0, "fraction": 0.0}), "stage": "starting",
                         "imagesChecked": None, "imagesToCheck": None},
            "metrics": previous.get("metrics"),
            "history": previous.get("history") or [], "publishedVersion": None, "error": None,
            "startedAt": previous.get("startedAt") or utc_now(), "finishedAt": None,
            "estimatedFinishAt": None, "resumedFromEpoch": previous.get("resumedFromEpoch"),
            "warnings": [],   # this attempt's: one that resumes checks the data again and says them again
            "takeovers": _count(previous.get("takeovers")) + (1 if lease.taken_over else 0),
        }
        self.write()

    def write(self, **changes: Any) -> None:
        with self.lock:
            self.values.update(changes)
            now = utc_now()
            self.values["heartbeatAt"] = now
            self.values["updatedAt"] = now
            if not self.lease.lost():
                self.lease.folder.write_status(self.values)

    def progress(self, snapshot: Dict[str, Any]) -> None:
        """A RunWatch snapshot; its progress is merged into the status's, so a partial one (the stage alone) keeps the rest."""
        finish = snapshot.pop("estimatedFinishAt")
        progress = {**(self.values.get("progress") or {}), **snapshot.pop("progress")}
        self.write(**snapshot, progress=progress, estimatedFinishAt=utc_time(finish) if finish else None)

    def finish(self, status: str, **changes: Any) -> None:
        self.write(status=status, finishedAt=utc_now(), estimatedFinishAt=None, **changes)

    def requeue(self) -> None:
        """Back in the queue, for the next worker to resume from the last checkpoint."""
        self.write(status=QUEUED, estimatedFinishAt=None)

    def warn(self, text: str) -> None:
        """A warning of the run (files left out of the data, classes without test images), for the job's readers."""
        self.write(warnings=[*self.values["warnings"], text])


def _count(value: Any) -> int:
    """A count another program may have written as anything."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class Heartbeat:
    """A thread that beats the lease and rewrites the heartbeat every `interval` seconds, and notices a cancel
    marker and a lost lease, so the run stops at its next batch."""

    def __init__(self, lease: Lease, status: JobStatus, interval: float, alive_file: Optional[str] = None):
        self.lease = lease
        self.status = status
        self.interval = interval
        self.alive_file = alive_file
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{lease.folder.id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            alive.touch(self.alive_file)
            self.lease.beat()
            self.poll()
            if not self.lost.is_set():
                self.status.write()

    def poll(self) -> None:
        if self.lease.folder.cancel_requested():
            self.cancelled.set()
        if self.lease.lost():
            self.lost.set()


class Worker:
    def __init__(self, settings: WorkerSettings, options: JobOptions, train_job: TrainJobFromArgv,
                 shutdown: Optional[ShutdownSignal] = None, log: Log = say):
        self.settings = settings
        self.options = options
        self.train_job = train_job
        self.shutdown = shutdown or ShutdownSignal()
        self._say = log
        self.name = worker_name()
        self.queue = JobQueue(settings.jobs, settings.stale_after, self._skipped)
        self._skips_told: set = set()
        self._swept_at = 0.0

    def log(self, line: str) -> None:
        """A line of the worker's log, escaped: a job's or a file's name cannot forge a line of its own."""
        self._say(escaped(line))

    def run(self) -> None:
        """Take and run jobs until shut down (or, with `once`, until the queue is empty)."""
        if os.path.exists(self.settings.jobs) and not os.path.isdir(self.settings.jobs):
            raise TrainerError(f"--jobs {self.settings.jobs} is a file, not a folder")   # not "cannot be created: File exists"
        try:
            os.makedirs(self.settings.jobs, exist_ok=True)   # the worker may start before the service makes it
        except OSError as error:
            raise TrainerError(f"--jobs {self.settings.jobs} cannot be created: {error.strerror}") from None
        self._check_folders()
        unwritable = alive.touch(self.settings.alive_file)
        if unwritable:
            # The health check takes a missing file for a container without a worker, and passes: say so, once.
            self.log(f"warning: --alive-file {self.settings.alive_file} cannot be written ({unwritable}): the health check "
                     f"(python3 -m protopnet_trainer.alive) finds no file and passes, whether this worker beats or hangs")
        data = (f"jobs may name data under {self.settings.data_root}" if self.settings.data_root
                else "no --data-root, so jobs that name data are refused")
        self.log(f"worker {self.name}: waiting for jobs in {self.settings.jobs}, publishing into "
                 f"{self.settings.models}; {data}")
        while not self.shutdown.requested:
            alive.touch(self.settings.alive_file)
            lease = self.queue.claim(self.name)
            if lease is None:
                self.sweep_runs()
                if self.settings.once:
                    break
                self.shutdown.event.wait(self.settings.poll)
                continue
            try:
                self.run_job(lease)
            except WorkerCannotServe:
                raise   # its folders failed under it: the job is back in the queue for a worker that can
            except Exception as error:  # noqa: BLE001 - one job's fault (a status that cannot be written) never ends the worker
                self.log(f"job {lease.folder.id}: not handled ({type(error).__name__}: {one_line(error)}); the worker "
                         f"goes on, and the job is tried again once its lease is stale")
        self.log(f"worker {self.name}: stopped")

    def _check_folders(self) -> None:
        """The folders every job needs, checked at start (and after a job fails): one a volume left unmounted or
        read-only would otherwise fail each queued job in turn for the worker's own fault, and a failed job stays failed."""
        for flag, folder in (("--models", self.settings.models), ("--runs", self.settings.runs)):
            if not folder:
                continue   # no --runs: the runs go into the jobs folder
            try:
                check_writable(folder)
            except TrainerError as error:
                raise WorkerCannotServe(f"{flag}: {error}") from None
        if self.settings.data_root and not os.path.isdir(self.settings.data_root):
            raise WorkerCannotServe(f"--data-root {self.settings.data_root} is not a folder (a volume not mounted?)")

    def _skipped(self, job_id: str, error: OSError) -> None:
        told = (job_id, error.errno)
        if told not in self._skips_told:   # once, not at every poll
            self._skips_told.add(told)
            self.log(f"job {job_id}: skipped, its folder cannot be taken ({error.strerror or error}: "
                     f"{error.filename or job_id})")

    def run_marker(self, job_id: str) -> str:
        return json.dumps({"job": job_id, "jobs": os.path.realpath(self.settings.jobs)})

    def sweep_runs(self, now: Optional[float] = None) -> None:
        """Remove the run folders under --runs whose job folder is gone (removed through the service, or by hand):
        only those a worker of this jobs folder made (RUN_MARKER), only when the jobs folder itself can be listed (an
        unmounted or unreadable one looks empty), and at most once a minute."""
        now = time.time() if now is None else now
        if not self.settings.runs or now - self._swept_at < RUNS_SWEEP_SECONDS:
            return
        self._swept_at = now
        try:
            jobs = set(os.listdir(self.settings.jobs))
            names = os.listdir(self.settings.runs)
        except OSError:
            return
        if not jobs:
            return
        for name in names:
            path = os.path.join(self.settings.runs, name)
            if name in jobs or not self._marker_is(path, name):
                continue
            try:
                os.stat(os.path.join(self.settings.jobs, name))
                continue   # there after all (it appeared since the listing)
            except FileNotFoundError:
                pass
            except OSError:
                continue
            try:
                shutil.rmtree(path)
                self.log(f"removed run folder {path}: its job is gone")
            except OSError as error:
                self.log(f"run folder {path} of a removed job cannot be removed: {error.strerror or error}")

    def _marker_is(self, run_folder: str, job_id: str) -> bool:
        try:
            with open(os.path.join(run_folder, RUN_MARKER), encoding="utf-8") as marker:
                return marker.read().strip() == self.run_marker(job_id)
        except (OSError, ValueError):
            return False

    def run_job(self, lease: Lease) -> str:
        """Run one taken job to its end (or until stopped). Returns the status it ended with."""
        folder = lease.folder
        status = JobStatus(lease, self.name)
        log = self._job_log(folder, status)
        log(f"started (attempt {lease.attempt}) by {self.name}")
        takeovers = status.values["takeovers"]
        if lease.taken_over and takeovers > self.settings.max_takeovers:
            # A job that kills its worker (out of memory, say) would otherwise be taken over by each worker in turn for good.
            return self._failed(f"its workers stopped without finishing it {takeovers} times (killed, perhaps out of "
                                f"memory); it is not tried again (--max-takeovers {self.settings.max_takeovers})", status, log)
        with Heartbeat(lease, status, self.settings.heartbeat, self.settings.alive_file) as heartbeat:
            def should_stop() -> Optional[str]:
                if heartbeat.lost.is_set():
                    return "lost"
                heartbeat.poll()
                if heartbeat.cancelled.is_set():
                    return "cancel"
                return "requeue" if self.shutdown.requested else None

            def stop_publishing() -> None:
                # Once the bundle is written: a job cancelled (or taken over) meanwhile publishes nothing. A shutdown
                # lets the publish finish, the job being all but done.
                heartbeat.poll()
                if heartbeat.lost.is_set() or lease.lost():
                    raise StopRun("lost")
                if heartbeat.cancelled.is_set():
                    raise StopRun("cancel")

            try:
                reason = should_stop()
                if reason:
                    raise StopRun(reason)
                job = self._train_job(folder, resume=lease.attempt > 1)
                watch = RunWatch(status.progress, should_stop, self.settings.progress_interval,
                                 still_held=lambda: not lease.lost())
                watch.epochs, watch.with_baseline = job.cfg.epochs, job.cfg.with_baseline
                bundle = train_and_publish(job, progress=self.settings.progress, log=log,
                                           on_epoch_end=watch.epoch_end,
                                           trainer_factory=WatchedTrainer.factory(watch),
                                           before_publish=stop_publishing)
                version = os.path.basename(bundle)
                if lease.lost():   # taken over during the export, which is not interrupted: the new holder goes on
                    log(f"another worker took this job over while it published {job.name}@{version}: stopped, "
                        f"nothing more written")
                    return RUNNING
                status.finish(SUCCEEDED, publishedVersion=version,
                              progress={**(status.values.get("progress") or {}), "stage": "export", "fraction": 1.0})
                log(f"succeeded: published {job.name}@{version}")
                if job.run_dir:
                    RunFolder(job.run_dir).drop_resume_points()   # the job will not resume: final.pt stays
                return SUCCEEDED
            except StopRun as stop:
                return self._stopped(stop.reason, status, log)
            except (TrainerError, JobOptionError) as error:
                return self._failed(self.options.in_job_words(one_line(error)), status, log)
            except Exception as error:  # noqa: BLE001 - any fault ends this job, never the worker
                for line in traceback.format_exc().rstrip().splitlines():   # a line each, each naming the job
                    log(line)
                message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                return self._failed(f"{type(error).__name__}: {message}" if message else type(error).__name__,
                                    status, log)

    def _train_job(self, folder: JobFolder, resume: bool) -> TrainJob:
        try:
            request = folder.request()
        except (OSError, ValueError) as error:
            raise TrainerError(f"{folder.id}/job.json cannot be read: {error}") from None
        run_dir = folder.run_folder(self.settings.runs)
        if self.settings.runs:
            os.makedirs(run_dir, exist_ok=True)
            with open(os.path.join(run_dir, RUN_MARKER), "w", encoding="utf-8") as marker:
                marker.write(self.run_marker(folder.id) + "\n")
        argv = train_argv(request, self.options, self.settings, run_dir, resume)
        try:
            return self.train_job(argv)
        except SystemExit:   # argparse has printed why; the options were checked, so this is a bug
            raise TrainerError("the trainer refused the job's command line: " + " ".join(argv)) from None

    def _stopped(self, reason: str, status: JobStatus, log: Log) -> str:
        if reason == "cancel":
            status.finish(CANCELLED)
            log("cancelled: nothing was published")
            return CANCELLED
        if reason == "lost":
            log("another worker took this job over (this one was thought dead): stopped, nothing written")
            return RUNNING
        status.requeue()
        log("put back in the queue; the next worker resumes it from its last checkpoint")
        return QUEUED

    def _as_the_job_names_data(self, message: str) -> str:
        """A job's error names its data as the job does, relative to the data root (imagefolder: photos has no test/
        folder): the worker's own paths mean nothing to the job's submitter. The worker's log keeps them whole."""
        if not self.settings.data_root:
            return message
        for root in {self.settings.data_root, os.path.realpath(self.settings.data_root)}:
            message = message.replace(os.path.join(os.path.abspath(root), ""), "")
        return message

    def _failed(self, message: str, status: JobStatus, log: Log) -> str:
        line = " ".join(message.split())   # one line, whatever the exception said
        try:
            self._check_folders()
        except WorkerCannotServe as gone:
            # Not the job's fault: its worker's folders failed under it (a volume gone or read-only). Failed is
            # final, and every queued job would follow it; the job goes back to the queue and this worker stops.
            status.requeue()
            log(f"stopped by the worker's own folders ({gone}), not failed: put back in the queue ({line})")
            raise
        log(f"failed: {line}")
        try:
            status.finish(FAILED, error=self._as_the_job_names_data(line))
        except OSError as error:   # the jobs volume itself failed (read-only, full): the job is retried once its lease is stale
            log(f"its status cannot be written ({error.strerror or error}): it stays running until its lease goes stale")
        return FAILED

    def _job_log(self, folder: JobFolder, status: JobStatus) -> Log:
        """The worker's log, each line naming the job; the run's warnings also go into the job's status, where the
        service shows them (the worker's console is not where a user of the service looks), naming options as the job
        names them."""
        def log(line: str) -> None:
            self.log(f"job {folder.id}: {line}")
            if line.startswith(WARNING):
                status.warn(self.options.in_job_words(line[len(WARNING):]))
        return log


def run_worker(settings: WorkerSettings, options: JobOptions, train_job: TrainJobFromArgv) -> None:
    shutdown = ShutdownSignal()
    shutdown.install()
    Worker(settings, options, train_job, shutdown).run()
