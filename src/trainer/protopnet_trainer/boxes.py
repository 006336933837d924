"""Where a prototype is on an image: its similarity map upsampled to the image (bicubic, as the reference and the
service do) and the smallest box around the map's top 5 % (the 95th percentile), and how boxes are compared."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

Box = Tuple[int, int, int, int]   # x, y, width, height in pixels of the model input (inclusive)


def upsample_activation(activation_map: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Bicubic upsampling of an [h, w] activation map to the input resolution (float64)."""
    grid = activation_map.detach().to("cpu", torch.float64).view(1, 1, *activation_map.shape[-2:])
    return F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)[0, 0].numpy()


def high_activation_box(upsampled: np.ndarray, percentile: float = 95.0) -> Box:
    """Smallest rectangle holding every pixel whose activation is >= the map's 95th percentile.

    Several equal maxima give one box around all of them; a flat map (no pixel stands out) gives the whole image.
    Returns (x, y, width, height), inclusive pixels.
    """
    height, width = upsampled.shape
    low, high = float(upsampled.min()), float(upsampled.max())
    if high - low <= 1e-9 * max(1.0, abs(high)):
        return 0, 0, width, height
    threshold = np.percentile(upsampled, percentile)
    mask = upsampled >= threshold
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, width, height) pixel boxes (inclusive pixels)."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    intersection = max(0, right - left) * max(0, bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - intersection
    return intersection / union if union > 0 else 0.0


def centre_inside(box: Box, target: Box) -> bool:
    """Is the centre of `target` inside `box`?"""
    cx, cy = target[0] + target[2] / 2.0, target[1] + target[3] / 2.0
    return box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]
