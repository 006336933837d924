"""Prototype pruning: drop prototypes whose k nearest training patches are mostly from other classes."""
from __future__ import annotations

from typing import Iterable, List, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data import ImageSet
from .model import ProtoPNet


@torch.no_grad()
def nearest_patch_classes(model: ProtoPNet, push_set: ImageSet, batch_size: int, device: torch.device, k: int,
                          progress: bool = True, loader: Optional[Iterable] = None) -> torch.Tensor:
    """[M, k] class labels of each prototype's k nearest patches, at most one patch per image. `loader` is the push
    set's loader to scan (the run's, which a worker watches); by default one is made here."""
    model.eval()
    distances, labels = [], []
    if loader is None:
        loader = DataLoader(push_set, batch_size=batch_size)
    for images, batch_labels, _ in tqdm(loader, desc="prune", leave=False, disable=not progress):
        distances.append(model(images.to(device)).min_distances.cpu())   # per image: its nearest patch
        labels.append(batch_labels)
    all_distances = torch.cat(distances)             # [N, M]
    all_labels = torch.cat(labels)
    k = min(k, len(all_labels))
    nearest = all_distances.topk(k, dim=0, largest=False).indices     # [k, M]
    return all_labels[nearest].t()


def prune_prototypes(model: ProtoPNet, push_set: ImageSet, batch_size: int, device: torch.device, k: int = 6,
                     threshold: int = 3, progress: bool = True, loader: Optional[Iterable] = None) -> List[int]:
    """Indices of the prototypes to keep: those with at least `threshold` own-class patches among the k nearest.

    A class never loses all its prototypes: if every one fails, its best one (most own-class neighbours) stays,
    so the model can still predict that class."""
    classes = nearest_patch_classes(model, push_set, batch_size, device, k, progress, loader)
    prototype_classes = model.prototype_classes.cpu()
    own = (classes == prototype_classes.view(-1, 1)).sum(dim=1)
    keep = {j for j in range(model.num_prototypes) if int(own[j]) >= threshold}
    for cls in prototype_classes.unique().tolist():
        members = [j for j in range(model.num_prototypes) if int(prototype_classes[j]) == cls]
        if not keep.intersection(members):
            keep.add(max(members, key=lambda j: (int(own[j]), -j)))
    return sorted(keep)
