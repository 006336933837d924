"""The jobs folder that the service and the workers share (docs/TRAINING_JOBS.md is the contract).

One folder per job, `<jobs>/<id>/`:
  job.json        the request, written once by the service (the folder appears whole: it is renamed into place)
  status.json     state and progress of one attempt (its `attempt` field); written atomically, only by
                  whoever holds that attempt's lease
  lease-NNNNNN    one file per attempt to run the job; the highest number is the current attempt and its
                  modification time the holder's heartbeat
  cancel          present once cancelling was asked for
  run/            the run folder (checkpoints, metrics.jsonl), unless the worker keeps runs elsewhere (--runs)

Taking a job is creating the next lease file with O_EXCL. Attempt numbers only grow, so of several workers (or the
service, cancelling a queued job) exactly one gets each attempt, and a lease once given up is never taken twice.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from .atomic import write_json_atomically

JOB_FILE = "job.json"
JOB_FORMAT = "protopnet-training-job/1"   # job.json's "format": the only one this worker reads
STATUS_FILE = "status.json"
CANCEL_FILE = "cancel"
LEASE_PREFIX = "lease-"
RUN_FOLDER = "run"

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LEASE = re.compile(r"^lease-(\d{6})$")


def utc_now() -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2026-11-30T07:55:11.123Z (what the service's JSON uses)."""
    return utc_time(time.time())


def utc_time(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# The types of the status.json fields the worker reads back (the service reads them too, docs/TRAINING_JOBS.md).
_STATUS_TYPES: Dict[str, Tuple[type, ...]] = {
    "attempt": (int,), "status": (str,), "progress": (dict,), "metrics": (dict, type(None)), "history": (list,),
    "startedAt": (str, type(None)), "resumedFromEpoch": (int, type(None)), "takeovers": (int,),
}


def _has_its_type(key: str, value: Any) -> bool:
    types = _STATUS_TYPES.get(key)
    return types is None or (isinstance(value, types) and not isinstance(value, bool))


class JobFolder:
    """One job's folder: its request, status, leases and cancel marker."""

    def __init__(self, path: str):
        self.path = path
        self.id = os.path.basename(os.path.normpath(path))

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def request(self) -> Dict[str, Any]:
        with open(self._file(JOB_FILE), encoding="utf-8") as f:
            request = json.load(f)
        if not isinstance(request, dict):
            raise ValueError(f"it holds a JSON {type(request).__name__}, not an object")
        return request

    def status(self) -> Optional[Dict[str, Any]]:
        """The last status written, or None when there is none (or it cannot be read). A field of the wrong type
        (a hand-edited or damaged file) counts as absent, so the job is neither skipped for good nor a crash."""
        try:
            with open(self._file(STATUS_FILE), encoding="utf-8") as f:
                value = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(value, dict):
            return None
        return {key: field for key, field in value.items() if _has_its_type(key, field)}

    def write_status(self, status: Dict[str, Any]) -> None:
        write_json_atomically(self._file(STATUS_FILE), status)

    def cancel_requested(self) -> bool:
        return os.path.exists(self._file(CANCEL_FILE))

    def request_cancel(self) -> None:
        with open(self._file(CANCEL_FILE), "a", encoding="utf-8"):
            pass

    # ------------------------------------------------------------------ leases
    def lease_path(self, attempt: int) -> str:
        return self._file(f"{LEASE_PREFIX}{attempt:06d}")

    def current_attempt(self) -> int:
        """The highest attempt number taken so far (0: never taken)."""
        numbers = [int(m.group(1)) for m in map(LEASE.fullmatch, os.listdir(self.path)) if m]
        return max(numbers, default=0)

    def lease_age(self, attempt: int) -> float:
        """Seconds since the holder of `attempt` last beat (its lease file's modification time)."""
        try:
            return time.time() - os.stat(self.lease_path(attempt)).st_mtime
        except FileNotFoundError:
            return float("inf")

    def take_lease(self, attempt: int, owner: str) -> bool:
        """Create the lease file of `attempt`; False when someone else has it already."""
        try:
            fd = os.open(self.lease_path(attempt), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"owner": owner, "takenAt": utc_now()}, f)
        return True

    def run_folder(self, runs_root: Optional[str]) -> str:
        return os.path.join(runs_root, self.id) if runs_root else self._file(RUN_FOLDER)


class Lease:
    """One attempt at a job, held by this process: beating keeps it; a higher attempt in the folder means it is lost
    (its holder was thought dead and the job was taken over)."""

    def __init__(self, folder: JobFolder, attempt: int, owner: str, taken_over: bool = False):
        self.folder = folder
        self.attempt = attempt
        self.owner = owner
        self.taken_over = taken_over   # from a holder that stopped beating (died), not a queued job

    def beat(self) -> None:
        try:
            os.utime(self.folder.lease_path(self.attempt))
        except FileNotFoundError:
            pass   # the job folder was removed: lost() says so

    def lost(self) -> bool:
        try:
            return self.folder.current_attempt() != self.attempt
        except FileNotFoundError:
            return True


def claimable(folder: JobFolder, attempt: int, status: Optional[Dict[str, Any]], stale_after: float) -> bool:
    """Whether a job can be taken, given its current attempt (read first) and its status (read after).

    Only a status of the current attempt counts: one of an earlier attempt means the current attempt's holder has
    not written yet, and the job is taken over only when that holder's lease has gone stale. A status of the current
    attempt: queued (never taken, or put back by its worker) can be taken; running can be taken once its holder has
    not beaten for `stale_after` seconds (a worker that died); finished jobs never."""
    status = status or {}
    stale = attempt > 0 and folder.lease_age(attempt) > stale_after
    if status.get("attempt", 0) != attempt:
        return stale
    state = status.get("status", QUEUED)
    if state == QUEUED:
        return True
    return state == RUNNING and (attempt == 0 or stale)


class JobQueue:
    """The jobs folder as a queue: oldest job first (ids sort by creation time)."""

    def __init__(self, root: str, stale_after: float, on_skip: Callable[[str, OSError], None] = lambda job, error: None):
        self.root = root
        self.stale_after = stale_after
        self.on_skip = on_skip   # told of a job folder that cannot be looked at or taken (e.g. not writable)
        # Jobs seen finished, never looked at again: a finished job stays finished, and a jobs folder keeps them until
        # they are removed (3,000 of them cost an idle worker 9 % of a core, reading every status every --poll).
        self._finished: set = set()

    def folders(self) -> Iterator[JobFolder]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        self._finished &= set(names)   # removed ones are forgotten
        for name in names:
            if name in self._finished:
                continue
            path = os.path.join(self.root, name)
            if JOB_ID.fullmatch(name) and os.path.isfile(os.path.join(path, JOB_FILE)):
                yield JobFolder(path)

    def claim(self, owner: str) -> Optional[Lease]:
        """Take the oldest job that can be taken, or None. The attempts are listed before the status is read, so
        the status read is never of a later attempt than the one listed (see `claimable`)."""
        for folder in self.folders():
            try:
                attempt = folder.current_attempt()
                status = folder.status()
                if status is not None and status.get("attempt", 0) == attempt and status.get("status") in FINISHED:
                    self._finished.add(folder.id)
                    continue
                if claimable(folder, attempt, status, self.stale_after) and folder.take_lease(attempt + 1, owner):
                    queued = (status or {}).get("attempt", 0) == attempt and (status or {}).get("status", QUEUED) == QUEUED
                    return Lease(folder, attempt + 1, owner, taken_over=attempt > 0 and not queued)
            except FileNotFoundError:
                continue   # removed meanwhile (a finished job's folder, by the service)
            except OSError as error:
                self.on_skip(folder.id, error)   # one folder this worker cannot write must not stop the queue
        return None
