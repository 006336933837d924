"""Throughput of each training stage (images per second) for a configuration, on the chosen device."""
from __future__ import annotations

import tempfile
import time
from typing import List

import torch

from .config import TrainConfig
from .push import push_prototypes
from .train import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_benchmark(cfg: TrainConfig, batches: int, progress: bool = True) -> List[str]:
    """Warm-up and joint: `batches` training batches each; push: the same images through the push search
    (with the prototype pictures); last layer: caching the push-set scores once, then the passes over them."""
    # Every image measured is a training image: none held out to calibrate (the smoke preset holds out 400).
    cfg = cfg.replace(train_limit=batches * cfg.batch_size, with_baseline=False, calibration_holdout=0, epoch_copies=1)
    with tempfile.TemporaryDirectory(prefix="protopnet-benchmark-") as run_dir:
        trainer = Trainer(cfg, run_dir, progress=progress, log=lambda line: None)
        device, threads = trainer.device, torch.get_num_threads()
        lines = [f"benchmark: {cfg.dataset} {cfg.backbone} {cfg.image_size}px, batch {cfg.batch_size}, "
                 f"{batches} batches, torch {torch.__version__}, {threads} thread{'s' if threads != 1 else ''}, "
                 f"device {device}"]
        images = len(trainer.loaders.train_set)
        trainer.train_epoch(0)  # one untimed pass: allocator, cuDNN autotuning, data caches
        results = {}
        for stage, epoch in (("warm-up", 0), ("joint", cfg.warm_epochs)):
            _sync(device)
            started = time.perf_counter()
            trainer.train_epoch(epoch)
            _sync(device)
            results[stage] = images / (time.perf_counter() - started)
        _sync(device)
        started = time.perf_counter()
        push_prototypes(trainer.model, trainer.loaders.push_set, cfg.push_batch_size, device, run_dir + "/push",
                        progress=progress, require_every_class=False)
        _sync(device)
        results["push"] = images / (time.perf_counter() - started)
        started = time.perf_counter()
        trainer.push_set_scores()
        _sync(device)
        score_seconds = time.perf_counter() - started
        results["push-set scores"] = images / score_seconds
        iterations = max(1, cfg.last_layer_iterations)
        started = time.perf_counter()
        trainer.train_last_layer(iterations)
        _sync(device)
        total = time.perf_counter() - started
        results["last-layer"] = images * iterations / total
    for stage, rate in results.items():
        lines.append(f"{stage:16s} {rate:10.1f} images/s")
    lines.append(f"(last-layer counts {iterations} passes over {images} cached image scores, "
                 f"including one scoring pass of the push set)")
    return lines
