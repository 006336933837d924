"""Push (prototype projection): each prototype replaced by its nearest training patch of its own class, with its
box and pictures (boxes.py, pictures.py)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, Iterable, List, NamedTuple, Optional, Tuple

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .background import background_pixels, background_to_leave_out, box_is_background
from .boxes import high_activation_box, upsample_activation
from .data import ImageSet
from .errors import TrainerError
from .model import ProtoPNet, squared_distances
from .pictures import write_prototype_pictures

if TYPE_CHECKING:
    from .distributed import Group

# How many nearest foreground cells per prototype the background-aware push keeps for its box check.
FOREGROUND_CANDIDATES = 16


@torch.no_grad()
def push_prototypes(model: ProtoPNet, push_set: ImageSet, batch_size: int, device: torch.device,
                    picture_dir: Optional[str], progress: bool = True,
                    require_every_class: bool = True, group: Optional["Group"] = None,
                    background_aware: bool = False, loader: Optional[Iterable] = None) -> List[Dict]:
    """Replace every prototype by its nearest latent patch among the push-set images of its own class.

    Returns one record per prototype (source item, feature cell, box) and, with `picture_dir`, writes
    <picture_dir>/<j>/{patch,source,activation}.png. Without `require_every_class` (benchmarks on a part of a
    data set) prototypes of classes absent from the push set are left as they were and get no record.
    With a distributed `group`, each rank scans its shard, the candidates of all ranks are merged in the order of a
    one-process scan (`merge_candidates`) and rank 0 chooses: every rank ends with the prototypes and records of a
    one-process push; only rank 0 writes the pictures. `background_aware` leaves out the cells
    background.background_to_leave_out marks and takes the nearest of a prototype's FOREGROUND_CANDIDATES nearest
    cells whose box is not mostly border colour, by the scorecard's rule (the nearest one when none is).
    Without a group, `loader` is the push set's loader to scan in order (the run's, which a worker watches so that a
    cancel stops the push between batches); by default one is made here.
    """
    model.eval()
    if group is not None:
        loader = group.shard(push_set, batch_size)
    elif loader is None:
        loader = DataLoader(push_set, batch_size=batch_size, shuffle=False)
    count = FOREGROUND_CANDIDATES if background_aware else 1
    candidates = _nearest_candidates(model, loader, device, progress, count, background_aware)
    if group is not None:
        candidates = merge_candidates(candidates, group)
    num_prototypes = model.num_prototypes
    missing = (candidates.items[:, 0] < 0).nonzero().view(-1)
    if len(missing) and require_every_class:
        cls = int(model.prototype_classes[missing[0]])
        raise TrainerError(f"push: the push set has no image of class {cls} ({push_set.split.classes[cls]})")
    # Rank 0 chooses and computes the latent maps; a sum in which the other ranks add zeros hands them over
    # unchanged, so every rank gets the same prototypes even where ranks' devices differ in the last bit.
    deciding = group is None or group.is_main
    images = PushImages(model, push_set, device, with_background=background_aware)
    chosen = torch.zeros(num_prototypes, dtype=torch.long, device=device)
    if background_aware:
        if deciding:
            chosen = _first_foreground_candidates(model, push_set.height, push_set.width, candidates, images)
        if group is not None:
            chosen = group.sum(chosen).to(device)
    index = torch.arange(num_prototypes, device=device)
    best, best_item, best_cell = (part[index, chosen] for part in candidates)
    # The winners' latent maps are computed again: the scan keeps none, so that one scan serves both pushes.
    best_maps = images.latent_maps(best_item) if deciding else images.zeros(num_prototypes)   # [M, D, h, w]
    if group is not None:
        best_maps = group.sum(best_maps).to(device)
    h, w = best_maps.shape[-2:]
    rows, cols = best_cell // w, best_cell % w
    vectors = best_maps[index, :, rows, cols]                            # [M, D]
    found = best_item >= 0
    vectors[~found] = model.prototypes.data.view(num_prototypes, -1)[~found]
    model.prototypes.data.copy_(vectors.view_as(model.prototypes))
    activation_maps = model.similarity(_own_source_distances(model, best_maps))
    records: List[Dict] = []
    render = picture_dir is not None and deciding
    for j in tqdm(range(num_prototypes), desc="prototype pictures", leave=False, disable=not progress):
        item = int(best_item[j])
        if item < 0:
            continue
        upsampled = upsample_activation(activation_maps[j], push_set.height, push_set.width)
        box = high_activation_box(upsampled)
        if render:
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


def _own_source_distances(model: ProtoPNet, source_maps: torch.Tensor) -> torch.Tensor:
    """[M, D, h, w], map j the latent map of pushed prototype j's source image -> [M, h, w], prototype j's distances
    over it in the network's form (squared_distances), so that the box recorded for the gallery is the box the
    trainer's forward pass, and up to ONNX Runtime's rounding the service, gives on that image. Prototype j alone: each
    distance sums over D as in the network's run of all M (the same float32 values), and all M for each of M images
    took 10 s for 2,000 prototypes, against 0.06 s."""
    prototypes = model.prototypes
    return torch.stack([squared_distances(source_map[None], prototypes[j:j + 1])[0, 0]
                        for j, source_map in enumerate(source_maps)])


class Candidates(NamedTuple):
    """Each prototype's nearest own-class cells, nearest first: distances, image indices, cells (row * w + column),
    each [M, count]; a missing one has distance inf and image -1."""
    values: torch.Tensor
    items: torch.Tensor
    cells: torch.Tensor


def _nearest_candidates(model: ProtoPNet, loader, device: torch.device, progress: bool, count: int,
                        background_aware: bool) -> Candidates:
    """Each prototype's `count` nearest own-class cells over the loader's images (foreground cells only when
    `background_aware`), in scan order on a tie."""
    num_prototypes = model.num_prototypes
    classes = model.prototype_classes.to(device)
    kept = Candidates(torch.full((num_prototypes, count), float("inf"), device=device),
                      torch.full((num_prototypes, count), -1, dtype=torch.long, device=device),
                      torch.zeros((num_prototypes, count), dtype=torch.long, device=device))
    for images, labels, indices in tqdm(loader, desc="push", leave=False, disable=not progress):
        images, labels, indices = images.to(device), labels.to(device), indices.to(device)
        distances = model.distances(model.features(images))             # [B, M, h, w]
        batch, _, h, w = distances.shape
        own = classes.view(1, -1) == labels.view(-1, 1)                # [B, M]
        distances = distances.masked_fill(~own[:, :, None, None], float("inf"))
        if background_aware:
            distances = distances.masked_fill(background_to_leave_out(images, h, w)[:, None], float("inf"))
        flat = distances.permute(1, 0, 2, 3).reshape(num_prototypes, batch * h * w)
        values, positions = _smallest_in_scan_order(flat, count)
        items = torch.where(torch.isinf(values), torch.full_like(positions, -1), indices[positions // (h * w)])
        kept = _first_in_scan_order(Candidates(torch.cat([kept.values, values], dim=1),
                                               torch.cat([kept.items, items], dim=1),
                                               torch.cat([kept.cells, positions % (h * w)], dim=1)), count)
    return kept


def _smallest_in_scan_order(flat: torch.Tensor, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """[M, n] distances of one batch in scan order (image, then cell) -> the `count` smallest of each row and their
    positions; on a tie at the last place, the first ones in scan order."""
    if count == 1:
        return flat.min(dim=1, keepdim=True)    # the first minimum on a tie
    k = min(count, flat.shape[1])
    values, positions = flat.topk(k, dim=1, largest=False)
    # topk picks arbitrarily among values tied at the k-th place: those rows (rare; not rows whose k-th is inf,
    # where only finite values count) are sorted stably instead.
    last = values[:, -1:]
    tied = torch.isfinite(last[:, 0]) & ((flat <= last).sum(dim=1) > k)
    if tied.any():
        sorted_values, sorted_positions = torch.sort(flat[tied], dim=1, stable=True)
        values[tied], positions[tied] = sorted_values[:, :k], sorted_positions[:, :k]
    return values, positions


def _first_in_scan_order(candidates: Candidates, count: int) -> Candidates:
    """The first `count` candidates of each prototype by distance, then image index, then cell: the order in which
    a one-process scan of the images in index order meets them, so a tie goes to the patch it meets first."""
    order = torch.arange(candidates.values.shape[1], device=candidates.values.device).expand_as(candidates.values)
    for key in (candidates.cells, candidates.items, candidates.values):   # least significant key first
        order = order.gather(1, torch.sort(key.gather(1, order), dim=1, stable=True).indices)
    order = order[:, :count]
    return Candidates(*(part.gather(1, order) for part in candidates))


def merge_candidates(candidates: Candidates, group: "Group") -> Candidates:
    """Every rank's candidates merged into the nearest of all ranks, as one process would have found them."""
    count = candidates.values.shape[1]
    gathered = [group.gather(part) for part in candidates]                # each [R, M, count]
    merged = Candidates(*(part.permute(1, 0, 2).reshape(part.shape[1], -1) for part in gathered))
    return _first_in_scan_order(merged, count)


class PushImages:
    """Push-set images run through the model, each once (several prototypes and candidates share images), and each
    alone, as a service request of one image runs it: a batch's float sums differ from a lone image's in the last
    bit, enough to move a box by a pixel on a model whose distances are all small. Latent maps [D, h, w] and, for the
    box check, background pixels [H, W] (kept on the CPU)."""

    def __init__(self, model: ProtoPNet, push_set: ImageSet, device: torch.device, with_background: bool):
        self.model, self.push_set, self.device = model, push_set, device
        self.with_background = with_background
        self._latent: Dict[int, torch.Tensor] = {}
        self._background: Dict[int, torch.Tensor] = {}

    def load(self, items: Iterable[int]) -> None:
        """Runs the images not run yet, in index order."""
        for item in sorted({item for item in items if item >= 0 and item not in self._latent}):
            image = self.push_set.image(item)[None].to(self.device)
            self._latent[item] = self.model.features(image)[0]
            if self.with_background:
                self._background[item] = background_pixels(image)[0].cpu()

    def latent_map(self, item: int) -> torch.Tensor:
        self.load([item])
        return self._latent[item]

    def background(self, item: int) -> torch.Tensor:
        self.load([item])
        return self._background[item]

    def latent_maps(self, items: torch.Tensor) -> torch.Tensor:
        """[M] image indices -> [M, D, h, w] (zeros for -1)."""
        indices = items.tolist()
        self.load(indices)
        zero = self.zeros(1)[0]
        return torch.stack([self._latent[item] if item >= 0 else zero for item in indices])

    def zeros(self, count: int) -> torch.Tensor:
        """[count, D, h, w] zeros, the shape of a latent map."""
        if not self._latent:
            self.load([0])
        shape = next(iter(self._latent.values())).shape
        return torch.zeros((count, *shape), device=self.device)


def _first_foreground_candidates(model: ProtoPNet, height: int, width: int, candidates: Candidates,
                                 images: PushImages) -> torch.Tensor:
    """[M]: for each prototype, the first of its candidates whose high-activation box on its image is not mostly
    the border's colour (0, the nearest, when none is: the prototype then stays background). The candidates of one
    rank are run through the model together, for the prototypes still undecided."""
    num_prototypes, count = candidates.values.shape
    chosen = torch.zeros(num_prototypes, dtype=torch.long, device=candidates.values.device)
    undecided = list(range(num_prototypes))
    for k in range(count):
        items = {j: int(candidates.items[j, k]) for j in undecided}
        undecided = [j for j in undecided if items[j] >= 0]
        images.load(items[j] for j in undecided)
        still_background = []
        for j in undecided:
            z = images.latent_map(items[j])
            row, column = divmod(int(candidates.cells[j, k]), z.shape[-1])
            activation = model.similarity(squared_distances(z[None], z[:, row, column, None, None][None])[0, 0])
            box = high_activation_box(upsample_activation(activation, height, width))
            if box_is_background(images.background(items[j]), box):
                still_background.append(j)
            else:
                chosen[j] = k
        undecided = still_background
    return chosen
