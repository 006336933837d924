"""A prototype's pictures, as the bundle holds them: patch.png (its box of the training image), source.png (the whole
image) and activation.png (0.5 image + 0.3 JET of its upsampled similarity map, as the service draws heatmaps)."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from .boxes import Box


def _jet(values: np.ndarray) -> np.ndarray:
    import matplotlib
    try:
        colormap = matplotlib.colormaps["jet"]
    except AttributeError:  # matplotlib < 3.5
        from matplotlib import cm
        colormap = cm.get_cmap("jet")
    return colormap(values)[..., :3]


def _to_rgb_array(image: torch.Tensor) -> np.ndarray:
    array = image.detach().cpu().permute(1, 2, 0).numpy().astype(np.float64)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array


def save_png(array: np.ndarray, path: str) -> None:
    """An H x W x C array in [0, 1] as an 8-bit PNG (grey when C = 1)."""
    pixels = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    Image.fromarray(pixels).save(path)


def write_prototype_pictures(image: torch.Tensor, upsampled: np.ndarray, box: Box, folder: str) -> None:
    """patch.png (box crop), source.png (whole image), activation.png (0.5 image + 0.3 JET heatmap)."""
    os.makedirs(folder, exist_ok=True)
    source = image.detach().cpu().permute(1, 2, 0).numpy().astype(np.float64)
    x, y, w, h = box
    save_png(source, os.path.join(folder, "source.png"))
    save_png(source[y:y + h, x:x + w], os.path.join(folder, "patch.png"))
    span = upsampled.max() - upsampled.min()
    rescaled = (upsampled - upsampled.min()) / span if span > 0 else np.zeros_like(upsampled)
    overlay = 0.5 * _to_rgb_array(image) + 0.3 * _jet(rescaled)
    save_png(overlay, os.path.join(folder, "activation.png"))
