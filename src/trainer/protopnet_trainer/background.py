"""Which feature cells of an image look at background: the part of the picture that has the colour of its border.

Used by the background-aware recipe (`--background-aware`, issue 15): the cluster cost pulls each image's nearest
own-class prototype towards a cell that is not background, and the push projects prototypes onto such cells only,
so no prototype ends up as a patch of empty ground. The rule is the scorecard's (`border_background`, which
interpretability.py's background share uses):
a border is uniform when at least half of its pixels lie within 0.1 of its median colour; a pixel is background when
it lies within 0.1 of that colour. A cell counts as background when more than half of its window is: the window
is the cell's own stretch of the image widened by half a cell on every side (about the size of a prototype's box).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

TOLERANCE = 0.1          # a pixel has the border colour within this (max over channels, pixels in [0, 1])
UNIFORM_BORDER = 0.5     # a border has a background colour when at least this share of it has its median colour
BACKGROUND_SHARE = 0.75  # the scorecard's rule: a prototype's patch is background above this share of border colour
CELL_BACKGROUND = 0.5    # a cell is background when more than this share of its window is


def background_pixels(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [0, 1] -> [N, H, W] bool: pixels of a uniform border's colour (all False without one)."""
    ring = torch.cat([images[:, :, 0, :], images[:, :, -1, :], images[:, :, 1:-1, 0], images[:, :, 1:-1, -1]],
                     dim=2)                                                    # [N, C, P]
    colour = ring.median(dim=2).values                                       # [N, C]
    uniform = ((ring - colour[:, :, None]).abs().amax(dim=1) <= TOLERANCE).float().mean(dim=1) >= UNIFORM_BORDER
    near = (images - colour[:, :, None, None]).abs().amax(dim=1) <= TOLERANCE   # [N, H, W]
    return near & uniform[:, None, None]


def background_cells(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, C, H, W] in [0, 1] -> [N, height, width] bool for a height x width feature map over the image."""
    pixels = background_pixels(images).float()[:, None]                       # [N, 1, H, W]
    image_h, image_w = pixels.shape[-2:]
    if image_h % height or image_w % width:
        share = F.adaptive_avg_pool2d(pixels, (height, width))
    else:
        cell_h, cell_w = image_h // height, image_w // width
        share = F.avg_pool2d(pixels, kernel_size=(2 * cell_h, 2 * cell_w), stride=(cell_h, cell_w),
                             padding=(cell_h // 2, cell_w // 2), count_include_pad=False)
        share = share[..., :height, :width]
    return share[:, 0] > CELL_BACKGROUND


def background_to_leave_out(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """background_cells, except that an image which is background everywhere keeps all its cells: the push and the
    cluster cost still need one of its patches."""
    background = background_cells(images, height, width)
    return background & ~background.flatten(1).all(dim=1)[:, None, None]


def foreground_min_distances(distances: torch.Tensor, leave_out: torch.Tensor) -> torch.Tensor:
    """[N, M, h, w] distances, [N, h, w] cells to leave out (background_to_leave_out) -> [N, M]: each prototype's
    smallest distance over the other cells."""
    return distances.masked_fill(leave_out[:, None], float("inf")).flatten(2).min(dim=2).values


def box_is_background(background: torch.Tensor, box: Sequence[int]) -> bool:
    """Is the box's patch mostly (> 75 %) background, given the image's background_pixels [H, W]?"""
    x, y, w, h = (int(v) for v in box)
    return bool(background[y:y + h, x:x + w].float().mean() > BACKGROUND_SHARE)


def border_background(image: np.ndarray, box: Sequence[int]) -> bool:
    """Is the box's patch of an [H, W, C] image in [0, 1] mostly (> 75 %) the colour of a uniform border? The pixels
    are background_pixels' (the same border colour as the push's cells)."""
    pixels = background_pixels(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None])
    return box_is_background(pixels[0], box)
