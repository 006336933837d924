"""The ProtoPNet network: normalise -> trunk f -> add-on layers -> prototype layer g_P -> last layer h."""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import torch
from torch import nn
import torch.nn.functional as F

from .config import TrainConfig
from .errors import TrainerError
from .trunks import adapt_first_conv, build_trunk, load_trunk_weights


class ProtoPNetOutput(NamedTuple):
    logits: torch.Tensor            # [N, K]
    similarities: torch.Tensor      # [N, M] max similarity over the map
    similarity_maps: torch.Tensor   # [N, M, h, w]
    min_distances: torch.Tensor     # [N, M]
    distances: torch.Tensor         # [N, M, h, w]


def build_add_on(kind: str, in_channels: int, prototype_dim: int) -> nn.Sequential:
    """'regular': Conv1x1 -> ReLU -> Conv1x1 -> Sigmoid. 'bottleneck': halve the channels step by step down to D."""
    if kind == "regular":
        layers: List[nn.Module] = [nn.Conv2d(in_channels, prototype_dim, 1), nn.ReLU(),
                                   nn.Conv2d(prototype_dim, prototype_dim, 1), nn.Sigmoid()]
    elif kind == "bottleneck":
        layers = []
        current = in_channels
        while True:
            out = max(prototype_dim, current // 2)
            layers += [nn.Conv2d(current, out, 1), nn.ReLU(), nn.Conv2d(out, out, 1)]
            current = out
            if current == prototype_dim:
                layers.append(nn.Sigmoid())
                break
            layers.append(nn.ReLU())
    else:
        raise TrainerError(f"unknown add-on type '{kind}'")
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def last_layer_init(prototype_classes: torch.Tensor, num_classes: int, incorrect: float = -0.5) -> torch.Tensor:
    """K x M: 1 where prototype j belongs to class k, `incorrect` (-0.5) elsewhere."""
    identity = F.one_hot(prototype_classes.long(), num_classes).t().float()
    return identity + incorrect * (1.0 - identity)


def squared_distances(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance of every cell of z [N, D, h, w] to every prototype [M, D, 1, 1]: [N, M, h, w], as
    ||z||^2 - 2 z.p + ||p||^2 clamped at 0. This is the exported graph's form: where distances are small its float32
    cancellation differs from sum((z - p)^2), so whatever must agree with the service's maps computes it so."""
    z2 = (z ** 2).sum(dim=1, keepdim=True)
    p2 = (prototypes ** 2).sum(dim=(1, 2, 3)).view(1, -1, 1, 1)
    zp = F.conv2d(z, prototypes)
    return F.relu(z2 - 2 * zp + p2)


class ProtoPNet(nn.Module):
    def __init__(self, trunk: nn.Module, trunk_channels: int, prototype_classes: List[int], num_classes: int,
                 prototype_dim: int, add_on: str, similarity: str, epsilon: float,
                 mean: List[float], std: List[float]):
        super().__init__()
        if similarity not in ("log", "linear"):
            raise TrainerError(f"unknown similarity '{similarity}'")
        channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))
        self.trunk = trunk
        self.add_on = build_add_on(add_on, trunk_channels, prototype_dim)
        self.prototypes = nn.Parameter(torch.rand(len(prototype_classes), prototype_dim, 1, 1))
        self.register_buffer("prototype_classes", torch.tensor(prototype_classes, dtype=torch.long))
        self.last_layer = nn.Linear(len(prototype_classes), num_classes, bias=False)
        self.last_layer.weight.data.copy_(last_layer_init(self.prototype_classes, num_classes))
        self.similarity_function = similarity
        self.epsilon = epsilon
        self.num_classes = num_classes

    @property
    def num_prototypes(self) -> int:
        return self.prototypes.shape[0]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Latent patches z: [N, D, h, w] for images in [0, 1]."""
        return self.add_on(self.trunk((images - self.mean) / self.std))

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared L2 distance of every cell to every prototype: [N, D, h, w] -> [N, M, h, w]."""
        return squared_distances(z, self.prototypes)

    def similarity(self, distances: torch.Tensor) -> torch.Tensor:
        if self.similarity_function == "log":
            return torch.log((distances + 1) / (distances + self.epsilon))
        return -distances

    def forward(self, images: torch.Tensor) -> ProtoPNetOutput:
        distances = self.distances(self.features(images))
        maps = self.similarity(distances)
        similarities = maps.flatten(2).max(dim=2)[0]
        min_distances = distances.flatten(2).min(dim=2)[0]
        logits = self.last_layer(similarities)
        return ProtoPNetOutput(logits, similarities, maps, min_distances, distances)

    def keep_prototypes(self, keep: torch.Tensor) -> None:
        """Prune: keep only the prototypes whose indices are in `keep` (and their last-layer columns)."""
        keep = keep.to(self.prototypes.device)
        self.prototypes = nn.Parameter(self.prototypes.data[keep].clone())
        self.prototype_classes = self.prototype_classes[keep].clone()
        weight = self.last_layer.weight.data[:, keep].clone()
        self.last_layer = nn.Linear(len(keep), self.num_classes, bias=False).to(weight.device)
        self.last_layer.weight.data.copy_(weight)


class BaselineNet(nn.Module):
    """The black box with the same trunk: global average pooling + linear classifier."""

    def __init__(self, trunk: nn.Module, trunk_channels: int, num_classes: int, mean: List[float], std: List[float]):
        super().__init__()
        channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))
        self.trunk = trunk
        self.classifier = nn.Linear(trunk_channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = self.trunk((images - self.mean) / self.std)
        return self.classifier(z.mean(dim=(2, 3)))


def default_prototype_classes(num_classes: int, per_class: int) -> List[int]:
    """Prototype j belongs to class j div per_class."""
    return [j // per_class for j in range(num_classes * per_class)]


def build_model(cfg: TrainConfig, channels: int, num_classes: int, mean: List[float], std: List[float],
                prototype_classes: Optional[List[int]] = None, load_weights: bool = True) -> ProtoPNet:
    """Build the network for a config. With `load_weights` the trunk gets its pretrained weights (and their
    normalisation); without, the architecture only (a checkpoint's state dict fills it)."""
    trunk = build_trunk(cfg.backbone, channels, cfg.small_cnn_widths, cfg.small_cnn_convs_per_stage,
                        cfg.small_cnn_pools, cfg.trunk_weights)
    if load_weights:
        _, weight_mean, weight_std = load_trunk_weights(trunk, cfg.backbone, cfg.trunk_weights, channels)
        if weight_mean:
            mean, std = weight_mean, weight_std
    else:
        adapt_first_conv(trunk, channels)
    if len(mean) != channels:
        raise TrainerError(f"normalisation has {len(mean)} channels, images have {channels}")
    classes = prototype_classes if prototype_classes is not None else default_prototype_classes(
        num_classes, cfg.prototypes_per_class)
    return ProtoPNet(trunk, trunk.out_channels, classes, num_classes, cfg.prototype_dim, cfg.add_on,
                     cfg.similarity, cfg.epsilon, mean, std)
