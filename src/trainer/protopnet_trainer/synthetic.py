"""The generated data sets, drawn from the run's seed (no --data folder): `synthetic`, one class pattern per image
among distractors, and `synthetic-parts`, classes made of parts (synthetic_parts.py draws them), both with every
pattern's or part's box, which the interpretability scorecard scores against.
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch

from .config import TrainConfig
from .data import ArrayImages, Box, DataSource, PartAnnotations, Split
from .errors import TrainerError

SYNTHETIC_COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 240], [240, 200, 30], [200, 50, 220],
                              [30, 210, 220], [250, 130, 20], [140, 90, 40], [250, 250, 250], [120, 120, 255]],
                             dtype=np.float32)


MAX_SYNTHETIC_CLASSES = 256  # 3x3 shapes with at least 5 cells on
MAX_SYNTHETIC_BYTES = 1 << 30  # one split's RGB images; held twice while training (as drawn, and as a tensor)


def check_synthetic_size(split_name: str, count: int, image_size: int) -> None:
    """Refuses a generated split too large to hold, before any of it is drawn."""
    needed = count * image_size * image_size * 3
    if needed > MAX_SYNTHETIC_BYTES:
        raise TrainerError(f"synthetic: the {split_name} split's {count} images of {image_size}x{image_size} would take "
                           f"{needed / 2 ** 30:.1f} GiB (limit {MAX_SYNTHETIC_BYTES / 2 ** 30:.0f} GiB): use fewer images "
                           f"per class or a smaller --image-size")


def _class_patterns(num_classes: int, seed: int) -> List[np.ndarray]:
    """A distinct 3x3 binary shape per class (at least 5 cells on), fixed by the seed."""
    rng = np.random.RandomState(10007 + seed)
    shapes: List[np.ndarray] = []
    seen = set()
    while len(shapes) < num_classes:
        shape = rng.rand(3, 3) < 0.6
        key = shape.tobytes()
        if shape.sum() < 5 or key in seen:
            continue
        seen.add(key)
        shapes.append(shape)
    return shapes


def generate_synthetic(num_classes: int, per_class: int, image_size: int, channels: int, seed: int,
                       split_name: str, noise: float = 25.0) -> Split:
    """Small images whose class is decided by one local pattern at a random position among distractors.

    The pattern is a class-specific 3x3 shape in a class colour; distractors are solid squares of random
    colours (never a class shape). The pattern's true box is recorded at model resolution.
    """
    if num_classes < 2 or num_classes > MAX_SYNTHETIC_CLASSES:
        raise TrainerError(f"synthetic: number of classes must be between 2 and {MAX_SYNTHETIC_CLASSES}")
    cell = max(1, image_size // 16)
    size = 3 * cell
    shapes = _class_patterns(num_classes, seed)
    rng = np.random.RandomState((seed * 7919 + (0 if split_name == "train" else 104729)) % (2 ** 31))
    count = num_classes * per_class
    check_synthetic_size(split_name, count, image_size)
    images = np.zeros((count, image_size, image_size, 3), dtype=np.uint8)
    labels: List[int] = []
    boxes: List[Box] = []
    for n in range(count):
        label = n % num_classes
        canvas = np.zeros((image_size, image_size, 3), dtype=np.float32)   # drawn in float, kept as 8 bits
        canvas += rng.uniform(0, 40, size=(1, 1, 3)) + rng.uniform(0, noise, size=canvas.shape)
        for _ in range(3):  # distractors
            side = rng.randint(max(2, size // 2), size + 2)
            y, x = rng.randint(0, image_size - side + 1, size=2)
            canvas[y:y + side, x:x + side] = rng.uniform(60, 255, size=3)
        colour = SYNTHETIC_COLOURS[label % len(SYNTHETIC_COLOURS)]
        mask = np.kron(shapes[label], np.ones((cell, cell), dtype=bool))
        y, x = rng.randint(0, image_size - size + 1, size=2)
        patch = canvas[y:y + size, x:x + size]
        patch[mask] = colour
        patch[~mask] = 0.0
        images[n] = np.clip(canvas, 0, 255).astype(np.uint8)
        labels.append(label)
        boxes.append((int(x), int(y), size, size))
    if channels == 1:
        grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        images = np.clip(grey, 0, 255).astype(np.uint8)[..., None]
    cached = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    classes = [f"pattern-{k}" for k in range(num_classes)]
    parts = PartAnnotations(list(classes), [[k] for k in range(num_classes)],
                            [[(label, box)] for label, box in zip(labels, boxes)])   # one part: the pattern
    return Split(split_name, classes, channels, [f"{split_name}-{n}" for n in range(count)], labels,
                 ArrayImages(images), true_boxes=boxes, cached=cached, parts=parts)


def load_synthetic(cfg: TrainConfig) -> DataSource:
    if cfg.synthetic_channels not in (1, 3):
        raise TrainerError("synthetic: channels must be 1 or 3")
    train = generate_synthetic(cfg.synthetic_classes, cfg.synthetic_train_per_class, cfg.image_size,
                               cfg.synthetic_channels, cfg.seed, "train")
    test = generate_synthetic(cfg.synthetic_classes, cfg.synthetic_test_per_class, cfg.image_size,
                              cfg.synthetic_channels, cfg.seed, "test")
    mean, std = ([0.2], [0.3]) if cfg.synthetic_channels == 1 else ([0.2, 0.2, 0.2], [0.3, 0.3, 0.3])
    return DataSource("synthetic", train, test, mean=mean, std=std)
