"""The training schedule: warm-up -> joint, push + last-layer passes, optional pruning, checkpoints, resume."""
from __future__ import annotations

import glob
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint as write_checkpoint
from .config import TrainConfig
from .data import DataSource, Loaders, load_data_source, make_loaders
from .errors import TrainerError
from .losses import LossCoefficients, last_layer_loss, protopnet_loss
from .model import BaselineNet, ProtoPNet, build_model
from .push import push_prototypes
from .trunks import build_trunk, load_trunk_weights

CHECKPOINTS_KEPT = 3


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainerError("--device cuda was asked for but CUDA is not available to torch")
        return torch.device("cuda")
    if name == "cpu":
        return torch.device("cpu")
    raise TrainerError(f"unknown device '{name}' (use auto, cpu or cuda)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def coefficients(cfg: TrainConfig) -> LossCoefficients:
    return LossCoefficients(cfg.coef_crs_ent, cfg.coef_clst, cfg.coef_sep, cfg.coef_l1)


def make_joint_optimizer(cfg: TrainConfig, groups: List[Dict[str, Any]], steps_per_epoch: int):
    """The joint stage's optimizer and lr schedule for parameter groups [{params, lr, weight_decay}].

    adam-step: Adam with StepLR stepped once per epoch (the reference). adamw-onecycle: AdamW with OneCycleLR
    stepped once per batch over all joint steps; each group's `lr` is its peak. Returns (optimizer, scheduler,
    per_batch) where `per_batch` says when to step the scheduler.
    """
    if cfg.joint_optimizer == "adamw-onecycle":
        optimizer = torch.optim.AdamW(groups)
        joint_epochs = max(1, cfg.epochs - cfg.warm_epochs)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in groups], total_steps=joint_epochs * max(1, steps_per_epoch),
            pct_start=cfg.onecycle_pct_start)
        return optimizer, scheduler, True
    optimizer = torch.optim.Adam(groups)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.joint_lr_step, gamma=cfg.joint_lr_gamma)
    return optimizer, scheduler, False


@torch.no_grad()
def clamp_wrong_class_weights(weight: torch.Tensor, prototype_classes: torch.Tensor) -> None:
    """Keep every weight from a prototype to a class other than its own <= 0 (K x M weight, in place), so a
    prototype can only ever count as evidence for its own class."""
    wrong = torch.ones_like(weight, dtype=torch.bool)
    wrong[prototype_classes.long().to(weight.device), torch.arange(weight.shape[1], device=weight.device)] = False
    weight.copy_(torch.where(wrong, weight.clamp(max=0.0), weight))


def scheduler_state(scheduler) -> Dict[str, Any]:
    """A scheduler's state without its functions (torch 1.13's OneCycleLR keeps a bound method in its state)."""
    return {k: v for k, v in scheduler.state_dict().items() if not callable(v)}


def load_scheduler_state(scheduler, state: Dict[str, Any]) -> None:
    scheduler.load_state_dict({**scheduler.state_dict(), **state})


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    return load_checkpoint(path)


def model_from_checkpoint(checkpoint: Dict[str, Any]) -> ProtoPNet:
    cfg = TrainConfig.from_dict(checkpoint["config"])
    state = checkpoint["model"]
    channels = state["mean"].numel()
    model = build_model(cfg, channels, len(checkpoint["classes"]), [0.0] * channels, [1.0] * channels,
                        prototype_classes=state["prototype_classes"].tolist(), load_weights=False)
    model.load_state_dict(state)
    return model


@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device, desc: str = "test", progress: bool = True):
    """(labels, predictions) over a loader."""
    model.eval()
    labels, predictions = [], []
    for images, batch_labels, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        out = model(images.to(device))
        logits = out.logits if hasattr(out, "logits") else out
        predictions.append(logits.argmax(1).cpu())
        labels.append(batch_labels)
    return torch.cat(labels).tolist(), torch.cat(predictions).tolist()


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, loader, device: torch.device, desc: str = "test",
                      progress: bool = True) -> float:
    model.eval()
    correct = total = 0
    for images, labels, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        out = model(images.to(device))
        logits = out.logits if hasattr(out, "logits") else out
        correct += int((logits.argmax(1).cpu() == labels).sum())
        total += len(labels)
    return correct / max(1, total)


@dataclass
class TrainResult:
    model: ProtoPNet
    records: List[Dict]
    history: List[Dict] = field(default_factory=list)
    baseline_accuracy: Optional[float] = None
    seconds: float = 0.0
    test_accuracy: float = 0.0
    train_accuracy: float = 0.0
    confusion: Optional[Any] = None                 # [true, predicted] counts on the test set
    baseline_history: List[float] = field(default_factory=list)
    baseline_seconds: Optional[float] = None
    baseline_block: Optional[Dict[str, Any]] = None  # training.baseline from a separate --baseline-only run


class Trainer:
    """Owns one run: data, model, optimizers, the run folder with checkpoints and metrics.jsonl."""

    def __init__(self, cfg: TrainConfig, run_dir: str, progress: bool = True,
                 source: Optional[DataSource] = None, log: Callable[[str], None] = print):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = run_dir
        self.progress = progress
        self.log = log
        self.device = select_device(cfg.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.source = source or load_data_source(cfg)
        self.loaders: Loaders = make_loaders(cfg, self.source)
        self.coefs = coefficients(cfg)
        self.model = build_model(cfg, self.source.channels, len(self.source.classes), self.source.mean,
                                 self.source.std).to(self.device)
        self._make_optimizers()
        self.epoch = 0           # next epoch to run
        self.records: List[Dict] = []
        self.history: List[Dict] = []
        self.seconds = 0.0
        self.baseline_accuracy: Optional[float] = None
        self.baseline_history: List[float] = []
        self.baseline_seconds = 0.0
        self.train_accuracy: Optional[float] = None    # the final model's, on the un-augmented push set
        try:
            os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        except OSError as error:
            raise TrainerError(f"run folder {run_dir} cannot be created: {error.strerror}") from None

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
        self.model.train()
        sums: Dict[str, float] = {}
        correct = total = 0
        started = time.time()
        bar = tqdm(self.loaders.train, desc=f"epoch {epoch + 1}/{self.cfg.epochs} {phase}", leave=False,
                   disable=not self.progress)
        for images, labels, _ in bar:
            images, labels = images.to(self.device), labels.to(self.device)
            out = self.model(images)
            terms = protopnet_loss(out.logits, out.min_distances, labels, self.model.prototype_classes,
                                   self.model.last_layer.weight, self.coefs)
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
        seconds = time.time() - started
        metrics = {f"loss_{k}": v / max(1, total) for k, v in sums.items()}
        metrics.update(train_accuracy=correct / max(1, total), images_per_second=total / max(seconds, 1e-9))
        return metrics

    # ------------------------------------------------------------------ push and last-layer passes
    def push(self, epoch: int) -> None:
        picture_dir = os.path.join(self.run_dir, "push", f"epoch-{epoch + 1:03d}")
        self.records = push_prototypes(self.model, self.loaders.push_set, self.cfg.push_batch_size, self.device,
                                       picture_dir, progress=self.progress)

    @torch.no_grad()
    def push_set_scores(self) -> torch.Tensor:
        """Prototype scores (similarities) of the un-augmented push set, computed once per last-layer stage."""
        self.model.eval()
        scores = []
        for images, _, _ in tqdm(self.loaders.push, desc="push-set scores", leave=False, disable=not self.progress):
            scores.append(self.model(images.to(self.device)).similarities)
        return torch.cat(scores)

    def train_last_layer(self, iterations: Optional[int] = None, seed_offset: int = 0) -> float:
        """Only h is trained, on cached push-set scores: CE + l1 * L1(wrong-class weights); with
        `last_layer_clamp` the wrong-class weights are clamped to <= 0 after every step."""
        iterations = self.cfg.last_layer_iterations if iterations is None else iterations
        self._set_trainable(False, False, False, True)
        scores = self.push_set_scores()
        labels = torch.tensor(self.loaders.push_set.split.labels, device=self.device)
        generator = torch.Generator().manual_seed(self.cfg.seed * 7919 + seed_offset)
        batch_size = self.cfg.last_layer_batch_size or self.cfg.batch_size
        weight, prototype_classes = self.model.last_layer.weight, self.model.prototype_classes
        if self.cfg.last_layer_clamp:
            clamp_wrong_class_weights(weight, prototype_classes)
        accuracy = 0.0
        for _ in tqdm(range(iterations), desc="last layer", leave=False, disable=not self.progress):
            order = torch.randperm(len(labels), generator=generator).to(self.device)
            correct = 0
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                logits = self.model.last_layer(scores[batch])
                loss = last_layer_loss(logits, labels[batch], self.model.prototype_classes,
                                       self.model.last_layer.weight, self.coefs)
                self.last_optimizer.zero_grad()
                loss.backward()
                self.last_optimizer.step()
                if self.cfg.last_layer_clamp:
                    clamp_wrong_class_weights(weight, prototype_classes)
                correct += int((logits.argmax(1) == labels[batch]).sum())
            accuracy = correct / len(order)
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
            "baseline_accuracy": self.baseline_accuracy, "baseline_history": self.baseline_history,
            "baseline_seconds": self.baseline_seconds, "train_accuracy": self.train_accuracy,
        }

    def save_checkpoint(self, name: Optional[str] = None) -> str:
        folder = os.path.join(self.run_dir, "checkpoints")
        path = os.path.join(folder, name or f"epoch-{self.epoch:03d}.pt")
        write_checkpoint(self.checkpoint_state(), path)
        epochs = sorted(glob.glob(os.path.join(folder, "epoch-*.pt")))
        for old in epochs[:-CHECKPOINTS_KEPT]:
            os.remove(old)
        # Prototype pictures of superseded pushes: only the current prototypes' pictures are ever exported.
        current = {os.path.dirname(r["pictures"]) for r in self.records if r.get("pictures")}
        for pictures in glob.glob(os.path.join(self.run_dir, "push", "epoch-*")):
            if pictures not in current:
                shutil.rmtree(pictures, ignore_errors=True)
        return path

    def resume(self) -> bool:
        """Continue from the latest epoch checkpoint in the run folder. Returns False when there is none."""
        epochs = sorted(glob.glob(os.path.join(self.run_dir, "checkpoints", "epoch-*.pt")))
        if not epochs:
            return False
        checkpoint = load_checkpoint_file(epochs[-1])
        saved = TrainConfig.from_dict(checkpoint["config"])
        if list(checkpoint["classes"]) != list(self.source.classes):
            raise TrainerError(f"checkpoint {epochs[-1]} has {len(checkpoint['classes'])} classes, the data set has "
                               f"{len(self.source.classes)}")
        if saved.backbone != self.cfg.backbone or saved.prototypes_per_class != self.cfg.prototypes_per_class:
            raise TrainerError(f"checkpoint {epochs[-1]} was trained with a different model configuration")
        # OneCycle's lr trajectory is fixed by the joint length: it cannot be stretched mid-run (StepLR can).
        onecycle = "adamw-onecycle" in (saved.joint_optimizer, self.cfg.joint_optimizer)
        if saved.joint_optimizer != self.cfg.joint_optimizer or (onecycle and (saved.epochs, saved.warm_epochs) != (
                self.cfg.epochs, self.cfg.warm_epochs)):
            raise TrainerError(f"checkpoint {epochs[-1]} was trained with a different schedule (joint optimizer "
                               f"{saved.joint_optimizer}, {saved.epochs} epochs, {saved.warm_epochs} warm-up)")
        self.model.load_state_dict(checkpoint["model"])
        self.warm_optimizer.load_state_dict(checkpoint["warm_optimizer"])
        self.joint_optimizer.load_state_dict(checkpoint["joint_optimizer"])
        load_scheduler_state(self.joint_scheduler, checkpoint["joint_scheduler"])
        self.last_optimizer.load_state_dict(checkpoint["last_optimizer"])
        self.epoch = int(checkpoint["epoch"])
        self.records = list(checkpoint["records"])
        self.history = list(checkpoint["history"])
        self.seconds = float(checkpoint["seconds"])
        self.log(f"resuming from {epochs[-1]} at epoch {self.epoch + 1}")
        return True

    # ------------------------------------------------------------------ the whole schedule
    def run(self, on_epoch_end: Optional[Callable[[int], None]] = None) -> TrainResult:
        cfg = self.cfg
        metrics_path = os.path.join(self.run_dir, "metrics.jsonl")
        while self.epoch < cfg.epochs:
            epoch = self.epoch
            started = time.time()
            seed_everything(cfg.seed * 1000003 + epoch)  # each epoch's randomness is fixed: resume is exact
            metrics: Dict[str, Any] = {"epoch": epoch + 1, "phase": self.phase(epoch)}
            metrics.update(self.train_epoch(epoch))
            if self.push_due(epoch):
                metrics["test_accuracy_before_push"] = evaluate_accuracy(self.model, self.loaders.test, self.device,
                                                                         progress=self.progress)
                self.push(epoch)
                metrics["pushed"] = True
                metrics["last_layer_accuracy"] = self.train_last_layer(seed_offset=epoch)
            metrics["test_accuracy"] = evaluate_accuracy(self.model, self.loaders.test, self.device,
                                                         progress=self.progress)
            metrics["seconds"] = time.time() - started
            self.seconds += metrics["seconds"]
            self.epoch += 1
            self.history.append(metrics)
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(metrics) + "\n")
            self.log(format_metrics(metrics, cfg.epochs))
            self.save_checkpoint()
            if on_epoch_end is not None:
                on_epoch_end(epoch)
        started = time.time()
        if cfg.prune:
            self.prune()
        from .report import confusion_matrix
        result = TrainResult(self.model, self.records, self.history)
        labels, predictions = predict(self.model, self.loaders.test, self.device, progress=self.progress)
        result.confusion = confusion_matrix(labels, predictions, len(self.source.classes))
        result.test_accuracy = sum(int(a == b) for a, b in zip(labels, predictions)) / max(1, len(labels))
        result.train_accuracy = self.train_accuracy = evaluate_accuracy(
            self.model, self.loaders.push, self.device, desc="train", progress=self.progress)
        self.seconds += time.time() - started
        result.seconds = self.seconds
        if cfg.with_baseline:
            baseline_started = time.time()
            self.baseline_history = train_baseline(cfg, self.source, self.loaders, self.device, self.progress,
                                                   self.log)
            self.baseline_accuracy = self.baseline_history[-1]
            self.baseline_seconds = time.time() - baseline_started
        result.baseline_accuracy = self.baseline_accuracy
        result.baseline_history = list(self.baseline_history)
        result.baseline_seconds = self.baseline_seconds if self.baseline_accuracy is not None else None
        self.save_checkpoint("final.pt")
        return result

    def prune(self) -> int:
        from .prune import prune_prototypes
        keep = prune_prototypes(self.model, self.loaders.push_set, self.cfg.push_batch_size, self.device,
                                self.cfg.prune_k, self.cfg.prune_threshold, progress=self.progress)
        removed = self.model.num_prototypes - len(keep)
        self.model.keep_prototypes(torch.tensor(keep, dtype=torch.long))
        self.records = [self.records[j] for j in keep]
        self.last_optimizer = torch.optim.Adam([{"params": self.model.last_layer.parameters(),
                                                 "lr": self.cfg.last_layer_lr}])
        accuracy = self.train_last_layer(seed_offset=10 ** 6)
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


def per_batch_schedule(cfg: TrainConfig) -> bool:
    return cfg.joint_optimizer == "adamw-onecycle"


def build_baseline(cfg: TrainConfig, source: DataSource) -> BaselineNet:
    trunk = build_trunk(cfg.backbone, source.channels, cfg.small_cnn_widths, cfg.small_cnn_convs_per_stage,
                        cfg.small_cnn_pools, cfg.trunk_weights)
    _, mean, std = load_trunk_weights(trunk, cfg.backbone, cfg.trunk_weights, source.channels)
    return BaselineNet(trunk, trunk.out_channels, len(source.classes), mean or source.mean, std or source.std)


def train_baseline(cfg: TrainConfig, source: DataSource, loaders: Loaders, device: torch.device,
                   progress: bool = True, log: Callable[[str], None] = print) -> List[float]:
    """The black box with the same trunk, epochs and augmentation: warm-up epochs train the head only,
    then everything (trunk at the joint trunk rate, StepLR like the joint stage). Returns the test accuracy
    after each epoch (the last one is the baseline's result)."""
    seed_everything(cfg.seed + 17)
    net = build_baseline(cfg, source).to(device)
    optimizer, scheduler, per_batch = make_joint_optimizer(cfg, [
        {"params": list(net.trunk.parameters()), "lr": cfg.joint_lr_trunk, "weight_decay": cfg.weight_decay},
        {"params": list(net.classifier.parameters()), "lr": cfg.baseline_lr_head,
         "weight_decay": cfg.weight_decay if per_batch_schedule(cfg) else 0.0}], len(loaders.train))
    head_only = torch.optim.Adam(net.classifier.parameters(), lr=cfg.baseline_lr_head)
    loss_fn = nn.CrossEntropyLoss()
    history: List[float] = []
    for epoch in range(cfg.epochs):
        seed_everything(cfg.seed * 1000003 + epoch)
        warm = epoch < cfg.warm_epochs
        for p in net.trunk.parameters():
            p.requires_grad_(not warm)
        net.train()
        for images, labels, _ in tqdm(loaders.train, desc=f"baseline {epoch + 1}/{cfg.epochs}", leave=False,
                                      disable=not progress):
            images, labels = images.to(device), labels.to(device)
            opt = head_only if warm else optimizer
            loss = loss_fn(net(images), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not warm and per_batch:
                scheduler.step()
        if not warm and not per_batch:
            scheduler.step()
        accuracy = evaluate_accuracy(net, loaders.test, device, desc="baseline test", progress=progress)
        history.append(accuracy)
        log(f"baseline epoch {epoch + 1}/{cfg.epochs} test_acc={accuracy:.4f}")
    return history
