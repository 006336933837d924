"""The process's compute setup: device, CPU threads and random seeds (Python, NumPy, torch)."""
from __future__ import annotations

import random

import numpy as np
import torch

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


def use_threads(threads: int) -> None:
    """torch's CPU threads; 0 keeps torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
