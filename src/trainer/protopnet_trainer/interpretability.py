"""The interpretability scorecard: how good are a model's explanations, measured on the outputs of its graph.

Every measure works on what the service shows a user: for an image, the prototype that contributed most to the
predicted class (w_kj * s_j largest) and its 95th-percentile high-activation box on the bicubically upsampled
similarity map (boxes.high_activation_box; the service's HighActivationBox). On data with part boxes:
- pointing game: share of images whose top box lands on a part that defines the predicted class; mean IoU;
- consistency: a prototype is consistent when its box lands on the same part in >= 80 % of its class's images.
On every data set:
- stability: share of images whose top prototype and its mapping (the part it lands on; without parts, a box
  overlapping the clean one with IoU >= 0.5) survive Gaussian noise (sigma 0.2) and JPEG re-encoding (quality 75);
- deletion: the drop of the predicted class's probability when the top box is filled with the images' mean colour,
  against the drop for a box of the same size elsewhere;
- background share: prototypes whose own patch is background (no part; without parts, mostly uniform border).

A box "lands on" a part when the part's centre lies inside the box (the one with the largest IoU when several do).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .background import border_background
from .data import PartAnnotations
from .boxes import Box, box_iou, centre_inside

Graph = Callable[[torch.Tensor], Dict[str, torch.Tensor]]   # images -> logits, similarities, similarity_maps
NO_PART = -1

CONSISTENCY_THRESHOLD = 0.8
NOISE_SIGMA = 0.2
JPEG_QUALITY = 75
STABLE_IOU = 0.5             # without parts: the perturbed box overlaps the clean one at least this much
RANDOM_DROP_FLOOR = 0.01     # the deletion ratio's denominator is at least this (a model random boxes never move)


# ---------------------------------------------------------------------------------------------- boxes

def upsample_maps(maps: torch.Tensor, height: int, width: int) -> np.ndarray:
    """[B, h, w] similarity maps -> [B, H, W] float64, bicubic, align_corners false (boxes.upsample_activation)."""
    grid = maps.detach().to("cpu", torch.float64).reshape(-1, 1, *maps.shape[-2:])
    return F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)[:, 0].numpy()


def high_activation_boxes(upsampled: np.ndarray, percentile: float = 95.0) -> np.ndarray:
    """boxes.high_activation_box for a stack of maps [B, H, W]: [B, 4] boxes (x, y, width, height)."""
    count, height, width = upsampled.shape
    flat = upsampled.reshape(count, -1)
    low, high = flat.min(axis=1), flat.max(axis=1)
    is_flat = high - low <= 1e-9 * np.maximum(1.0, np.abs(high))
    threshold = np.percentile(flat, percentile, axis=1)
    mask = upsampled >= threshold[:, None, None]
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    top, bottom = rows.argmax(axis=1), height - 1 - rows[:, ::-1].argmax(axis=1)
    left, right = cols.argmax(axis=1), width - 1 - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([left, top, right - left + 1, bottom - top + 1], axis=1)
    boxes[is_flat] = (0, 0, width, height)
    return boxes.astype(np.int64)


def lands_on(box: Sequence[int], parts: Sequence[Tuple[int, Box]]) -> int:
    """The part a box lands on: the part whose centre lies inside the box (largest IoU first); NO_PART if none."""
    box = tuple(int(v) for v in box)
    hits = [(box_iou(box, part_box), part) for part, part_box in parts if centre_inside(box, part_box)]
    return max(hits)[1] if hits else NO_PART


# ---------------------------------------------------------------------------------------------- perturbations

def gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    return (images + sigma * torch.randn(images.shape, generator=generator)).clamp_(0.0, 1.0)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image re-encoded as an 8-bit JPEG at `quality` (PIL, default 4:2:0 chroma subsampling) and decoded."""
    decoded = []
    for image in images:
        pixels = np.clip(np.rint(image.permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
        picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        array = np.asarray(Image.open(buffer).convert(picture.mode), dtype=np.float32) / 255.0
        decoded.append(torch.from_numpy(array.reshape(pixels.shape)).permute(2, 0, 1))
    return torch.stack(decoded)


def fill_boxes(images: torch.Tensor, boxes: np.ndarray, colour: torch.Tensor) -> torch.Tensor:
    filled = images.clone()
    for n, (x, y, w, h) in enumerate(boxes):
        filled[n, :, y:y + h, x:x + w] = colour.view(-1, 1, 1)
    return filled


def random_box_elsewhere(box: Sequence[int], height: int, width: int, rng: np.random.RandomState) -> Box:
    """A box of the same size at a random position that does not overlap `box`; when none exists, one of the
    positions that overlap it least."""
    x0, y0, w, h = (int(v) for v in box)
    xs, ys = np.arange(width - w + 1), np.arange(height - h + 1)
    overlap_x = np.clip(np.minimum(xs + w, x0 + w) - np.maximum(xs, x0), 0, None)
    overlap_y = np.clip(np.minimum(ys + h, y0 + h) - np.maximum(ys, y0), 0, None)
    overlap = overlap_y[:, None] * overlap_x[None, :]
    candidates = np.argwhere(overlap == overlap.min())
    row, col = candidates[rng.randint(len(candidates))]
    return int(xs[col]), int(ys[row]), w, h


# ---------------------------------------------------------------------------------------------- the pass over images

@dataclass
class ImageRecords:
    """Per test image (n) and per (image, own-class prototype) pair (p): what the measures are computed from."""
    labels: List[int] = field(default_factory=list)
    predicted: List[int] = field(default_factory=list)
    top: Dict[str, List[int]] = field(default_factory=lambda: {"clean": [], "noise": [], "jpeg": []})
    top_box: Dict[str, List[Box]] = field(default_factory=lambda: {"clean": [], "noise": [], "jpeg": []})
    pair_image: List[int] = field(default_factory=list)
    pair_prototype: List[int] = field(default_factory=list)
    pair_box: Dict[str, List[Box]] = field(default_factory=lambda: {"clean": [], "noise": [], "jpeg": []})
    drop_top: List[float] = field(default_factory=list)
    drop_random: List[float] = field(default_factory=list)
    random_box: List[Box] = field(default_factory=list)


def _explain(graph: Graph, images: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor,
             prototype_classes: torch.Tensor):
    """Prediction, top prototype, its box, and the boxes of every own-class prototype of each image."""
    out = graph(images)
    logits, similarities, maps = out["logits"], out["similarities"], out["similarity_maps"]
    predicted = logits.argmax(dim=1)
    top = (similarities * weights[predicted]).argmax(dim=1)
    height, width = images.shape[-2:]
    rows = torch.arange(len(images))
    top_boxes = high_activation_boxes(upsample_maps(maps[rows, top], height, width))
    own = (prototype_classes.view(1, -1) == labels.view(-1, 1)).nonzero()      # [pairs, (image, prototype)]
    pair_boxes = high_activation_boxes(upsample_maps(maps[own[:, 0], own[:, 1]], height, width))
    probabilities = torch.softmax(logits.double(), dim=1)[rows, predicted]
    return predicted, top, top_boxes, own, pair_boxes, probabilities


@torch.no_grad()
def collect(graph: Graph, batches, weights: torch.Tensor, prototype_classes: torch.Tensor,
            mean_colour: torch.Tensor, seed: int = 0) -> ImageRecords:
    """One pass over (images [B, C, H, W] in [0, 1], labels) batches: clean, noisy and JPEG runs, and the two
    deletion runs of the clean images."""
    records = ImageRecords()
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.RandomState(seed)
    weights = weights.to(torch.float32)
    offset = 0
    for images, labels in batches:
        images, labels = images.to(torch.float32), torch.as_tensor(labels)
        height, width = images.shape[-2:]
        variants = {"clean": images, "noise": gaussian_noise(images, NOISE_SIGMA, generator),
                    "jpeg": jpeg(images, JPEG_QUALITY)}
        for name, batch in variants.items():
            predicted, top, top_boxes, own, pair_boxes, probability = _explain(
                graph, batch, weights, labels, prototype_classes)
            records.top[name] += top.tolist()
            records.top_box[name] += [tuple(int(v) for v in b) for b in top_boxes]
            records.pair_box[name] += [tuple(int(v) for v in b) for b in pair_boxes]
            if name == "clean":
                records.labels += labels.tolist()
                records.predicted += predicted.tolist()
                records.pair_image += (own[:, 0] + offset).tolist()
                records.pair_prototype += own[:, 1].tolist()
                elsewhere = np.array([random_box_elsewhere(b, height, width, rng) for b in top_boxes])
                rows = torch.arange(len(images))
                for boxes, drops, kept in ((top_boxes, records.drop_top, None),
                                           (elsewhere, records.drop_random, records.random_box)):
                    logits = graph(fill_boxes(images, boxes, mean_colour))["logits"]
                    after = torch.softmax(logits.double(), dim=1)[rows, predicted]
                    drops += (probability - after).tolist()
                    if kept is not None:
                        kept += [tuple(int(v) for v in b) for b in boxes]
        offset += len(images)
    return records


# ---------------------------------------------------------------------------------------------- the measures

def pointing_game(top_boxes: Sequence[Box], predicted: Sequence[int], image_parts: Sequence[Sequence[Tuple[int, Box]]],
                  class_parts: Sequence[Sequence[int]]) -> Tuple[float, float]:
    """(share of images whose top box lands on a part defining the predicted class, mean IoU of the top box with
    the best-overlapping such part of the image, 0 when the image has none)."""
    hits, ious = 0, 0.0
    for box, k, parts in zip(top_boxes, predicted, image_parts):
        defining = [(part, part_box) for part, part_box in parts if part in class_parts[k]]
        hits += int(lands_on(box, defining) != NO_PART)
        ious += max((box_iou(tuple(box), part_box) for _, part_box in defining), default=0.0)
    count = max(1, len(top_boxes))
    return hits / count, ious / count


def prototype_consistency(landed: Sequence[int]) -> Tuple[float, int]:
    """(share of a prototype's images whose box lands on its most frequent part, that part); (0, NO_PART) when it
    lands on no part at all."""
    on_parts = [part for part in landed if part != NO_PART]
    if not landed or not on_parts:
        return 0.0, NO_PART
    values, counts = np.unique(on_parts, return_counts=True)
    return float(counts.max()) / len(landed), int(values[counts.argmax()])


def same_mapping(clean_box: Sequence[int], other_box: Sequence[int],
                 parts: Optional[Sequence[Tuple[int, Box]]]) -> bool:
    """Does a perturbed box map to what the clean one did: the same part (data with parts), or IoU >= 0.5?"""
    if parts is not None:
        return lands_on(clean_box, parts) == lands_on(other_box, parts)
    return box_iou(tuple(int(v) for v in clean_box), tuple(int(v) for v in other_box)) >= STABLE_IOU


def stability(top_clean: Sequence[int], top_other: Sequence[int], boxes_clean: Sequence[Box],
              boxes_other: Sequence[Box], image_parts: Optional[Sequence[Sequence[Tuple[int, Box]]]]) -> float:
    """Share of images whose top prototype is unchanged and whose box maps to the same part (or overlaps)."""
    stable = sum(int(a == b and same_mapping(box_a, box_b, image_parts[n] if image_parts is not None else None))
                 for n, (a, b, box_a, box_b) in enumerate(zip(top_clean, top_other, boxes_clean, boxes_other)))
    return stable / max(1, len(top_clean))


def deletion_ratio(drop_top: Sequence[float], drop_random: Sequence[float]) -> Dict[str, float]:
    top, random = float(np.mean(drop_top)) if drop_top else 0.0, float(np.mean(drop_random)) if drop_random else 0.0
    return {"meanDropTopBox": round(top, 4), "meanDropRandomBox": round(random, 4),
            "ratio": round(top / max(random, RANDOM_DROP_FLOOR), 3)}


# ---------------------------------------------------------------------------------------------- the scorecard

@dataclass
class PrototypeSource:
    """A prototype's own patch: its source image [H, W, C] in [0, 1], its box, and that image's parts (if known)."""
    image: np.ndarray
    box: Box
    parts: Optional[List[Tuple[int, Box]]] = None


def scorecard(records: ImageRecords, prototype_classes: Sequence[int], sources: Sequence[PrototypeSource],
              parts: Optional[PartAnnotations], image_parts: Optional[Sequence[Sequence[Tuple[int, Box]]]]) -> Dict:
    """The `interpretability` block of model.json from one pass's records (see docs/MODEL_BUNDLE.md)."""
    with_parts = parts is not None and image_parts is not None
    count = len(records.labels)
    block: Dict = {"images": count, "parts": with_parts,
                   "accuracy": round(float(np.mean(np.array(records.labels) == np.array(records.predicted))), 4)
                   if count else None}
    if with_parts:
        pointing, iou = pointing_game(records.top_box["clean"], records.predicted, image_parts, parts.class_parts)
        block["pointingGame"], block["meanIou"] = round(pointing, 4), round(iou, 4)
    else:
        block["pointingGame"], block["meanIou"] = None, None
    for name in ("noise", "jpeg"):
        block[f"{name}Stability"] = round(stability(records.top["clean"], records.top[name], records.top_box["clean"],
                                                    records.top_box[name], image_parts if with_parts else None), 4)
    block["noiseSigma"], block["jpegQuality"] = NOISE_SIGMA, JPEG_QUALITY
    block["deletion"] = deletion_ratio(records.drop_top, records.drop_random)

    pairs_of: Dict[int, List[int]] = {}
    for p, j in enumerate(records.pair_prototype):
        pairs_of.setdefault(j, []).append(p)
    prototypes = []
    for j in range(len(prototype_classes)):
        pairs = pairs_of.get(j, [])
        entry: Dict = {"index": j}
        if with_parts:
            landed = [lands_on(records.pair_box["clean"][p], image_parts[records.pair_image[p]]) for p in pairs]
            consistency, part = prototype_consistency(landed)
            # Not measured (null, and left out of the headline share) when its class has no test images.
            entry["consistency"] = round(consistency, 4) if pairs else None
            entry["part"] = parts.names[part] if part != NO_PART else None
        for name in ("noise", "jpeg"):
            stable = [same_mapping(records.pair_box["clean"][p], records.pair_box[name][p],
                                   image_parts[records.pair_image[p]] if with_parts else None) for p in pairs]
            entry[f"{name}Stability"] = round(float(np.mean(stable)), 4) if stable else None
        source = sources[j]
        if source.parts is not None:
            entry["background"] = lands_on(source.box, source.parts) == NO_PART
        else:
            entry["background"] = border_background(source.image, source.box)
        prototypes.append(entry)
    if with_parts:
        consistent = [p["consistency"] >= CONSISTENCY_THRESHOLD for p in prototypes if p["consistency"] is not None]
        block["consistency"] = round(float(np.mean(consistent)), 4) if consistent else None
    else:
        block["consistency"] = None
    block["consistencyThreshold"] = CONSISTENCY_THRESHOLD
    background = [p["background"] for p in prototypes]
    block["backgroundPrototypes"] = int(sum(background))
    block["backgroundShare"] = round(float(np.mean(background)), 4) if background else None
    block["prototypes"] = prototypes
    return block
