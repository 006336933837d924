"""Watching a training run from the inside, for the worker: which stage it is in, how far it got, and a way to stop
it between two batches. `WatchedTrainer` is the `Trainer` with a report at the start of each stage and before each
batch; the run itself is the same code as `train`'s."""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .config import TrainConfig
from .console import say
from .train import Trainer, TrainResult

if TYPE_CHECKING:
    from .distributed import Group

# The stages a job's progress names, in the order a run goes through them.
STAGES = ("starting", "checking-images", "warm-up", "joint", "push", "last-layer", "prune", "baseline", "export")

# How often, at most, the check of a data set's images asks whether the job must stop (each ask reads a file).
STOP_ASKED_EVERY = 0.2


class StopRun(Exception):
    """Raised before a batch (or at a stage or epoch boundary) when the run must stop: `reason` is "cancel" (the job
    was cancelled), "requeue" (the worker is shutting down) or "lost" (another worker took the job over)."""

    def __init__(self, reason: str):
        super().__init__(f"stopped: {reason}")
        self.reason = reason


def camel(key: str) -> str:
    words = key.split("_")
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def epoch_metrics(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """An epoch's metrics line (train.py's, snake_case) as the job's status shows it (camelCase numbers)."""
    return {camel(k): v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def history_entry(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """What the accuracy curve needs of an epoch."""
    return {"epoch": metrics["epoch"], "phase": metrics.get("phase"),
            "trainAccuracy": metrics.get("train_accuracy"), "testAccuracy": metrics.get("test_accuracy")}


# The stages of an epoch, from its first batch until its checkpoint counts it done.
EPOCH_STAGES = ("warm-up", "joint", "push", "last-layer")


class RunWatch:
    """Keeps a run's progress (stage, epoch, fraction of the work, estimated finish) and hands it to `report`
    whenever it changes: at once for a new stage or epoch, at most every `interval` seconds within one.
    `should_stop()` is asked before every batch; a reason it gives is raised as StopRun. `still_held()` is asked
    before every write into the run folder: False (the job was taken over) raises StopRun("lost")."""

    def __init__(self, report: Callable[[Dict[str, Any]], None], should_stop: Callable[[], Optional[str]],
                 interval: float = 1.0, still_held: Callable[[], bool] = lambda: True):
        self.report = report
        self.should_stop = should_stop
        self.still_held = still_held
        self.interval = interval
        self.trainer: Optional["WatchedTrainer"] = None
        self.stage_name: Optional[str] = None
        self.epochs = 0
        self.with_baseline = False
        self.batches_per_epoch = 1
        self.batch_fraction = 0.0       # of the epoch being trained
        self.baseline_batches = 0
        self.started = time.time()
        self.start_fraction = 0.0
        self.resumed_from: Optional[int] = None
        self.last_report = 0.0
        self.last_stop_asked = 0.0
        self.images: Optional[Tuple[int, int]] = None   # (checked, to check) while the data's image files are checked

    # ------------------------------------------------------------------ called by the trainer
    def attach(self, trainer: "WatchedTrainer") -> None:
        self.trainer = trainer
        self.epochs = trainer.cfg.epochs
        self.with_baseline = trainer.cfg.with_baseline
        self.batches_per_epoch = max(1, len(trainer.loaders.train))

    def resumed(self, epochs_done: int) -> None:
        self.resumed_from = epochs_done
        self.started, self.start_fraction = time.time(), self.fraction()
        self.publish()

    def stage(self, name: str) -> None:
        self.check()
        if name != self.stage_name:
            self.stage_name = name
            self.publish()

    def images_checked(self, done: int, total: int) -> None:
        """The check of the data's image files, before the trainer exists: reported at most every `interval`, and
        a stop asked for is taken between two images (a check of a large folder takes minutes)."""
        self.images = (done, total)
        if self.stage_name != "checking-images" and done < total:
            self.stage("checking-images")
            return
        now = time.time()
        if now - self.last_stop_asked >= STOP_ASKED_EVERY:
            self.last_stop_asked = now
            self.check()
        if done == total:
            self.publish()
            self.stage("starting")   # the model is set up next: not "checking the images (N of N)" meanwhile
        elif now - self.last_report >= self.interval:
            self.publish()

    def batch(self, index: int, total: int, training: bool) -> None:
        self.check()
        if training:
            self.batch_fraction = index / max(1, total)
        elif self.stage_name == "baseline":
            self.baseline_batches += 1
        if time.time() - self.last_report >= self.interval:
            self.publish()

    def epoch_end(self, epoch: int) -> None:
        """The pipeline's on_epoch_end: the epoch is checkpointed; report it, then stop here if asked to."""
        self.batch_fraction = 0.0
        self.publish()
        self.check()

    def check(self) -> None:
        reason = self.should_stop()
        if reason:
            raise StopRun(reason)

    def check_held(self) -> None:
        """Only "lost" stops a write: a cancel or a shutdown still lets the epoch's checkpoint be written."""
        if not self.still_held():
            raise StopRun("lost")

    # ------------------------------------------------------------------ what is reported
    def epochs_done(self) -> int:
        return self.trainer.epoch if self.trainer is not None else 0

    def fraction(self) -> float:
        """Done share of the work: each epoch counts 1 (by its batches), the baseline as many again (when it is
        trained), and the rest (pruning, final metrics, export) 1."""
        if self.trainer is None:
            return 0.0
        # The epoch's push and last layer come after its batches and before it is counted done: its batches stay counted.
        trained = self.epochs_done() + (self.batch_fraction if self.stage_name in EPOCH_STAGES else 0.0)
        units = self.epochs + (self.epochs if self.with_baseline else 0) + 1
        baseline = self.baseline_batches / self.batches_per_epoch if self.with_baseline else 0.0
        return max(0.0, min(1.0, (trained + min(baseline, self.epochs)) / units))

    def estimated_finish(self, fraction: float) -> Optional[float]:
        done = fraction - self.start_fraction
        elapsed = time.time() - self.started
        if done <= 0.005 or elapsed <= 0:
            return None
        return time.time() + (1.0 - fraction) * elapsed / done

    def images_progress(self) -> Dict[str, Optional[int]]:
        """imagesChecked and imagesToCheck while the data's image files are checked; null otherwise."""
        checking = self.stage_name == "checking-images" and self.images is not None
        return {"imagesChecked": self.images[0] if checking else None, "imagesToCheck": self.images[1] if checking else None}

    def snapshot(self) -> Dict[str, Any]:
        if self.trainer is None:
            # Before the trainer exists (its data still loading) only the stage is known: what a resumed attempt
            # carried over (fraction, history, metrics) stays as it was.
            return {"progress": {"stage": self.stage_name, **self.images_progress()}, "estimatedFinishAt": None}
        fraction = self.fraction()
        history: List[Dict[str, Any]] = [history_entry(m) for m in self.trainer.history]
        latest = self.trainer.history[-1] if self.trainer.history else None
        current_epoch = min(self.epochs, self.epochs_done() + 1) if self.stage_name in EPOCH_STAGES else self.epochs_done()
        return {
            "progress": {"stage": self.stage_name, "epoch": current_epoch, "epochs": self.epochs,
                         "fraction": round(fraction, 4), **self.images_progress()},
            "metrics": epoch_metrics(latest) if latest else None,
            "history": history,
            "estimatedFinishAt": self.estimated_finish(fraction),
            "resumedFromEpoch": self.resumed_from,
        }

    def publish(self) -> None:
        self.last_report = time.time()
        self.report(self.snapshot())


class WatchedLoader:
    """A data loader that tells the watch about each batch before handing it out (the watch may stop the run)."""

    def __init__(self, loader: Any, watch: RunWatch, on_start: Callable[[], bool]):
        self.loader = loader
        self.watch = watch
        self.on_start = on_start     # returns whether this pass trains ProtoPNet (an epoch's batches)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        training = self.on_start()
        total = len(self.loader)
        for index, batch in enumerate(self.loader):
            self.watch.batch(index, total, training)
            yield batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class WatchedTrainer(Trainer):
    """The trainer of `train`, reporting each stage and batch to a RunWatch."""

    def __init__(self, cfg: TrainConfig, run_dir: str, progress: bool = True, log: Callable[[str], None] = say,
                 group: Optional["Group"] = None, *, watch: RunWatch):
        self.watch = watch
        self._in_epoch = False
        watch.stage("starting")
        super().__init__(cfg, run_dir, progress=progress, log=log, group=group)
        self.loaders = dataclasses.replace(
            self.loaders,
            train=WatchedLoader(self.loaders.train, watch, self._train_pass),
            push=WatchedLoader(self.loaders.push, watch, lambda: False),
            test=WatchedLoader(self.loaders.test, watch, lambda: False))
        self.folder.before_write = watch.check_held
        watch.attach(self)

    @classmethod
    def factory(cls, watch: RunWatch) -> Callable[..., "WatchedTrainer"]:
        """What train_and_publish calls instead of Trainer(cfg, run_dir, progress=..., log=...)."""
        return lambda cfg, run_dir, progress=True, log=say, group=None: cls(cfg, run_dir, progress=progress, log=log,
                                                                            group=group, watch=watch)

    def images_checked(self, done: int, total: int) -> None:
        self.watch.images_checked(done, total)

    def _train_pass(self) -> bool:
        """The training loader is read by ProtoPNet's epochs and, after them, by the baseline's."""
        if not self._in_epoch:
            self.watch.stage("baseline")
        return self._in_epoch

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        self.watch.stage("warm-up" if self.phase(epoch) == "warm" else "joint")
        self._in_epoch = True
        try:
            return super().train_epoch(epoch)
        finally:
            self._in_epoch = False

    def push(self, epoch: int) -> None:
        self.watch.stage("push")
        super().push(epoch)

    def train_last_layer(self, iterations: Optional[int] = None, seed_offset: int = 0) -> float:
        self.watch.stage("last-layer")
        return super().train_last_layer(iterations, seed_offset)

    def prune(self) -> int:
        self.watch.stage("prune")
        return super().prune()

    def resume(self) -> bool:
        resumed = super().resume()
        if resumed:
            self.watch.resumed(self.epoch)
        return resumed

    def run(self, on_epoch_end: Optional[Callable[[int], None]] = None) -> TrainResult:
        result = super().run(on_epoch_end)
        self.watch.stage("export")
        return result
