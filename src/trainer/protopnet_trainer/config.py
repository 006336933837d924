"""Training configuration: one flat, JSON-serialisable dataclass plus the named presets."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import TrainerError


@dataclass
class TrainConfig:
    # data
    dataset: str = "fashion-mnist"          # fashion-mnist | cub200 | imagefolder | synthetic
    data: Optional[str] = None               # dataset folder (default per dataset)
    image_size: int = 28                     # model input is image_size x image_size
    crop_to_box: bool = False                # cub200: crop every image to its bird box (the paper's setting)
    augment: bool = True                     # online rotation / skew-shear / flip on the training set
    rotation_degrees: float = 15.0
    shear_degrees: float = 10.0
    skew: float = 0.2                        # perspective distortion scale
    flip: bool = True
    interpolation: str = "bilinear"         # resize interpolation (recorded in the manifest)
    synthetic_classes: int = 4
    synthetic_channels: int = 3
    synthetic_train_per_class: int = 60
    synthetic_test_per_class: int = 20
    train_limit: Optional[int] = None        # use only the first N training items (quick experiments)
    test_limit: Optional[int] = None
    # model
    backbone: str = "small-cnn"
    trunk_weights: Optional[str] = None      # file with a trunk state dict, "imagenet-onnx", "torchvision" or None
    small_cnn_widths: List[int] = field(default_factory=lambda: [32, 64, 128])
    small_cnn_convs_per_stage: int = 2
    small_cnn_pools: int = 2                 # 28 px / 2**2 = 7x7 feature map
    add_on: str = "regular"                  # regular | bottleneck
    prototype_dim: int = 128
    prototypes_per_class: int = 10
    similarity: str = "log"                  # log | linear
    epsilon: float = 1e-4
    # schedule
    epochs: int = 30
    warm_epochs: int = 5
    push_start: int = 10
    push_every: int = 10
    last_layer_iterations: int = 20
    joint_lr_step: int = 5
    joint_lr_gamma: float = 0.1
    warm_lr_add_on: float = 3e-3
    warm_lr_prototypes: float = 3e-3
    joint_lr_trunk: float = 1e-4
    joint_lr_add_on: float = 3e-3
    joint_lr_prototypes: float = 3e-3
    weight_decay: float = 1e-3
    last_layer_lr: float = 1e-4
    # losses
    coef_crs_ent: float = 1.0
    coef_clst: float = 0.8
    coef_sep: float = -0.08
    coef_l1: float = 1e-4
    # pruning
    prune: bool = False
    prune_k: int = 6
    prune_threshold: int = 3
    # batches and machine
    batch_size: int = 80
    test_batch_size: int = 100
    push_batch_size: int = 75
    num_workers: int = 0
    threads: int = 0                         # torch threads; 0 = leave torch's default
    seed: int = 1
    device: str = "auto"
    # black-box baseline: same trunk + global average pooling + linear, same budget and augmentation
    with_baseline: bool = False
    baseline_lr_head: float = 3e-3

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        if self.epochs < 1:
            raise TrainerError(f"--epochs must be at least 1 (got {self.epochs})")
        if self.warm_epochs < 0 or self.push_start < 0 or self.push_every < 1:
            raise TrainerError("schedule: warm_epochs and push_start must be >= 0 and push_every >= 1")
        if self.similarity not in ("log", "linear"):
            raise TrainerError(f"unknown similarity '{self.similarity}' (use log or linear)")
        if self.add_on not in ("regular", "bottleneck"):
            raise TrainerError(f"unknown add-on type '{self.add_on}' (use regular or bottleneck)")
        if self.prototypes_per_class < 1:
            raise TrainerError("--prototypes-per-class must be at least 1")
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise TrainerError(f"unknown interpolation '{self.interpolation}'")


PRESETS: Dict[str, Dict[str, Any]] = {
    # A colour model on the synthetic data set in well under a minute on 2 CPU cores.
    "smoke": dict(
        dataset="synthetic", image_size=32, synthetic_classes=4, synthetic_channels=3,
        synthetic_train_per_class=200, synthetic_test_per_class=50,
        backbone="small-cnn", small_cnn_widths=[16, 32], small_cnn_convs_per_stage=1, small_cnn_pools=2,
        prototype_dim=32, prototypes_per_class=2, augment=False,
        epochs=20, warm_epochs=2, push_start=10, push_every=5, last_layer_iterations=10,
        joint_lr_trunk=1e-3, joint_lr_step=8, batch_size=32, test_batch_size=100, push_batch_size=100, with_baseline=True,
    ),
    # The default model's recipe (grey Fashion-MNIST, 28x28 -> 7x7 feature map).
    "fashion-mnist": dict(
        dataset="fashion-mnist", image_size=28, backbone="small-cnn",
        small_cnn_widths=[32, 64, 128], small_cnn_convs_per_stage=2, small_cnn_pools=2,
        prototype_dim=64, prototypes_per_class=10, augment=True, rotation_degrees=10.0, shear_degrees=5.0,
        skew=0.1, flip=True, epochs=20, warm_epochs=2, push_start=10, push_every=5,
        last_layer_iterations=20, joint_lr_trunk=1e-3, joint_lr_step=8, batch_size=128,
        test_batch_size=500, push_batch_size=500, with_baseline=True,
    ),
    # The paper's recipe on cropped CUB-200-2011.
    "cub200-resnet34": dict(
        dataset="cub200", image_size=224, crop_to_box=True, backbone="resnet34", trunk_weights="torchvision",
        add_on="regular", prototype_dim=128, prototypes_per_class=10, augment=True,
        epochs=30, warm_epochs=5, push_start=10, push_every=10, last_layer_iterations=20,
        batch_size=80, test_batch_size=100, push_batch_size=75, with_baseline=True,
    ),
    # The paper's recipe with the one ImageNet trunk available offline: ResNet-18 from the NuGet ONNX file.
    "cub200-resnet18": dict(
        dataset="cub200", image_size=224, crop_to_box=True, backbone="resnet18", trunk_weights="imagenet-onnx",
        add_on="regular", prototype_dim=128, prototypes_per_class=10, augment=True,
        epochs=30, warm_epochs=5, push_start=10, push_every=10, last_layer_iterations=20,
        batch_size=80, test_batch_size=100, push_batch_size=75, with_baseline=True,
    ),
}


def preset_config(name: Optional[str]) -> TrainConfig:
    if name is None:
        return TrainConfig()
    if name not in PRESETS:
        raise TrainerError(f"unknown preset '{name}' (choose from {', '.join(sorted(PRESETS))})")
    return TrainConfig(**PRESETS[name])
