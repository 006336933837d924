"""The joint stage's optimizer and learning-rate schedule (shared by ProtoPNet and its baseline), and scheduler
state that survives a checkpoint."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import torch

from .config import TrainConfig


def make_joint_optimizer(cfg: TrainConfig, groups: List[Dict[str, Any]],
                         steps_per_epoch: int) -> Tuple[torch.optim.Optimizer, Any, bool]:
    """The joint stage's optimizer and lr schedule for parameter groups [{params, lr, weight_decay}].

    adam-step: Adam with StepLR stepped once per epoch (the reference). adamw-onecycle: AdamW with OneCycleLR
    stepped once per batch over all joint steps; each group's `lr` is its peak. Returns (optimizer, scheduler,
    per_batch) where `per_batch` says when to step the scheduler.
    """
    if cfg.joint_optimizer == "adamw-onecycle":
        optimizer = torch.optim.AdamW(groups)
        joint_epochs = max(1, cfg.epochs - cfg.warm_epochs)
        total_steps = joint_epochs * max(1, steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in groups], total_steps=total_steps,
            pct_start=ramp_share(cfg.onecycle_pct_start, total_steps))
        return optimizer, scheduler, True
    optimizer = torch.optim.Adam(groups)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.joint_lr_step, gamma=cfg.joint_lr_gamma)
    return optimizer, scheduler, False


def ramp_share(pct_start: float, total_steps: int) -> float:
    """The share of the steps OneCycleLR ramps up over. It divides by the ramp's length in steps less one, so a ramp
    of exactly one step (0.25 of 4 steps: a small data set, few epochs) failed with a division by zero: such a ramp is
    made two steps long, or, in a schedule of two steps or fewer, half a step (the schedule then only anneals)."""
    if not math.isclose(pct_start * total_steps, 1.0):
        return pct_start
    return 2 / total_steps if total_steps > 2 else pct_start / 2


def scheduler_state(scheduler: Any) -> Dict[str, Any]:
    """A scheduler's state without its functions (torch 1.13's OneCycleLR keeps a bound method in its state)."""
    return {k: v for k, v in scheduler.state_dict().items() if not callable(v)}


def load_scheduler_state(scheduler: Any, state: Dict[str, Any]) -> None:
    scheduler.load_state_dict({**scheduler.state_dict(), **state})
