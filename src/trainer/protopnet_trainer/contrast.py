"""Contrast normalisation, a preprocessing step a bundle can declare (`input.contrast: "auto"`) so that a model
trained on light objects on a dark ground (Fashion-MNIST) also reads product photos (dark objects on a light ground,
issue 16). The service applies the same step to the same tensor (ContrastNormalizer.cs), so both compute:

1. ground = the lower median of the image's border ring (the outermost rows and columns, every channel's values
   together; of an even count, the smaller of the two middle values, as torch.median gives);
2. when ground > 0.5 the picture is inverted (x -> 1 - x) and ground becomes 1 - ground;
3. stretched linearly so that the ground maps to 0 and the brightest value to 1, clamped at 0:
   x -> max(0, (x - ground) / (peak - ground)); when peak - ground is under 15.5/255 (nothing 16 levels of an 8-bit
   image brighter than the ground: a blank or all but blank picture) the picture is all ground: 0 everywhere. Left
   as it was (a uniform grey field) the network took such a picture for a garment with confidence; black, it looks
   like no prototype and is flagged unfamiliar. Half a level below 16, so that float32 rounding of k/255 never
   decides.

A data set image (black border, brightest pixel 255) passes through unchanged, so training on it is unaffected.
All arithmetic is float32 in this order, which the service repeats, so the two tensors are equal.
"""
from __future__ import annotations

from typing import Tuple

import torch

INVERT_ABOVE = 0.5
MIN_SPAN = 15.5 / 255.0


def border_ring(image: torch.Tensor) -> torch.Tensor:
    """The outermost rows and columns of [C, H, W], every channel's values in one flat tensor."""
    if image.shape[-2] < 3 or image.shape[-1] < 3:
        return image.reshape(-1)
    return torch.cat([image[:, 0, :].reshape(-1), image[:, -1, :].reshape(-1),
                      image[:, 1:-1, 0].reshape(-1), image[:, 1:-1, -1].reshape(-1)])


def normalize_contrast(image: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """An image [C, H, W] float32 in [0, 1] -> (normalised image, whether it was inverted)."""
    ring = border_ring(image)
    ground = ring.median()   # the lower of the two middle values, as the service's ContrastNormalizer
    inverted = bool(ground > INVERT_ABOVE)
    if inverted:
        image = 1.0 - image
        ground = 1.0 - ground
    peak = image.max()
    span = peak - ground
    if float(span) < MIN_SPAN:
        return torch.zeros_like(image), inverted
    return ((image - ground) / span).clamp_(min=0.0), inverted


def apply_contrast(image: torch.Tensor, mode: str) -> torch.Tensor:
    return normalize_contrast(image)[0] if mode == "auto" else image
