"""An untrained (random-weight) bundle of any size, e.g. ResNet-18 224x224 with 200 x 10 prototypes, for
benchmarking the service. Its prototypes are pushed onto one synthetic image per class, so it satisfies the
bundle contract (pictures, sources, boxes) without any training."""
from __future__ import annotations

import tempfile
import time
from typing import Optional

import torch

from .config import TrainConfig
from .data import ImageSet, ImageSize, height_and_width
from .synthetic import generate_synthetic
from .errors import TrainerError
from .export import write_bundle
from .model import build_model
from .publish import check_writable
from .push import push_prototypes
from .trunks import TRUNKS


def export_untrained(models: str, name: Optional[str], backbone: str, num_classes: int, prototypes_per_class: int,
                     image_size: ImageSize, channels: int, seed: int, progress: bool = False) -> str:
    """Publish the untrained bundle; returns its folder (the default name is <backbone>-untrained). `image_size` is a
    square's side or (height, width): a bundle of another shape is what tests of non-square inputs need."""
    if backbone not in TRUNKS:
        raise TrainerError(f"unknown trunk '{backbone}' (choose from {', '.join(TRUNKS)})")
    height, width = height_and_width(image_size)
    wrong = [f"--num-classes {num_classes}" if num_classes < 2 else "",
             f"--prototypes-per-class {prototypes_per_class}" if prototypes_per_class < 1 else "",
             f"--image-size {width}x{height}" if min(height, width) < 16 else ""]
    if any(wrong):   # named, as the other options' errors are: which of the three it was went unsaid
        raise TrainerError("untrained export needs at least 2 classes, 1 prototype per class and 16 px images (got "
                           f"{', '.join(w for w in wrong if w)})")
    check_writable(models)   # after the options' checks: a refused export makes no model repository
    started = time.time()
    torch.manual_seed(seed)
    cfg = TrainConfig(dataset="synthetic", backbone=backbone,
                      prototypes_per_class=prototypes_per_class, synthetic_classes=num_classes,
                      synthetic_channels=channels, synthetic_train_per_class=1, epochs=0, seed=seed,
                      prototype_dim=128)
    # Noise-free images keep the 3 x M prototype pictures small; square ones are stretched to the input's shape.
    split = generate_synthetic(num_classes, 1, max(height, width), channels, seed, "train", noise=0.0)
    mean, std = [0.5] * channels, [0.25] * channels
    model = build_model(cfg, channels, num_classes, mean, std)
    push_set = ImageSet(split, (height, width))
    with tempfile.TemporaryDirectory(prefix="protopnet-untrained-") as pictures:
        records = push_prototypes(model, push_set, 16, torch.device("cpu"), pictures, progress=progress)
        training = {"dataset": "synthetic", "trainSize": len(split), "testSize": 0, "backbone": backbone,
                    "epochs": 0, "seconds": round(time.time() - started, 3), "untrained": True,
                    "metrics": {"testAccuracy": None, "trainAccuracy": None},
                    "prototypesPerClass": prototypes_per_class}
        return write_bundle(models, name or f"{backbone}-untrained", model, classes=split.classes,
                            channels=channels, image_size=(height, width), interpolation=cfg.interpolation,
                            jpeg_draft=cfg.decodes_jpeg_draft, records=records, training=training)
