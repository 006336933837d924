"""The ProtoPNet objective: CE + clst * Clst + sep * Sep + l1 * L1(wrong-class last-layer weights)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F


@dataclass
class LossCoefficients:
    crs_ent: float = 1.0
    clst: float = 0.8
    sep: float = -0.08    # negative: a larger distance to other-class prototypes lowers the loss
    l1: float = 1e-4


def own_class_mask(prototype_classes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[N, M] True where prototype j belongs to image n's class."""
    return prototype_classes.view(1, -1) == labels.view(-1, 1)


def cluster_cost(min_distances: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Mean over images of the smallest distance to a prototype of the image's own class."""
    return _masked_min(min_distances, own).mean()


def separation_cost(min_distances: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Mean over images of the smallest distance to a prototype of another class (the loss multiplies it by
    the negative coefficient `sep`, which is the paper's "minus")."""
    return _masked_min(min_distances, ~own).mean()


def _masked_min(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    masked = values.masked_fill(~mask, float("inf")).min(dim=1)[0]
    # An image whose class has no prototype (possible after pruning) contributes nothing.
    return torch.where(torch.isinf(masked), torch.zeros_like(masked), masked)


def l1_wrong_class(last_layer_weight: torch.Tensor, prototype_classes: torch.Tensor) -> torch.Tensor:
    """L1 norm of the weights that connect a prototype to the classes other than its own (weight is K x M)."""
    num_classes = last_layer_weight.shape[0]
    identity = F.one_hot(prototype_classes.long(), num_classes).t().to(last_layer_weight.dtype)
    return (last_layer_weight * (1.0 - identity)).abs().sum()


def protopnet_loss(logits: torch.Tensor, min_distances: torch.Tensor, labels: torch.Tensor,
                   prototype_classes: torch.Tensor, last_layer_weight: torch.Tensor,
                   coefs: LossCoefficients, cluster_distances: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """`cluster_distances` [N, M] replaces `min_distances` in the cluster cost (the background-aware recipe gives
    the distances over foreground cells only; background.foreground_min_distances)."""
    own = own_class_mask(prototype_classes, labels)
    terms = {
        "cross_entropy": F.cross_entropy(logits, labels),
        "cluster": cluster_cost(min_distances if cluster_distances is None else cluster_distances, own),
        "separation": separation_cost(min_distances, own),
        "l1": l1_wrong_class(last_layer_weight, prototype_classes),
    }
    terms["total"] = (coefs.crs_ent * terms["cross_entropy"] + coefs.clst * terms["cluster"]
                      + coefs.sep * terms["separation"] + coefs.l1 * terms["l1"])
    return terms


def last_layer_loss(logits: torch.Tensor, labels: torch.Tensor, prototype_classes: torch.Tensor,
                    last_layer_weight: torch.Tensor, coefs: LossCoefficients) -> torch.Tensor:
    """Last-layer stage: features are frozen, so only CE and the L1 term can change."""
    return (coefs.crs_ent * F.cross_entropy(logits, labels)
            + coefs.l1 * l1_wrong_class(last_layer_weight, prototype_classes))
