"""A run's folder on disk: checkpoints/ (the latest epochs, final.pt, pruned.pt), push/ (the current prototypes'
pictures), metrics.jsonl (one line per epoch) and published.json (the bundle the finished run published). Resuming
reads it; a fresh run clears it."""
from __future__ import annotations

import glob
import json
import os
import shutil
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from .atomic import write_text_atomically
from .checkpoint import save_checkpoint
from .errors import TrainerError

CHECKPOINTS_KEPT = 3   # epoch checkpoints; final.pt and pruned.pt are never removed


class RunFolder:
    def __init__(self, path: str):
        self.path = path
        self.checkpoints = os.path.join(path, "checkpoints")
        self.metrics = os.path.join(path, "metrics.jsonl")
        self.published_record = os.path.join(path, "published.json")
        # Called before each write during a run: a worker's raises when its job was taken over, so a worker thought
        # dead never writes over (or removes) what the new holder wrote.
        self.before_write: Callable[[], None] = lambda: None

    @staticmethod
    def default(name: str) -> str:
        return os.path.join("runs", name)

    @classmethod
    def of_checkpoint(cls, checkpoint_path: str) -> "RunFolder":
        """The run folder a checkpoint file lies in (<run>/checkpoints/<file>); for a checkpoint kept elsewhere, the
        folder it lies in (what is written beside it then goes there, not two folders up)."""
        folder = os.path.dirname(os.path.abspath(checkpoint_path))
        return cls(os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder)

    def create(self) -> None:
        try:
            os.makedirs(self.checkpoints, exist_ok=True)
        except OSError as error:
            raise TrainerError(f"run folder {self.path} cannot be created: {error.strerror}") from None

    def clear(self) -> None:
        """Remove an earlier run's checkpoints, pictures and metrics: a fresh run never mixes with an old one."""
        if not os.path.isdir(self.path):
            return
        for part in ("checkpoints", "push", "metrics.jsonl", "published.json"):
            target = os.path.join(self.path, part)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)

    def record_published(self, bundle: str, epochs: int) -> None:
        """Note that the run, `epochs` long, ended by publishing `bundle`: resuming it again then has nothing to do."""
        self.before_write()
        write_text_atomically(self.published_record,
                              json.dumps({"bundle": os.path.abspath(bundle), "epochs": epochs}) + "\n")

    def published(self, model_folder: str, epochs: int) -> Optional[str]:
        """The bundle this run published into `model_folder` after `epochs` epochs; None when it has not (or published
        elsewhere, or after another number of epochs: resuming then trains on, or refuses fewer epochs than trained)."""
        record = self.published_bundle()
        if record is None:
            return None
        bundle, trained = record
        same_folder = os.path.dirname(bundle) == os.path.abspath(model_folder)
        return bundle if same_folder and trained == epochs else None

    def published_bundle(self) -> Optional[Tuple[str, int]]:
        """The bundle the finished run published and its epochs; None when no run here has finished."""
        try:
            with open(self.published_record, encoding="utf-8") as f:
                record = json.load(f)
            return str(record["bundle"]), int(record["epochs"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def epoch_checkpoint_name(self, epochs_done: int) -> str:
        return f"epoch-{epochs_done:03d}.pt"

    def latest_epoch_checkpoint(self) -> Optional[str]:
        epochs = sorted(glob.glob(os.path.join(self.checkpoints, "epoch-*.pt")))
        return epochs[-1] if epochs else None

    def save_checkpoint(self, state: Dict[str, Any], name: str) -> str:
        """Write checkpoints/<name> atomically and keep only the latest CHECKPOINTS_KEPT epoch checkpoints."""
        self.before_write()
        path = os.path.join(self.checkpoints, name)
        save_checkpoint(state, path)
        epochs = sorted(glob.glob(os.path.join(self.checkpoints, "epoch-*.pt")))
        for old in epochs[:-CHECKPOINTS_KEPT]:
            os.remove(old)
        return path

    def drop_resume_points(self) -> None:
        """Remove the epoch checkpoints, which only resume an unfinished run: once it has finished, checkpoints/final.pt
        (prune, export) is what is left of any use, at a fraction of the disk."""
        for checkpoint in glob.glob(os.path.join(self.checkpoints, "epoch-*.pt")):
            try:
                os.remove(checkpoint)
            except OSError:
                pass   # gone already, or not ours to remove: it only costs disk

    def push_pictures(self, epoch: int) -> str:
        """Where the push after (0-based) `epoch` writes its prototype pictures: an absolute path, since push
        records keep it and are read again from other working folders (prune, export)."""
        self.before_write()
        return os.path.abspath(os.path.join(self.path, "push", f"epoch-{epoch + 1:03d}"))

    def keep_push_pictures(self, current: Iterable[str]) -> None:
        """Remove the pictures of superseded pushes: only the current prototypes' pictures are ever exported.
        Paths are compared absolute: records of older runs may hold paths relative to their working folder."""
        self.before_write()
        current = {os.path.abspath(path) for path in current}
        for pictures in glob.glob(os.path.join(os.path.abspath(self.path), "push", "epoch-*")):
            if pictures not in current:
                shutil.rmtree(pictures, ignore_errors=True)

    def keep_metrics_through(self, epoch: int) -> None:
        """Drop the metrics lines of epochs after `epoch`: a run stopped between writing an epoch's line and its
        checkpoint, or resumed from an earlier checkpoint, trains those epochs again and writes them again."""
        if not os.path.isfile(self.metrics):
            return
        with open(self.metrics, encoding="utf-8") as f:
            lines = f.read().splitlines()

        def kept(line: str) -> bool:
            try:
                return int(json.loads(line).get("epoch", 0)) <= epoch
            except (ValueError, TypeError, AttributeError):
                return False   # a line cut short by the stop
        self.before_write()
        write_text_atomically(self.metrics, "".join(line + "\n" for line in lines if kept(line)))

    def append_metrics(self, metrics: Dict[str, Any]) -> None:
        self.before_write()
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
