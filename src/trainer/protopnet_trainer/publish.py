"""Publishing a bundle version atomically into a model repository: files are written into a hidden staging
folder, the manifest last, then the folder is renamed to its version, so a reader never sees half a bundle."""
from __future__ import annotations

import datetime as dt
import os
import shutil
from typing import Any, Callable, Dict, Optional, Tuple

from .atomic import write_text_atomically
from .errors import TrainerError
from .job_options import require_model_name
from .manifest import manifest_text


def check_writable(models_dir: str, name: Optional[str] = None) -> None:
    """Fail early (before training) when the model repository, or the model's folder in it, cannot be written."""
    if os.path.lexists(models_dir) and not os.path.isdir(models_dir):
        raise TrainerError(f"output folder {models_dir} is a file, not a folder")
    try:
        os.makedirs(models_dir, exist_ok=True)
    except OSError as error:
        raise TrainerError(f"output folder {models_dir} cannot be created: {error.strerror}") from None
    if not os.path.isdir(models_dir) or not os.access(models_dir, os.W_OK | os.X_OK):
        raise TrainerError(f"output folder {models_dir} is not writable")
    family = os.path.join(models_dir, name) if name else None
    if family is not None and os.path.lexists(family):
        if not os.path.isdir(family):
            raise TrainerError(f"output folder {family} cannot be created: a file of that name is in the way")
        if not os.access(family, os.W_OK | os.X_OK):
            raise TrainerError(f"output folder {family} is not writable")


def new_version(family_dir: str) -> str:
    """The current UTC time as a sortable version name, one second later while that name is taken."""
    moment = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    while True:
        version = moment.strftime("%Y%m%dT%H%M%SZ")
        if not os.path.exists(os.path.join(family_dir, version)) and not os.path.exists(
                os.path.join(family_dir, f".staging-{version}")):
            return version
        moment += dt.timedelta(seconds=1)


ABANDONED_AFTER = dt.timedelta(hours=24)   # no publish takes that long: a staging folder this old lost its process


def _take_staging(family_dir: str) -> Tuple[str, str]:
    """A new version and its staging folder, created here: of two publishers of one model in the same second, each
    gets its own (the one that finds the folder made takes the next second), and neither removes the other's."""
    while True:
        version = new_version(family_dir)
        staging = os.path.join(family_dir, f".staging-{version}")
        try:
            os.makedirs(staging)
            return version, staging
        except FileExistsError:
            continue


def remove_abandoned_staging(family_dir: str, now: dt.datetime) -> None:
    """Removes the staging folders of publishes whose process was killed (`kill -9` leaves them; nothing else would),
    judged by the version in their name, when they were started."""
    for entry in os.listdir(family_dir):
        if not entry.startswith(".staging-"):
            continue
        try:
            started = dt.datetime.strptime(entry[len(".staging-"):], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue   # not one of ours
        if now - started > ABANDONED_AFTER:
            shutil.rmtree(os.path.join(family_dir, entry), ignore_errors=True)


def publish(models_dir: str, name: str, fill: Callable[[str, str], Dict[str, Any]],
            before_rename: Optional[Callable[[], None]] = None) -> str:
    """Write a version atomically: `fill(staging_dir, version)` writes the files and returns the manifest, which
    is written last; then `.staging-<version>` is renamed to `<version>`. On any failure nothing is visible.
    `before_rename()` may still stop it by raising (a job cancelled while its bundle was written)."""
    check_writable(models_dir)
    require_model_name(name, "model name")   # a folder the service could not address would serve nobody
    family_dir = os.path.join(models_dir, name)
    try:
        os.makedirs(family_dir, exist_ok=True)
    except OSError as error:
        raise TrainerError(f"output folder {family_dir} cannot be created: {error.strerror}") from None
    remove_abandoned_staging(family_dir, dt.datetime.now(dt.timezone.utc))
    version, staging = _take_staging(family_dir)
    final = os.path.join(family_dir, version)
    try:
        manifest = fill(staging, version)
        write_text_atomically(os.path.join(staging, "model.json"), manifest_text(manifest))
        if before_rename is not None:
            before_rename()
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
