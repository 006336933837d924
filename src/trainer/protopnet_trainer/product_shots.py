"""Garments photographed the way shops and phones take them: a dark object on a light background, larger than the
data set's images, in colour, as JPEG. Fashion-MNIST is the opposite (light garments on black, 28x28 grey), so a
model trained on it alone fails on such photos (issue 16).

Two uses of one rendering:
- `render_product_shot` turns a data set image into such a photo (JPEG bytes), deterministic from a seed: for
  measuring a model on product shots through the service (scripts/check_product_shots.py).
- `PolarityAugment` renders a training image the same way at the model's input size, with torch's random numbers,
  as an online augmentation (`--polarity-augment P`), so a model learns garments whichever way round their polarity is.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_tensor

from .contrast import apply_contrast
from .image_files import open_image

if TYPE_CHECKING:
    from .data import ImageSet

# PIL's "L" conversion (ITU-R 601-2 luma), which the service applies to colour uploads of a grey model as well.
LUMA = np.array([0.299, 0.587, 0.114])
SHOT_SEED = 1_000_000   # test image i is rendered with seed SHOT_SEED + i (trainer metric and check script alike)


@dataclass(frozen=True)
class ShotStyle:
    """How one product shot looks. `ink` of a pixel is its data set value / 255 (the garment's light parts);
    the shot paints background + ink * (garment - background), so the garment comes out dark on a light ground."""
    background: Tuple[float, float, float]     # RGB 0..255, light
    garment: Tuple[float, float, float]        # RGB 0..255, dark
    scale: float                               # the garment's size relative to the canvas
    shift: Tuple[float, float]                 # x, y offset of its centre, as a share of the canvas

    @staticmethod
    def draw(uniform) -> "ShotStyle":
        """A random style; `uniform(low, high, n)` gives n uniform numbers (numpy's or torch's generator)."""
        background = tuple(float(v) for v in uniform(215.0, 255.0, 3))
        garment = tuple(float(v) for v in uniform(10.0, 130.0, 3))
        scale = float(uniform(0.8, 1.05, 1)[0])
        shift = tuple(float(v) for v in uniform(-0.06, 0.06, 2))
        return ShotStyle(background, garment, scale, shift)  # type: ignore[arg-type]


def paint(ink: np.ndarray, style: ShotStyle, size: int, channels: int = 3,
          resample: int = Image.BICUBIC) -> np.ndarray:
    """The garment of an ink map [H, W] in [0, 1] placed on a size x size canvas in the style's colours, as uint8
    [size, size, channels] (channels 1: the luma of the colour picture, as PIL's convert("L") would give)."""
    side = max(1, int(round(size * style.scale)))
    enlarged = Image.fromarray(np.clip(ink * 255.0, 0, 255).astype(np.uint8)).resize((side, side), resample)
    canvas = np.zeros((size, size), dtype=np.float32)
    left = int(round((size - side) / 2 + style.shift[0] * size))
    top = int(round((size - side) / 2 + style.shift[1] * size))
    # Paste what falls inside the canvas (a shifted garment may be cut at the edge, as in a tight photo).
    x0, y0, x1, y1 = max(0, left), max(0, top), min(size, left + side), min(size, top + side)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = np.asarray(enlarged, dtype=np.float32)[y0 - top:y1 - top, x0 - left:x1 - left] / 255.0
    background = np.array(style.background, dtype=np.float32)
    garment = np.array(style.garment, dtype=np.float32)
    picture = background + canvas[..., None] * (garment - background)
    if channels == 1:
        picture = picture @ LUMA.astype(np.float32)
        picture = picture[..., None]
    return np.clip(np.round(picture), 0, 255).astype(np.uint8)


def render_product_shot(pixels: np.ndarray, seed: int, size: int = 280) -> bytes:
    """A data set image (uint8 [H, W], light garment on black) as a product photo: inverted to dark-on-light,
    enlarged to size x size, tinted in colour, moved and scaled a little, JPEG-encoded. Same seed, same bytes."""
    rng = np.random.RandomState(seed)
    style = ShotStyle.draw(lambda low, high, n: rng.uniform(low, high, n))
    quality = int(rng.randint(75, 93))
    picture = paint(pixels.astype(np.float32) / 255.0, style, size)
    buffer = io.BytesIO()
    Image.fromarray(picture, mode="RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class PolarityAugment:
    """Online augmentation: with probability `p`, a training image (PIL, light on dark) becomes a product shot at its
    own size: inverted, tinted, scaled and shifted on a light background (colour models keep colour, grey models get
    its luma). The style is drawn as ShotStyle.draw draws it, from torch's random numbers, so the run's seed fixes
    them; the work is one affine resample and a few array operations (it runs for every training image)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, picture: Image.Image) -> Image.Image:
        if self.p <= 0 or float(torch.rand(1)) >= self.p:
            return picture
        u = torch.rand(9).tolist()
        background = np.array([215.0 + 40.0 * v for v in u[0:3]], dtype=np.float32)
        garment = np.array([10.0 + 120.0 * v for v in u[3:6]], dtype=np.float32)
        scale = 0.8 + 0.25 * u[6]
        shift_x, shift_y = (-0.06 + 0.12 * v for v in u[7:9])
        # The ink (the data set's light garment) scaled about the centre and moved; outside it, no ink.
        ink = picture if picture.mode == "L" else picture.convert("L")
        width, height = ink.size
        cx, cy = width / 2 + shift_x * width, height / 2 + shift_y * height
        inverse = (1 / scale, 0, width / 2 - cx / scale, 0, 1 / scale, height / 2 - cy / scale)
        moved = np.asarray(ink.transform(ink.size, Image.AFFINE, inverse, resample=Image.BILINEAR, fillcolor=0),
                           dtype=np.float32) / 255.0
        if picture.mode == "L":
            ground, dark = float(background @ LUMA), float(garment @ LUMA)
            return Image.fromarray(np.clip(np.round(ground + moved * (dark - ground)), 0, 255).astype(np.uint8))
        painted = background + moved[..., None] * (garment - background)
        return Image.fromarray(np.clip(np.round(painted), 0, 255).astype(np.uint8), mode="RGB")

    def __repr__(self) -> str:
        return f"PolarityAugment(p={self.p})"


class ProductShotSet(Dataset):
    """A test set as product shots, the way the service receives them: image i of `images` (at the model's input
    size) rendered with seed SHOT_SEED + i, JPEG-decoded (with `jpeg_draft`, at the draft scale for the input size, as
    the bundle will say: TrainConfig.decodes_jpeg_draft), converted to the model's colour space and resized back to its
    input size, as (image [C, H, W] in [0, 1], label, index). Its accuracy is the bundle's productShotAccuracy."""

    def __init__(self, images: "ImageSet", jpeg_draft: bool = False):
        self.images = images
        self.jpeg_draft_size = (images.width, images.height) if jpeg_draft else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        # Rendered from the data set's own pixels, as scripts/check_product_shots.py renders the shots it sends; the
        # contrast step comes once, last, as in the service.
        image, label = self.images.image_before_contrast(index), self.images.split.labels[index]
        pixels = (image.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
        ink = pixels[..., 0] if pixels.shape[-1] == 1 else np.asarray(Image.fromarray(pixels).convert("L"))
        shot = open_image(io.BytesIO(render_product_shot(ink, SHOT_SEED + index)), self.jpeg_draft_size)
        shot = shot.convert("L" if image.shape[0] == 1 else "RGB")
        tensor = to_tensor(self.images.resize(shot) if shot.size != (self.images.width, self.images.height) else shot)
        return apply_contrast(tensor, self.images.contrast), label, index
