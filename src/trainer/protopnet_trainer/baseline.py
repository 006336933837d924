"""The black-box baseline: ProtoPNet's twin with the same trunk, epochs and augmentation but global average
pooling and a linear classifier, trained in this process after ProtoPNet, or in a process of its own whose
result file (training.baseline of the manifest) the ProtoPNet run reads."""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import torch
from torch import nn
from tqdm import tqdm

from .atomic import write_json_atomically
from .config import TrainConfig
from .console import say
from .augmentation import add_training_noise
from .data import DataSource, Loaders, make_loaders
from .datasets import load_data_source
from .distributed import set_epoch, sharded_predictions
from .errors import TrainerError
from .evaluate import accuracy_of, evaluate_accuracy
from .manifest import baseline_block, baseline_mismatches, separate_baseline_block
from .model import BaselineNet
from .checkpoint import load_checkpoint, save_checkpoint
from .optimizers import load_scheduler_state, make_joint_optimizer, scheduler_state
from .runtime import epoch_seed, seed_everything, select_device, use_threads
from .trunks import build_trunk, load_trunk_weights

if TYPE_CHECKING:
    from .distributed import Group


@dataclass
class BaselineResult:
    history: List[float]                 # test accuracy after each epoch
    seconds: Optional[float]
    block: Dict[str, Any]                # the manifest's training.baseline

    @property
    def test_accuracy(self) -> float:
        return self.block["testAccuracy"]

    @staticmethod
    def from_checkpoint(checkpoint: Dict[str, Any], cfg: TrainConfig) -> Optional["BaselineResult"]:
        accuracy = checkpoint.get("baseline_accuracy")
        if accuracy is None:
            return None
        seconds = checkpoint.get("baseline_seconds")
        return BaselineResult(list(checkpoint.get("baseline_history") or []), seconds,
                              baseline_block(cfg, accuracy, seconds))


def checkpoint_fields(baseline: Optional[BaselineResult]) -> Dict[str, Any]:
    """How a checkpoint stores the baseline (BaselineResult.from_checkpoint reads it back)."""
    if baseline is None:
        return {"baseline_accuracy": None, "baseline_history": [], "baseline_seconds": 0.0}
    return {"baseline_accuracy": baseline.test_accuracy, "baseline_history": list(baseline.history),
            "baseline_seconds": baseline.seconds}


def build_baseline(cfg: TrainConfig, source: DataSource) -> BaselineNet:
    trunk = build_trunk(cfg.backbone, source.channels, cfg.small_cnn_widths, cfg.small_cnn_convs_per_stage,
                        cfg.small_cnn_pools, cfg.trunk_weights)
    _, mean, std = load_trunk_weights(trunk, cfg.backbone, cfg.trunk_weights, source.channels)
    return BaselineNet(trunk, trunk.out_channels, len(source.classes), mean or source.mean, std or source.std)


class BaselineCheckpoint:
    """Where the in-process baseline keeps its state after each epoch (rank 0 writes, every rank reads), so that a
    run interrupted while its baseline trained goes on from the baseline's last epoch when resumed: the baseline of the
    paper's recipe trains as long as ProtoPNet, and all of it was trained again."""

    # Settings that change where the images are read from or how fast, not what the baseline learns from them.
    UNCOMPARED = ("data", "num_workers", "threads")

    def __init__(self, path: str, writes: bool, before_write: Callable[[], None]):
        self.path = path
        self.writes = writes
        self.before_write = before_write   # the run folder's guard (a worker that lost its job writes nothing)
        self.earlier_seconds = 0.0   # the time the epochs read back took, before the interruption

    def read(self, cfg: TrainConfig, log: Callable[[str], None]) -> Optional[Dict[str, Any]]:
        """The state saved by the same recipe; None when there is none (or another recipe's, which is said)."""
        if not os.path.isfile(self.path):
            return None
        state = load_checkpoint(self.path)
        saved, now = state["config"], cfg.to_dict()
        differing = sorted(key for key in set(saved) | set(now) if key not in self.UNCOMPARED and saved.get(key) != now.get(key))
        if differing:
            log(f"baseline: {self.path} was trained with another {', '.join(differing)}: the baseline trains from its "
                "first epoch")
            return None
        self.earlier_seconds = float(state["seconds"])
        return state

    def write(self, state: Dict[str, Any]) -> None:
        if self.writes:
            self.before_write()
            save_checkpoint(state, self.path)

    def remove(self) -> None:
        if self.writes and os.path.exists(self.path):
            self.before_write()
            os.remove(self.path)


def train_baseline(cfg: TrainConfig, source: DataSource, loaders: Loaders, device: torch.device,
                   progress: bool = True, log: Callable[[str], None] = print,
                   group: Optional["Group"] = None, checkpoint: Optional[BaselineCheckpoint] = None) -> List[float]:
    """The black box with the same trunk, epochs and augmentation: warm-up epochs train the head only,
    then everything (trunk at the joint trunk rate, the joint stage's schedule). Returns the test accuracy
    after each epoch (the last one is the baseline's result). With a distributed `group` it trains as ProtoPNet
    does there: DistributedDataParallel on each rank's shard (loaders.train), evaluation sharded. With a `checkpoint`
    it saves its state after each epoch, and goes on from a saved one."""
    seed_everything(cfg.seed + 17)
    net = build_baseline(cfg, source).to(device)
    per_batch_schedule = cfg.joint_optimizer == "adamw-onecycle"
    optimizer, scheduler, per_batch = make_joint_optimizer(cfg, [
        {"params": list(net.trunk.parameters()), "lr": cfg.joint_lr_trunk, "weight_decay": cfg.weight_decay},
        {"params": list(net.classifier.parameters()), "lr": cfg.baseline_lr_head,
         "weight_decay": cfg.weight_decay if per_batch_schedule else 0.0}], len(loaders.train))
    head_only = torch.optim.Adam(net.classifier.parameters(), lr=cfg.baseline_lr_head)
    loss_fn = nn.CrossEntropyLoss()
    history: List[float] = []
    first_epoch = 0
    started = time.time()
    saved = checkpoint.read(cfg, log) if checkpoint is not None else None
    if saved is not None:
        net.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        head_only.load_state_dict(saved["head_optimizer"])
        load_scheduler_state(scheduler, saved["scheduler"])
        history, first_epoch = [float(a) for a in saved["history"]], int(saved["epoch"])
        log(f"baseline: resuming from {checkpoint.path} at epoch {first_epoch + 1}")
    parallel: Optional[nn.Module] = None   # on several ranks: a DDP wrapper per phase (its trainable parameters)
    for epoch in range(first_epoch, cfg.epochs):
        seed_everything(epoch_seed(cfg.seed, epoch, group.rank if group else 0))
        warm = epoch < cfg.warm_epochs
        for p in net.trunk.parameters():
            p.requires_grad_(not warm)
        if group is not None and (parallel is None or epoch == cfg.warm_epochs):
            parallel = None
            parallel = group.wrap(net)
        model = parallel if parallel is not None else net
        model.train()
        set_epoch(loaders.train, epoch)
        for images, labels, _ in tqdm(loaders.train, desc=f"baseline {epoch + 1}/{cfg.epochs}", leave=False,
                                      disable=not progress):
            images, labels = add_training_noise(images.to(device), cfg.noise_augment), labels.to(device)
            opt = head_only if warm else optimizer
            loss = loss_fn(model(images), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not warm and per_batch:
                scheduler.step()
        if not warm and not per_batch:
            scheduler.step()
        if group is None:
            accuracy = evaluate_accuracy(net, loaders.test, device, desc="baseline test", progress=progress)
        else:
            group.broadcast_module(net)   # rank 0's batch-norm statistics everywhere
            net.eval()
            both = sharded_predictions(net, group.shard(loaders.test_set, cfg.test_batch_size), group)
            accuracy = accuracy_of(both["labels"], both["predictions"])
        history.append(accuracy)
        log(f"baseline epoch {epoch + 1}/{cfg.epochs} test_acc={accuracy:.4f}")
        if checkpoint is not None:
            checkpoint.write({"config": cfg.to_dict(), "model": net.state_dict(), "classes": list(source.classes),
                              "epoch": epoch + 1, "history": history, "optimizer": optimizer.state_dict(),
                              "head_optimizer": head_only.state_dict(), "scheduler": scheduler_state(scheduler),
                              "seconds": checkpoint.earlier_seconds + time.time() - started})
    return history


def train_in_process(cfg: TrainConfig, source: DataSource, loaders: Loaders, device: torch.device,
                     progress: bool, log: Callable[[str], None], group: Optional["Group"] = None,
                     checkpoint: Optional[BaselineCheckpoint] = None) -> BaselineResult:
    """The baseline trained on ProtoPNet's own data and loaders, after it (on every rank of a distributed run)."""
    started = time.time()
    history = train_baseline(cfg, source, loaders, device, progress, log, group, checkpoint)
    seconds = time.time() - started + (checkpoint.earlier_seconds if checkpoint is not None else 0.0)
    return BaselineResult(history, seconds, baseline_block(cfg, history[-1], seconds))


def train_to_file(cfg: TrainConfig, path: str, progress: bool, log: Callable[[str], None]) -> BaselineResult:
    """Train only the baseline, in this process from the start (same seed, data and loaders as a ProtoPNet run
    of the recipe would have), and write its training.baseline to `path` atomically."""
    started = time.time()
    use_threads(cfg.threads)
    seed_everything(cfg.seed)
    source = load_data_source(cfg, progress, log)
    history = train_baseline(cfg, source, make_loaders(cfg, source), select_device(cfg.device), progress, log)
    block = separate_baseline_block(cfg, history, time.time() - started)
    write_json_atomically(path, block)
    log(f"baseline test accuracy {block['testAccuracy']:.4f} in {block['seconds']:.1f}s; wrote {path}")
    return BaselineResult(history, block["seconds"], block)


def read_baseline_file(path: str, cfg: TrainConfig) -> BaselineResult:
    """A baseline result file of the same recipe as `cfg`; an unreadable file or another recipe's is an error."""
    try:
        with open(path, encoding="utf-8") as f:
            block = json.load(f)
        accuracy = float(block["testAccuracy"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TrainerError(f"baseline result {path} is not readable: {error}") from None
    if not 0.0 <= accuracy <= 1.0:
        raise TrainerError(f"baseline result {path} has test accuracy {accuracy}, outside [0, 1]")
    mismatched = baseline_mismatches(block, cfg)
    if mismatched:
        raise TrainerError(f"baseline result {path} was trained with a different {', '.join(mismatched)} "
                           f"than this run")
    return BaselineResult(list(block.get("history") or []), block.get("seconds"), block)


def _train_to_file_in_child(cfg: TrainConfig, path: str) -> None:
    """The child process's body: its exit code tells the parent whether the file was written."""
    try:
        train_to_file(cfg, path, progress=False, log=say)
    except TrainerError as error:
        print(f"error: baseline: {error}", file=sys.stderr, flush=True)
        sys.exit(2)


class SeparateBaseline:
    """training.baseline from a result file of a baseline trained in another process. When the file is not there
    when this run starts, a child process trains the baseline alongside this run and writes it; `result` waits
    for that child to end (a process wait, no polling) and reads the file.

    Use as a context manager: leaving the block stops a child that is still running."""

    def __init__(self, path: str, cfg: TrainConfig, log: Callable[[str], None] = say):
        self.path, self.cfg, self.log = path, cfg, log
        self.process: Optional[multiprocessing.process.BaseProcess] = None

    def __enter__(self) -> "SeparateBaseline":
        if not os.path.isfile(self.path):
            self.log(f"no baseline result at {self.path}: training the baseline in a parallel process")
            # spawn, not fork: a fresh interpreter, no copy of this process's torch threads or data loaders
            self.process = multiprocessing.get_context("spawn").Process(
                target=_train_to_file_in_child, args=(self.cfg, self.path), name="protopnet-baseline")
            self.process.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join()

    def result(self, wait_seconds: float) -> Optional[BaselineResult]:
        """The baseline, waiting up to `wait_seconds` for the child; None (with a warning) when it did not
        finish in time or failed: the bundle is then published without training.baseline."""
        if self.process is not None:
            if self.process.is_alive():
                self.log(f"waiting up to {wait_seconds:.0f}s for the baseline process (writing {self.path})")
            self.process.join(wait_seconds)
            if self.process.is_alive():
                self.log(f"warning: the baseline process did not finish within {wait_seconds:.0f}s; "
                         f"publishing without training.baseline")
                return None
            if self.process.exitcode != 0:
                self.log(f"warning: the baseline process failed (exit code {self.process.exitcode}); "
                         f"publishing without training.baseline")
                return None
        return baseline_from_file(self.path, self.cfg, self.log)


def baseline_from_file(path: str, cfg: TrainConfig, log: Callable[[str], None]) -> Optional[BaselineResult]:
    """The baseline of a result file, or None (with a warning) when there is no such file."""
    if not os.path.isfile(path):
        log(f"warning: no baseline result at {path}; publishing without training.baseline")
        return None
    return read_baseline_file(path, cfg)
