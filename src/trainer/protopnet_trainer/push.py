"""Push (prototype projection) and the prototype pictures: patch, source, activation overlay."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from .background import background_cells, border_background
from .data import ImageSet
from .errors import TrainerError
from .model import ProtoPNet

if TYPE_CHECKING:
    from .distributed import Group

Box = Tuple[int, int, int, int]


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


@torch.no_grad()
def push_prototypes(model: ProtoPNet, push_set: ImageSet, batch_size: int, device: torch.device,
                    picture_dir: Optional[str], progress: bool = True,
                    require_every_class: bool = True, group: Optional["Group"] = None,
                    background_aware: bool = False) -> List[Dict]:
    """Replace every prototype by its nearest latent patch among the push-set images of its own class.

    Returns one record per prototype (source item, feature cell, box) and, with `picture_dir`, writes
    <picture_dir>/<j>/{patch,source,activation}.png. Without `require_every_class` (benchmarks on a part of a
    data set) prototypes of classes absent from the push set are left as they were and get no record.
    With a distributed `group`, each rank scans its shard and the per-prototype bests are merged (see
    `merge_nearest`): every rank ends with the prototypes and records of a one-process push; only rank 0 writes
    the pictures. `background_aware` leaves out the cells background.background_cells marks (of an image that is
    background everywhere, none) and, in one process, takes the nearest of a prototype's FOREGROUND_CANDIDATES
    nearest cells whose box is not mostly border colour, by the scorecard's rule (background.border_background).
    """
    model.eval()
    if group is None:
        loader = DataLoader(push_set, batch_size=batch_size, shuffle=False)
    else:
        loader = group.shard(push_set, batch_size)
    if background_aware and group is None:
        best, best_item, best_cell, best_maps = _nearest_foreground_patches(model, push_set, loader, device, progress)
    else:
        best, best_item, best_cell, best_maps = _nearest_patches(model, loader, device, progress, background_aware)
    if group is not None:
        if best_maps is None:   # an empty shard (fewer batches than ranks) still needs the map shape to merge
            z = model.features(push_set.image(0)[None].to(device))
            best_maps = torch.zeros((model.num_prototypes, *z.shape[1:]), device=device)
        best, best_item, best_cell, best_maps = merge_nearest(best, best_item, best_cell, best_maps, group)
    render = group is None or group.is_main
    num_prototypes = model.num_prototypes
    missing = (best_item < 0).nonzero().view(-1)
    if len(missing) and require_every_class:
        cls = int(model.prototype_classes[missing[0]])
        raise TrainerError(f"push: the push set has no image of class {cls} ({push_set.split.classes[cls]})")
    assert best_maps is not None
    h, w = best_maps.shape[-2:]
    rows, cols = best_cell // w, best_cell % w
    prototype_index = torch.arange(num_prototypes, device=device)
    vectors = best_maps[prototype_index, :, rows, cols]                  # [M, D]
    found = best_item >= 0
    vectors[~found] = model.prototypes.data.view(num_prototypes, -1)[~found]
    model.prototypes.data.copy_(vectors.view_as(model.prototypes))
    # Self-activation of each pushed prototype on its source image.
    self_distances = ((best_maps - vectors[:, :, None, None]) ** 2).sum(dim=1)   # [M, h, w]
    activation_maps = model.similarity(self_distances)
    records: List[Dict] = []
    size = push_set.image_size
    for j in tqdm(range(num_prototypes), desc="prototype pictures", leave=False, disable=not progress):
        item = int(best_item[j])
        if item < 0:
            continue
        upsampled = upsample_activation(activation_maps[j], size, size)
        box = high_activation_box(upsampled)
        if picture_dir is not None and render:
            write_prototype_pictures(push_set.image(item), upsampled, box, os.path.join(picture_dir, str(j)))
        records.append({
            "item": item,
            "itemId": push_set.split.ids[item],
            "classIndex": int(model.prototype_classes[j]),
            "featureCell": {"row": int(rows[j]), "column": int(cols[j])},
            "box": {"x": box[0], "y": box[1], "width": box[2], "height": box[3]},
            "distanceBeforePush": float(best[j]),
            "pictures": os.path.join(picture_dir, str(j)) if picture_dir is not None else None,
        })
    return records


def _nearest_patches(model: ProtoPNet, loader, device: torch.device, progress: bool, background_aware: bool = False):
    """Over the loader's images in order: each prototype's smallest own-class patch distance, the image index and
    feature cell where it lies (the first one on a tie), and that image's latent map [M, D, h, w] (None when the
    loader is empty). Missing classes keep distance inf and item -1."""
    num_prototypes = model.num_prototypes
    classes = model.prototype_classes.to(device)
    best = torch.full((num_prototypes,), float("inf"), device=device)
    best_item = torch.full((num_prototypes,), -1, dtype=torch.long, device=device)
    best_cell = torch.zeros((num_prototypes,), dtype=torch.long, device=device)
    best_maps: Optional[torch.Tensor] = None  # [M, D, h, w] latent map of each prototype's best image
    for images, labels, indices in tqdm(loader, desc="push", leave=False, disable=not progress):
        images, labels, indices = images.to(device), labels.to(device), indices.to(device)
        z = model.features(images)
        distances = model.distances(z)                                  # [B, M, h, w]
        batch, _, h, w = distances.shape
        own = classes.view(1, -1) == labels.view(-1, 1)                # [B, M]
        distances = distances.masked_fill(~own[:, :, None, None], float("inf"))
        if background_aware:
            background = background_cells(images, h, w)
            background &= ~background.flatten(1).all(dim=1)[:, None, None]
            distances = distances.masked_fill(background[:, None], float("inf"))
        flat = distances.permute(1, 0, 2, 3).reshape(num_prototypes, batch * h * w)
        values, positions = flat.min(dim=1)
        better = values < best
        if best_maps is None:
            best_maps = torch.zeros((num_prototypes, z.shape[1], h, w), device=device)
        if better.any():
            which = better.nonzero().view(-1)
            image_in_batch = positions[which] // (h * w)
            best[which] = values[which]
            best_item[which] = indices[image_in_batch]
            best_cell[which] = positions[which] % (h * w)
            best_maps[which] = z[image_in_batch]
    return best, best_item, best_cell, best_maps


FOREGROUND_CANDIDATES = 16


def _nearest_foreground_patches(model: ProtoPNet, push_set: ImageSet, loader, device: torch.device, progress: bool):
    """_nearest_patches for the background-aware push: each prototype's nearest own-class foreground cells (up to
    FOREGROUND_CANDIDATES, in order of distance), of which the first whose high-activation box on its image is not
    mostly the border's colour wins (the nearest one when none is: the prototype then stays background)."""
    values, items, cells = _nearest_candidates(model, loader, device, progress, FOREGROUND_CANDIDATES)
    num_prototypes = values.shape[0]
    size = push_set.image_size
    chosen_maps: List[torch.Tensor] = []
    chosen = torch.zeros(num_prototypes, dtype=torch.long, device=device)
    latent: Dict[int, torch.Tensor] = {}    # image index -> its latent map [D, h, w] (images recur among candidates)

    def latent_map(item: int) -> torch.Tensor:
        if item not in latent:
            latent[item] = model.features(push_set.image(item)[None].to(device))[0]
        return latent[item]

    for j in range(num_prototypes):
        for k in range(values.shape[1]):
            item = int(items[j, k])
            if item < 0:
                break
            z = latent_map(item)
            vector = z[:, int(cells[j, k]) // z.shape[-1], int(cells[j, k]) % z.shape[-1]]
            activation = model.similarity(((z - vector[:, None, None]) ** 2).sum(dim=0))
            box = high_activation_box(upsample_activation(activation, size, size))
            if not border_background(push_set.image(item).permute(1, 2, 0).numpy(), box):
                chosen[j] = k
                break
        item = int(items[j, chosen[j]])
        chosen_maps.append(latent_map(item) if item >= 0 else latent_map(0) * 0)
    index = torch.arange(num_prototypes, device=device)
    return values[index, chosen], items[index, chosen], cells[index, chosen], torch.stack(chosen_maps)


def _nearest_candidates(model: ProtoPNet, loader, device: torch.device, progress: bool, count: int):
    """Each prototype's `count` nearest own-class foreground cells over the loader's images, in order: distances,
    image indices and cells [M, count] (missing: inf, -1, 0)."""
    num_prototypes = model.num_prototypes
    classes = model.prototype_classes.to(device)
    values = torch.full((num_prototypes, count), float("inf"), device=device)
    items = torch.full((num_prototypes, count), -1, dtype=torch.long, device=device)
    cells = torch.zeros((num_prototypes, count), dtype=torch.long, device=device)
    for images, labels, indices in tqdm(loader, desc="push", leave=False, disable=not progress):
        images, labels, indices = images.to(device), labels.to(device), indices.to(device)
        distances = model.distances(model.features(images))             # [B, M, h, w]
        batch, _, h, w = distances.shape
        own = classes.view(1, -1) == labels.view(-1, 1)
        distances = distances.masked_fill(~own[:, :, None, None], float("inf"))
        background = background_cells(images, h, w)
        background &= ~background.flatten(1).all(dim=1)[:, None, None]
        distances = distances.masked_fill(background[:, None], float("inf"))
        flat = distances.permute(1, 0, 2, 3).reshape(num_prototypes, batch * h * w)
        new_values, positions = flat.topk(min(count, flat.shape[1]), dim=1, largest=False)
        new_items = torch.where(torch.isinf(new_values), torch.full_like(positions, -1), indices[positions // (h * w)])
        # Merge, the kept candidates first: on a tie the earlier image stays ahead (a stable sort).
        merged = torch.cat([values, new_values], dim=1)
        order = torch.sort(merged, dim=1, stable=True).indices[:, :count]
        values = merged.gather(1, order)
        items = torch.cat([items, new_items], dim=1).gather(1, order)
        cells = torch.cat([cells, positions % (h * w)], dim=1).gather(1, order)
    return values, items, cells


def merge_nearest(best: torch.Tensor, best_item: torch.Tensor, best_cell: torch.Tensor, best_maps: torch.Tensor,
                  group: "Group"):
    """The global nearest patch of each prototype from every rank's own: the smallest distance wins, a tie goes
    to the lowest image index (as in a one-process scan, which keeps the first). The winner's latent map reaches
    every rank through a sum in which all other ranks add zeros, so it arrives unchanged."""
    distances, items, cells = group.gather(best), group.gather(best_item), group.gather(best_cell)   # [R, M]
    nearest = distances.min(dim=0).values
    contenders = (distances == nearest) & (items >= 0)
    never = torch.iinfo(torch.long).max
    item_keys = torch.where(contenders, items, torch.full_like(items, never))
    item, winner = item_keys.min(dim=0)
    found = item != never
    item = torch.where(found, item, torch.full_like(item, -1))
    cell = cells.gather(0, winner.view(1, -1)).view(-1)
    mine = (found & (winner == group.rank)).view(-1, 1, 1, 1)
    maps = group.sum(torch.where(mine, best_maps, torch.zeros_like(best_maps)))
    return nearest.to(best.device), item.to(best.device), cell.to(best.device), maps.to(best.device)
