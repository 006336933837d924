"""The training schedule of one run: warm-up -> joint epochs, push + last-layer passes, optional pruning, the
baseline, checkpoints and resume. `Trainer.run` is the entry for a whole run; `Trainer.from_checkpoint` rebuilds a
trainer for the stages after training (push, last layer, pruning) from a checkpoint."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

from .augmentation import add_training_noise
from .background import background_to_leave_out, foreground_min_distances
from .baseline import BaselineCheckpoint, BaselineResult, checkpoint_fields, train_in_process
from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import TrainConfig
from .console import say
from .data import DataSource, Loaders, epoch_set, make_loaders, name_list, require_same_classes
from .datasets import load_data_source
from .distributed import set_epoch, sharded_predictions, sharded_scores
from .errors import TrainerError
from .evaluate import accuracy_of, confusion_matrix, evaluate_accuracy, test_metrics
from .last_layer import fit_last_layer
from .losses import LossCoefficients, protopnet_loss
from .model import ProtoPNet, build_model
from .optimizers import load_scheduler_state, make_joint_optimizer, scheduler_state
from .prune import prune_prototypes
from .push import push_prototypes
from .resume_rules import other_data_warning, refuse_other_model_settings
from .run_folder import RunFolder
from .runtime import epoch_seed, seed_everything, select_device, use_threads

if TYPE_CHECKING:
    from .distributed import Group

# Last-layer epochs after pruning for each after a push: the reference's run_pruning.py trains 100 against 20.
PRUNE_LAST_LAYER_FACTOR = 5


def coefficients(cfg: TrainConfig) -> LossCoefficients:
    return LossCoefficients(cfg.coef_crs_ent, cfg.coef_clst, cfg.coef_sep, cfg.coef_l1)


@dataclass
class TrainResult:
    """A finished run, as a bundle publishes it."""
    model: ProtoPNet
    records: List[Dict]                             # one push record per prototype
    history: List[Dict] = field(default_factory=list)   # the metrics of each epoch
    seconds: float = 0.0
    test_accuracy: float = 0.0
    train_accuracy: float = 0.0
    confusion: Optional[Any] = None                 # [true, predicted] counts on the test set
    baseline: Optional[BaselineResult] = None

    @staticmethod
    def from_checkpoint(checkpoint: Dict[str, Any], model: ProtoPNet, records: List[Dict], test_accuracy: float,
                        confusion: Any, extra_seconds: float = 0.0) -> "TrainResult":
        """The result of the run a checkpoint was saved from, with `model` and its push records (the checkpoint's
        own, or pushed since) and the test metrics measured again; `extra_seconds` of work since are added."""
        history = list(checkpoint.get("history", []))
        last = history[-1] if history else {}
        return TrainResult(model, records, history, seconds=float(checkpoint.get("seconds", 0.0)) + extra_seconds,
                           test_accuracy=test_accuracy,
                           train_accuracy=float(checkpoint.get("train_accuracy") or last.get("train_accuracy", 0.0)),
                           confusion=confusion,
                           baseline=BaselineResult.from_checkpoint(
                               checkpoint, TrainConfig.from_dict(checkpoint["config"])))


class Trainer:
    """Owns one run: data, model, optimizers, the run folder with checkpoints and metrics.jsonl.

    With a distributed `group` (see distributed.py) every rank runs the same schedule on its shard of the data:
    DistributedDataParallel for the epochs, a sharded push, push-set scores and evaluation whose results every
    rank gets whole, and the same last-layer passes on every rank. Only rank 0 writes the run folder."""

    def __init__(self, cfg: TrainConfig, run_dir: str, progress: bool = True,
                 source: Optional[DataSource] = None, log: Callable[[str], None] = say,
                 group: Optional["Group"] = None):
        cfg.validate()
        self.cfg = cfg
        self.folder = RunFolder(run_dir)
        self.progress = progress
        self.log = log
        self.group = group
        self.device = group.device if group is not None else select_device(cfg.device)
        use_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.source = source or load_data_source(cfg, progress, log, on_checked=self.images_checked, group=group)
        untested = self.source.test.classes_without_images()
        if untested:
            log(f"warning: {len(untested)} of {len(self.source.classes)} classes have no test images "
                f"({name_list(untested)}): the test accuracy and the "
                f"confusion matrix say nothing about them")
        self.loaders: Loaders = make_loaders(cfg, self.source)
        if group is not None:   # before the optimizers: a OneCycle schedule counts this rank's batches
            self.loaders.train = group.train_loader(epoch_set(self.loaders.train_set, cfg), cfg.batch_size, cfg.seed,
                                                    cfg.num_workers)
        self._parallel: Optional[Tuple[str, torch.nn.Module]] = None   # (phase, DDP wrapper of self.model)
        self.coefs = coefficients(cfg)
        self.model = build_model(cfg, self.source.channels, len(self.source.classes), self.source.mean,
                                 self.source.std).to(self.device)
        self._make_optimizers()
        self.epoch = 0           # next epoch to run
        self.records: List[Dict] = []
        self.history: List[Dict] = []
        self.seconds = 0.0
        self.baseline: Optional[BaselineResult] = None
        self.train_accuracy: Optional[float] = None    # the final model's, on the un-augmented push set
        self.preset: Optional[str] = None    # the recipe's name, kept in checkpoints for a later export's manifest
        self.folder.create()

    @classmethod
    def from_checkpoint(cls, checkpoint: Dict[str, Any], run_dir: str, cfg: Optional[TrainConfig] = None,
                        progress: bool = True, log: Callable[[str], None] = say) -> "Trainer":
        """A trainer holding a checkpoint's model, push records, history, time and baseline, with fresh
        optimizers: for the stages after training (push, last layer, pruning). `cfg` defaults to the
        checkpoint's own configuration. (To continue an interrupted run, use `resume`.)"""
        trainer = cls(cfg or TrainConfig.from_dict(checkpoint["config"]), run_dir, progress=progress, log=log)
        require_same_classes(checkpoint["classes"], trainer.source.classes, "the checkpoint", trainer.cfg.dataset)
        trainer.model = model_from_checkpoint(checkpoint).to(trainer.device)
        trainer._parallel = None
        trainer._make_optimizers()
        trainer._restore_progress(checkpoint)
        trainer.baseline = BaselineResult.from_checkpoint(checkpoint, trainer.cfg)
        trainer.preset = checkpoint.get("preset")
        return trainer

    def images_checked(self, done: int, total: int) -> None:
        """How far the check of the data's image files got (datasets.load_data_source), before this trainer is set
        up: nothing here; the worker's trainer reports it, and stops there when its job is cancelled."""

    def _restore_progress(self, checkpoint: Dict[str, Any]) -> None:
        self.epoch = int(checkpoint["epoch"])
        self.records = list(checkpoint["records"])
        self.history = list(checkpoint["history"])
        self.seconds = float(checkpoint["seconds"])

    # ------------------------------------------------------------------ optimizers and stages
    def _make_optimizers(self) -> None:
        cfg, model = self.cfg, self.model
        self.warm_optimizer = torch.optim.Adam([
            {"params": model.add_on.parameters(), "lr": cfg.warm_lr_add_on, "weight_decay": cfg.weight_decay},
            {"params": [model.prototypes], "lr": cfg.warm_lr_prototypes}])
        self.joint_optimizer, self.joint_scheduler, self.joint_scheduler_per_batch = make_joint_optimizer(cfg, [
            {"params": list(model.trunk.parameters()), "lr": cfg.joint_lr_trunk, "weight_decay": cfg.weight_decay},
            {"params": list(model.add_on.parameters()), "lr": cfg.joint_lr_add_on, "weight_decay": cfg.weight_decay},
            {"params": [model.prototypes], "lr": cfg.joint_lr_prototypes, "weight_decay": 0.0}],
            len(self.loaders.train))
        self.last_optimizer = torch.optim.Adam([{"params": model.last_layer.parameters(), "lr": cfg.last_layer_lr}])

    def _set_trainable(self, trunk: bool, add_on: bool, prototypes: bool, last: bool) -> None:
        for p in self.model.trunk.parameters():
            p.requires_grad_(trunk)
        for p in self.model.add_on.parameters():
            p.requires_grad_(add_on)
        self.model.prototypes.requires_grad_(prototypes)
        for p in self.model.last_layer.parameters():
            p.requires_grad_(last)

    def phase(self, epoch: int) -> str:
        return "warm" if epoch < self.cfg.warm_epochs else "joint"

    def push_due(self, epoch: int) -> bool:
        cfg = self.cfg
        final = epoch == cfg.epochs - 1
        if cfg.push_every == 0:   # one push, after the last epoch
            return final
        scheduled = epoch >= cfg.push_start and (epoch - cfg.push_start) % cfg.push_every == 0
        return final or scheduled

    # ------------------------------------------------------------------ one epoch of warm-up or joint training
    def train_epoch(self, epoch: int) -> Dict[str, float]:
        phase = self.phase(epoch)
        if phase == "warm":
            self._set_trainable(False, True, True, False)
            optimizer = self.warm_optimizer
        else:
            self._set_trainable(True, True, True, False)
            optimizer = self.joint_optimizer
        model = self._trained_model(phase)
        model.train()
        set_epoch(self.loaders.train, epoch)
        sums: Dict[str, float] = {}
        correct = total = 0
        started = time.time()
        bar = tqdm(self.loaders.train, desc=f"epoch {epoch + 1}/{self.cfg.epochs} {phase}", leave=False,
                   disable=not self.progress)
        for images, labels, _ in bar:
            images, labels = images.to(self.device), labels.to(self.device)
            clean = images
            images = add_training_noise(images, self.cfg.noise_augment)
            out = model(images)
            cluster_distances = None
            if self.cfg.background_aware:   # on the clean image: noise would hide a uniform border
                leave_out = background_to_leave_out(clean, *out.distances.shape[-2:])
                cluster_distances = foreground_min_distances(out.distances, leave_out)
            terms = protopnet_loss(out.logits, out.min_distances, labels, self.model.prototype_classes,
                                   self.model.last_layer.weight, self.coefs, cluster_distances)
            optimizer.zero_grad()
            terms["total"].backward()
            optimizer.step()
            if phase == "joint" and self.joint_scheduler_per_batch:
                self.joint_scheduler.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(labels)
            correct += int((out.logits.argmax(1) == labels).sum())
            total += len(labels)
            bar.set_postfix(loss=f"{float(terms['total']):.3f}")
        if phase == "joint" and not self.joint_scheduler_per_batch:
            self.joint_scheduler.step()
        if self.group is not None:   # every rank's sums, and rank 0's batch-norm statistics on every rank
            keys = sorted(sums)
            reduced = self.group.sum_numbers([sums[k] for k in keys] + [correct, total])
            sums, correct, total = dict(zip(keys, reduced[:-2])), int(reduced[-2]), int(reduced[-1])
            self.group.broadcast_module(self.model)
        seconds = time.time() - started
        metrics = {f"loss_{k}": v / max(1, total) for k, v in sums.items()}
        metrics.update(train_accuracy=correct / max(1, total), images_per_second=total / max(seconds, 1e-9))
        # Weights that have blown up would go on to a push that finds no finite distance: said for what it is.
        if not math.isfinite(metrics.get("loss_total", 0.0)):
            raise TrainerError(f"the training diverged: the loss of epoch {epoch + 1} is {metrics['loss_total']}; "
                               f"train again with lower learning rates or loss weights")
        return metrics

    def _trained_model(self, phase: str) -> torch.nn.Module:
        """The model the epoch's batches go through: itself, or on several ranks a DistributedDataParallel wrapper
        built for the phase's trainable parameters (DDP reduces the gradients of those it was built with)."""
        if self.group is None:
            return self.model
        if self._parallel is None or self._parallel[0] != phase:
            self._parallel = None   # drop the previous phase's wrapper first
            self._parallel = (phase, self.group.wrap(self.model))
        return self._parallel[1]

    @property
    def is_main(self) -> bool:
        """The process that writes the run folder: the only one, or rank 0."""
        return self.group is None or self.group.is_main

    # ------------------------------------------------------------------ evaluation
    def accuracy(self, loader: torch.utils.data.DataLoader, desc: str = "test") -> float:
        """Accuracy over an un-augmented loader (on several ranks: each evaluates its shard)."""
        if self.group is None:
            return evaluate_accuracy(self.model, loader, self.device, desc=desc, progress=self.progress)
        labels, predictions = self._sharded_predictions(loader)
        return accuracy_of(labels, predictions)

    def test_metrics(self) -> Tuple[float, Any]:
        if self.group is None:
            return test_metrics(self.model, self.loaders.test, self.device, len(self.source.classes),
                                progress=self.progress)
        labels, predictions = self._sharded_predictions(self.loaders.test)
        return accuracy_of(labels, predictions), confusion_matrix(labels, predictions, len(self.source.classes))

    def _sharded_predictions(self, loader: torch.utils.data.DataLoader):
        assert self.group is not None
        self.model.eval()
        shard = self.group.shard(loader.dataset, loader.batch_size or 1, self.cfg.num_workers)
        both = sharded_predictions(self.model, shard, self.group)
        return both["labels"], both["predictions"]

    # ------------------------------------------------------------------ push and last-layer passes
    def push(self, epoch: int) -> None:
        self.records = push_prototypes(self.model, self.loaders.push_set, self.cfg.push_batch_size, self.device,
                                       self.folder.push_pictures(epoch), progress=self.progress, group=self.group,
                                       background_aware=self.cfg.background_aware, loader=self.loaders.push)

    @torch.no_grad()
    def push_set_scores(self) -> torch.Tensor:
        """Prototype scores (similarities) of the un-augmented push set, computed once per last-layer stage."""
        self.model.eval()
        if self.group is not None:
            shard = self.group.shard(self.loaders.push_set, self.cfg.push_batch_size, self.cfg.num_workers)
            return sharded_scores(self.model, shard, self.group, self.model.num_prototypes)
        scores = []
        for images, _, _ in tqdm(self.loaders.push, desc="push-set scores", leave=False, disable=not self.progress):
            scores.append(self.model(images.to(self.device)).similarities)
        return torch.cat(scores)

    def train_last_layer(self, iterations: Optional[int] = None, seed_offset: int = 0) -> float:
        """Only h is trained, on cached push-set scores: CE + l1 * L1(wrong-class weights); with
        `last_layer_clamp` the wrong-class weights are clamped to <= 0 after every step. `iterations` passes over the
        scores; by default the recipe's last-layer epochs, each `epoch_copies` passes as a training epoch is."""
        iterations = self.cfg.last_layer_passes if iterations is None else iterations
        self._set_trainable(False, False, False, True)
        scores = self.push_set_scores()
        labels = torch.tensor(self.loaders.push_set.split.labels, device=self.device)
        generator = torch.Generator().manual_seed(self.cfg.seed * 7919 + seed_offset)
        accuracy = fit_last_layer(self.model, scores, labels, self.last_optimizer, self.coefs, self.cfg, iterations,
                                  generator, self.progress)
        if self.group is not None:   # the ranks trained alike on the same scores; rank 0's weights settle it
            self.group.broadcast_module(self.model.last_layer)
        return accuracy

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> Dict[str, Any]:
        return {
            "format": "protopnet-checkpoint", "config": self.cfg.to_dict(), "epoch": self.epoch,
            "classes": list(self.source.classes), "model": self.model.state_dict(),
            "warm_optimizer": self.warm_optimizer.state_dict(), "joint_optimizer": self.joint_optimizer.state_dict(),
            "joint_scheduler": scheduler_state(self.joint_scheduler), "last_optimizer": self.last_optimizer.state_dict(),
            "records": self.records, "history": self.history, "seconds": self.seconds,
            "train_size": len(self.source.train), "test_size": len(self.source.test),
            **checkpoint_fields(self.baseline),
            "train_accuracy": self.train_accuracy, "preset": self.preset,
        }

    def save_checkpoint(self, name: Optional[str] = None, keep_other_pictures: bool = False) -> str:
        """checkpoints/<name> (default: this epoch's); then only the current push's pictures are kept, unless
        `keep_other_pictures` (a checkpoint written beside the run's own, e.g. by `prune`, whose final.pt still needs
        its pictures). On several ranks only rank 0 writes; every rank returns the path."""
        name = name or self.folder.epoch_checkpoint_name(self.epoch)
        if not self.is_main:
            return os.path.join(self.folder.checkpoints, name)
        path = self.folder.save_checkpoint(self.checkpoint_state(), name)
        if not keep_other_pictures:
            self.folder.keep_push_pictures(os.path.dirname(r["pictures"]) for r in self.records if r.get("pictures"))
        return path

    def resume(self) -> bool:
        """Continue from the latest epoch checkpoint in the run folder, optimizer and schedule states included,
        so the rest of the run is the same as without the interruption. Returns False when there is none."""
        latest = self.folder.latest_epoch_checkpoint()
        if latest is None:
            return False
        checkpoint = load_checkpoint(latest)
        saved = TrainConfig.from_dict(checkpoint["config"])
        require_same_classes(checkpoint["classes"], self.source.classes, f"checkpoint {latest}", self.cfg.dataset)
        refuse_other_model_settings(latest, saved, self.cfg)
        data_warning = other_data_warning(latest, saved, self.cfg)
        if data_warning:
            self.log(f"warning: {data_warning}")
        if saved.decodes_jpeg_draft != self.cfg.decodes_jpeg_draft:   # the bundle must say how all its images were decoded
            raise TrainerError(f"checkpoint {latest} was trained with JPEGs decoded "
                               f"{'at a reduced DCT scale' if saved.decodes_jpeg_draft else 'in full'}: resume with "
                               f"{'--jpeg-draft' if saved.decodes_jpeg_draft else '--no-jpeg-draft'}")
        # OneCycle's lr trajectory is fixed by the joint length: it cannot be stretched mid-run (StepLR can).
        onecycle = "adamw-onecycle" in (saved.joint_optimizer, self.cfg.joint_optimizer)
        if saved.joint_optimizer != self.cfg.joint_optimizer or (onecycle and (saved.epochs, saved.warm_epochs) != (
                self.cfg.epochs, self.cfg.warm_epochs)):
            why = (f"--joint-optimizer {self.cfg.joint_optimizer} is asked for" if saved.joint_optimizer != self.cfg.joint_optimizer
                   else "a one-cycle learning rate is fixed by its run's length, so its run cannot be made longer or shorter")
            # What the checkpoint's schedule needs: its optimizer, and for a one-cycle run its own length too.
            resume_with = (f" --epochs {saved.epochs} --warm-epochs {saved.warm_epochs}" if saved.joint_optimizer == "adamw-onecycle" else "") \
                + (f" --joint-optimizer {saved.joint_optimizer}" if saved.joint_optimizer != self.cfg.joint_optimizer else "")
            raise TrainerError(f"checkpoint {latest} was trained with a different schedule (joint optimizer "
                               f"{saved.joint_optimizer}, {saved.epochs} epochs, {saved.warm_epochs} warm-up) and {why}: "
                               f"resume with{resume_with}, or train in a new run folder")
        trained = int(checkpoint["epoch"])
        if trained > self.cfg.epochs:
            raise TrainerError(f"checkpoint {latest} has trained {trained} epochs already, more than --epochs "
                               f"{self.cfg.epochs}: resume with --epochs {trained} or more, or train in a new run folder")
        self.model.load_state_dict(checkpoint["model"])
        self.warm_optimizer.load_state_dict(checkpoint["warm_optimizer"])
        self.joint_optimizer.load_state_dict(checkpoint["joint_optimizer"])
        load_scheduler_state(self.joint_scheduler, checkpoint["joint_scheduler"])
        self.last_optimizer.load_state_dict(checkpoint["last_optimizer"])
        self._restore_progress(checkpoint)
        if self.is_main:
            self.folder.keep_metrics_through(self.epoch)
        if self.epoch < self.cfg.epochs:
            self.log(f"resuming from {latest} at epoch {self.epoch + 1}")
        else:
            # An 8-epoch run "resuming at epoch 9" read as a bug: its epochs are done, what follows them is not.
            self.log(f"resuming from {latest}: all {self.cfg.epochs} epochs are trained; the steps after them go on"
                     + (" (the baseline from its own last epoch, if it saved one)" if self.cfg.with_baseline else ""))
        return True

    # ------------------------------------------------------------------ the whole schedule
    def run(self, on_epoch_end: Optional[Callable[[int], None]] = None) -> TrainResult:
        """The rest of the schedule from `self.epoch`, then pruning (if configured), the final metrics and the
        in-process baseline (if configured). `on_epoch_end(epoch)` is called once each epoch is checkpointed:
        raising from it stops the run there, and `resume` continues it."""
        cfg = self.cfg
        while self.epoch < cfg.epochs:
            epoch = self.epoch
            started = time.time()
            # Each epoch's randomness is fixed, so resume is exact; other ranks augment their shards differently.
            seed_everything(epoch_seed(cfg.seed, epoch, self.group.rank if self.group else 0))
            metrics: Dict[str, Any] = {"epoch": epoch + 1, "phase": self.phase(epoch)}
            metrics.update(self.train_epoch(epoch))
            if self.push_due(epoch):
                metrics["test_accuracy_before_push"] = self.accuracy(self.loaders.test)
                self.push(epoch)
                metrics["pushed"] = True
                metrics["last_layer_accuracy"] = self.train_last_layer(seed_offset=epoch)
            metrics["test_accuracy"] = self.accuracy(self.loaders.test)
            metrics["seconds"] = time.time() - started
            self.seconds += metrics["seconds"]
            self.epoch += 1
            self.history.append(metrics)
            if self.is_main:
                self.folder.append_metrics(metrics)
            self.log(format_metrics(metrics, cfg.epochs))
            self.save_checkpoint()
            if on_epoch_end is not None:
                on_epoch_end(epoch)
        started = time.time()
        if cfg.prune:
            self.prune()
        test_accuracy, confusion = self.test_metrics()
        self.train_accuracy = self.accuracy(self.loaders.push, desc="train")
        self.seconds += time.time() - started
        baseline_checkpoint = BaselineCheckpoint(os.path.join(self.folder.checkpoints, "baseline.pt"), self.is_main,
                                                 lambda: self.folder.before_write())
        if cfg.with_baseline:
            self.baseline = train_in_process(cfg, self.source, self.loaders, self.device, self.progress, self.log,
                                             group=self.group, checkpoint=baseline_checkpoint)
        self.save_checkpoint("final.pt")
        baseline_checkpoint.remove()   # its result is in final.pt
        return TrainResult(self.model, self.records, self.history, seconds=self.seconds,
                           test_accuracy=test_accuracy, train_accuracy=self.train_accuracy, confusion=confusion,
                           baseline=self.baseline)

    def prune(self) -> int:
        """Remove the prototypes whose nearest training patches are mostly of other classes, then train the
        last layer again. Returns how many were removed."""
        keep = prune_prototypes(self.model, self.loaders.push_set, self.cfg.push_batch_size, self.device,
                                self.cfg.prune_k, self.cfg.prune_threshold, progress=self.progress, loader=self.loaders.push)
        removed = self.model.num_prototypes - len(keep)
        self.model.keep_prototypes(torch.tensor(keep, dtype=torch.long))
        self.records = [self.records[j] for j in keep]
        self.last_optimizer = torch.optim.Adam([{"params": self.model.last_layer.parameters(),
                                                 "lr": self.cfg.last_layer_lr}])
        # The reference trains the last layer for 100 epochs after pruning, five times its 20 after a push.
        accuracy = self.train_last_layer(PRUNE_LAST_LAYER_FACTOR * self.cfg.last_layer_passes, seed_offset=10 ** 6)
        self.log(f"pruned {removed} prototypes, {self.model.num_prototypes} left; last-layer accuracy {accuracy:.4f}")
        return removed


def format_metrics(metrics: Dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {metrics['epoch']}/{epochs}", metrics["phase"]]
    for key in ("loss_total", "loss_cross_entropy", "loss_cluster", "loss_separation", "loss_l1"):
        if key in metrics:
            parts.append(f"{key[5:]}={metrics[key]:.4f}")
    parts.append(f"train_acc={metrics['train_accuracy']:.4f}")
    if metrics.get("pushed"):
        parts.append(f"pushed last_layer_acc={metrics['last_layer_accuracy']:.4f}")
    parts.append(f"test_acc={metrics['test_accuracy']:.4f}")
    parts.append(f"{metrics['images_per_second']:.0f} img/s {metrics['seconds']:.1f}s")
    return " ".join(parts)
