"""Measuring a model: predictions, accuracy and the confusion matrix over a loader, and the evaluate command's
accuracy (and, on synthetic data, localisation) of a checkpoint."""
from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import TrainConfig
from .data import make_loaders, require_same_classes
from .datasets import load_data_source
from .errors import TrainerError
from .localisation import localisation
from .runtime import select_device


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_classes: int) -> np.ndarray:
    """[true class, predicted class] counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def _logits(out: Any) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out   # ProtoPNet's output tuple or the baseline's logits


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device, desc: str = "test",
            progress: bool = True) -> Tuple[List[int], List[int]]:
    """(labels, predictions) over a loader."""
    model.eval()
    labels, predictions = [], []
    for images, batch_labels, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        predictions.append(_logits(model(images.to(device))).argmax(1).cpu())
        labels.append(batch_labels)
    return torch.cat(labels).tolist(), torch.cat(predictions).tolist()


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, loader: Iterable, device: torch.device, desc: str = "test",
                      progress: bool = True) -> float:
    model.eval()
    correct = total = 0
    for images, labels, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        correct += int((_logits(model(images.to(device))).argmax(1).cpu() == labels).sum())
        total += len(labels)
    return correct / max(1, total)


def accuracy_of(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """The share of predictions equal to their labels (0 for none)."""
    return sum(int(a == b) for a, b in zip(labels, predictions)) / max(1, len(labels))


def test_metrics(model: nn.Module, loader: Iterable, device: torch.device, num_classes: int,
                 progress: bool = True) -> Tuple[float, Any]:
    """(accuracy, confusion matrix [true, predicted]) of a model on a loader."""
    labels, predictions = predict(model, loader, device, progress=progress)
    return accuracy_of(labels, predictions), confusion_matrix(labels, predictions, num_classes)


def evaluate_checkpoint(path: str, dataset: Optional[str], data: Optional[str], split: str,
                        device_name: Optional[str], progress: bool, log: Callable[[str], None],
                        skip_unreadable_images: bool = False) -> None:
    """Logs the accuracy of a checkpoint on a split of its data set (or of another one)."""
    checkpoint = load_checkpoint(path)
    cfg = TrainConfig.from_dict(checkpoint["config"])
    changes = {k: v for k, v in (("dataset", dataset), ("data", data)) if v is not None}
    if skip_unreadable_images:
        changes["skip_unreadable_images"] = True
    if split == "test":
        changes["calibration_holdout"] = 0   # taken from the training split: the test split is the same without it
    cfg = cfg.replace(**changes, augment=False)
    source = load_data_source(cfg, progress, log, read=(split,))   # the split it evaluates, not every image
    require_same_classes(checkpoint["classes"], source.classes, "the checkpoint", cfg.dataset)
    channels = int(checkpoint["model"]["mean"].numel())
    if source.channels != channels:
        raise TrainerError(f"the checkpoint's model takes {channels}-channel images, data set {cfg.dataset} has "
                           f"{source.channels}-channel ones")
    device = select_device(device_name or "auto")
    model = model_from_checkpoint(checkpoint).to(device)
    loaders = make_loaders(cfg, source)
    loader = loaders.push if split == "train" else loaders.test   # both un-augmented
    accuracy = evaluate_accuracy(model, loader, device, desc=split, progress=progress)
    log(f"{split} accuracy {accuracy:.4f} on {len(loader.dataset)} images")
    if loader.dataset.split.true_boxes:   # synthetic data knows where the class pattern is
        scores = localisation(model, loader.dataset, device)
        log(f"localisation: the top prototype's box holds the pattern centre in {scores['centre_hit_rate']:.4f} "
            f"of images, mean IoU {scores['mean_iou']:.4f}")
