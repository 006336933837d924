"""A synthetic data set with known parts: each class is a combination of two parts (a shape in its own colour),
neighbouring classes share a part, and every image also holds distractor shapes in other colours on a textured
background. Every part's box is recorded per image, so explanations can be checked against the truth.

Class k holds parts k and k + 1 (mod K): no single part decides a class, its combination does. Part colours are
saturated; the background is a low-saturation texture and distractors take colours far from every part colour,
so a pixel of a part's colour belongs to that part. Generated from a seed in well under a second per thousand
images; nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import torch

from .boxes import Box
from .config import TrainConfig
from .data import ArrayImages, DataSource, PartAnnotations, Split
from .errors import TrainerError
from .synthetic import check_synthetic_size


SHAPES = ("disc", "square", "triangle", "cross", "ring", "diamond", "bar", "hourglass")
PART_COLOURS = np.array([[230, 30, 30], [30, 200, 50], [40, 70, 245], [245, 215, 20],
                         [215, 40, 225], [20, 215, 225], [250, 130, 10], [120, 0, 200]], dtype=np.float32)
PART_NAMES = [f"{colour}-{shape}" for colour, shape in zip(
    ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple"), SHAPES)]
MAX_CLASSES = len(SHAPES)
COLOUR_TOLERANCE = 45.0        # a pixel within this (max over R, G, B) of a part colour "has" that colour
DISTRACTOR_MARGIN = 110.0      # distractor colours stay at least this far (max over R, G, B) from every part colour
PIXEL_NOISE = 8.0              # uniform +- noise on every pixel (parts included), in 8-bit steps


@dataclass
class PartsSplit:
    images: np.ndarray                       # [N, S, S, 3] uint8
    labels: List[int]
    parts: List[List[Tuple[int, Box]]]       # per image: (part index, tight box of the drawn part)
    distractors: List[List[Box]]             # per image: boxes of the distractor shapes


def class_parts(num_classes: int) -> List[List[int]]:
    """The parts that define each class: k and k + 1 (mod K)."""
    return [[k, (k + 1) % num_classes] for k in range(num_classes)]


def shape_mask(shape: str, size: int) -> np.ndarray:
    """A size x size boolean mask of the shape, touching all four sides of the square (so its tight box is the
    square)."""
    centre = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = (y - centre) / (size / 2.0), (x - centre) / (size / 2.0)
    third = size / 3.0
    if shape == "disc":
        mask = dx ** 2 + dy ** 2 <= 1.0
    elif shape == "square":
        mask = np.ones((size, size), dtype=bool)
    elif shape == "triangle":   # apex at the top, base along the bottom row
        mask = np.abs(dx) <= (y + 1) / size
    elif shape == "cross":
        mask = (np.abs(x - centre) < third / 2.0 + 0.5) | (np.abs(y - centre) < third / 2.0 + 0.5)
    elif shape == "ring":
        radius = dx ** 2 + dy ** 2
        mask = (radius <= 1.0) & (radius >= 0.3)
    elif shape == "diamond":
        mask = np.abs(dx) + np.abs(dy) <= 1.0
    elif shape == "bar":        # a horizontal bar over a thin vertical stem: a "T"
        mask = (y < third) | (np.abs(x - centre) < third / 2.0 + 0.5)
    elif shape == "hourglass":
        mask = np.abs(dx) >= np.abs(dy) - 0.05
        mask = mask.T
    else:
        raise TrainerError(f"synthetic-parts: unknown shape '{shape}'")
    return mask | _frame_points(mask)


def _frame_points(mask: np.ndarray) -> np.ndarray:
    """One pixel in the middle of each side that has none, so the part's tight box is its square."""
    extra = np.zeros_like(mask)
    size = mask.shape[0]
    middle = size // 2
    if not mask[0].any():
        extra[0, middle] = True
    if not mask[-1].any():
        extra[-1, middle] = True
    if not mask[:, 0].any():
        extra[middle, 0] = True
    if not mask[:, -1].any():
        extra[middle, -1] = True
    return extra


def _background(rng: np.random.RandomState, size: int) -> np.ndarray:
    """A low-saturation texture: a grey-brown base with two random stripe patterns and a speckle."""
    base = rng.uniform(70, 150)
    tint = rng.uniform(-12, 12, size=3)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    texture = np.zeros((size, size), dtype=np.float32)
    for _ in range(2):
        angle, period, phase = rng.uniform(0, np.pi), rng.uniform(4, 14), rng.uniform(0, 2 * np.pi)
        texture += 14.0 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period + phase)
    texture += rng.uniform(-10, 10, size=(size, size))
    return (base + texture)[..., None] + tint[None, None, :]


def _distractor_colour(rng: np.random.RandomState) -> np.ndarray:
    while True:
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        if np.abs(PART_COLOURS - colour).max(axis=1).min() >= DISTRACTOR_MARGIN:
            return colour


def _place(rng: np.random.RandomState, size: int, side: int, taken: List[Box], gap: int = 2) -> Box:
    """A random free square (no overlap with `taken`, `gap` pixels apart)."""
    for _ in range(500):
        x, y = (int(v) for v in rng.randint(0, size - side + 1, size=2))
        if all(x + side + gap <= tx or tx + tw + gap <= x or y + side + gap <= ty or ty + th + gap <= y
               for tx, ty, tw, th in taken):
            return x, y, side, side
    raise TrainerError(f"synthetic-parts: cannot place {len(taken) + 1} shapes on a {size} px image; "
                       f"use a larger image size")


def generate_parts(num_classes: int, per_class: int, image_size: int, seed: int, split_name: str,
                   distractors: int = 3) -> PartsSplit:
    """`per_class` images of each of `num_classes` classes (labels cycle 0, 1, ..., K-1), `image_size` px square.

    Part sides are 16-28 % of the image; distractors (shapes from the same set, in non-part colours) 12-24 %."""
    if not 2 <= num_classes <= MAX_CLASSES:
        raise TrainerError(f"synthetic-parts: number of classes must be between 2 and {MAX_CLASSES}")
    if image_size < 32:
        raise TrainerError("synthetic-parts: the image size must be at least 32 px")
    rng = np.random.RandomState((seed * 7919 + (0 if split_name == "train" else 104729) + 31) % (2 ** 31))
    definitions = class_parts(num_classes)
    count = num_classes * per_class
    images = np.zeros((count, image_size, image_size, 3), dtype=np.uint8)
    labels: List[int] = []
    parts: List[List[Tuple[int, Box]]] = []
    distractor_boxes: List[List[Box]] = []
    low, high = max(6, int(round(0.16 * image_size))), max(7, int(round(0.28 * image_size)))
    for n in range(count):
        label = n % num_classes
        canvas = _background(rng, image_size)
        taken: List[Box] = []
        image_parts: List[Tuple[int, Box]] = []
        for part in definitions[label]:
            box = _place(rng, image_size, int(rng.randint(low, high + 1)), taken)
            taken.append(box)
            image_parts.append((part, box))
            x, y, side, _ = box
            canvas[y:y + side, x:x + side][shape_mask(SHAPES[part], side)] = PART_COLOURS[part]
        image_distractors: List[Box] = []
        for _ in range(distractors):
            side = int(rng.randint(max(4, int(0.12 * image_size)), int(0.24 * image_size) + 1))
            box = _place(rng, image_size, side, taken)
            taken.append(box)
            image_distractors.append(box)
            x, y, _, _ = box
            shape = SHAPES[int(rng.randint(len(SHAPES)))]
            canvas[y:y + side, x:x + side][shape_mask(shape, side)] = _distractor_colour(rng)
        canvas += rng.uniform(-PIXEL_NOISE, PIXEL_NOISE, size=canvas.shape)
        images[n] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        labels.append(label)
        parts.append(image_parts)
        distractor_boxes.append(image_distractors)
    return PartsSplit(images, labels, parts, distractor_boxes)


def part_colour_mask(image: np.ndarray, part: int) -> np.ndarray:
    """Pixels of an [H, W, 3] uint8 image that have part `part`'s colour (within COLOUR_TOLERANCE)."""
    return np.abs(image.astype(np.float32) - PART_COLOURS[part]).max(axis=-1) <= COLOUR_TOLERANCE


def load_synthetic_parts(cfg: TrainConfig) -> DataSource:
    """RGB images whose classes are combinations of parts, with every part's box (synthetic_parts.py)."""
    def make(name: str, per_class: int) -> Split:
        check_synthetic_size(name, cfg.synthetic_classes * per_class, cfg.image_size)
        generated = generate_parts(cfg.synthetic_classes, per_class, cfg.image_size, cfg.seed, name)
        images = generated.images
        cached = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        names = PART_NAMES
        classes = ["+".join(names[p] for p in parts) for parts in class_parts(cfg.synthetic_classes)]
        annotations = PartAnnotations(list(names), class_parts(cfg.synthetic_classes),
                                      generated.parts)
        return Split(name, classes, 3, [f"{name}-{n}" for n in range(len(images))], generated.labels,
                     ArrayImages(images), cached=cached, parts=annotations)

    train = make("train", cfg.synthetic_train_per_class)
    test = make("test", cfg.synthetic_test_per_class)
    mean = (train.cached.float().mean(dim=(0, 2, 3)) / 255.0).tolist()
    std = (train.cached.float().std(dim=(0, 2, 3)) / 255.0).tolist()
    return DataSource("synthetic-parts", train, test, mean=[round(v, 3) for v in mean], std=[round(v, 3) for v in std])
