"""The process's compute setup: device, CPU threads and random seeds (Python, NumPy, torch)."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .console import say
from .errors import TrainerError


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


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def at_most_usable(count: int, what: str) -> int:
    """`count` (threads, loader workers), held to the CPUs this process may use: more only fight over them (a job
    asking for 256 threads on 2 cores ran an epoch many times slower). Says so when it holds it."""
    usable = usable_cpus()
    if count > usable:
        say(f"{what} {count} is more than the {usable} CPUs this process may use: using {usable}")
        return usable
    return count


def use_threads(threads: int) -> None:
    """torch's CPU threads, at most one per usable CPU; 0 keeps torch's default."""
    if threads > 0:
        torch.set_num_threads(at_most_usable(threads, "--threads"))


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch of a run: each epoch's randomness is fixed (a resume is exact), and other ranks of a
    distributed run draw other augmentations of their shards."""
    return seed * 1000003 + epoch + rank * 7919


def seed_everything(seed: int) -> None:
    """Seeds the process-wide generators. Global on purpose: torchvision's random transforms, a DataLoader's shuffling
    and nn.init draw from them and take no generator of their own. Measuring a model (the scorecard's noise and
    sampling, the last layer's order) uses generators of its own, so it does not move a run's draws."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
