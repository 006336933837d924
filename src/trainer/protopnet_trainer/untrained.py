"""An untrained (random-weight) bundle of any size, e.g. ResNet-18 224x224 with 200 x 10 prototypes, for
benchmarking the service. Its prototypes are pushed onto one synthetic image per class, so it satisfies the
bundle contract (pictures, sources, boxes) without any training."""
from __future__ import annotations

import argparse
import time

import torch

from .cli import show_progress
from .config import TrainConfig
from .data import ImageSet, generate_synthetic
from .errors import TrainerError
from .export import write_bundle
from .model import build_model
from .push import push_prototypes
from .trunks import TRUNKS


def export_untrained(args: argparse.Namespace) -> str:
    if args.backbone not in TRUNKS:
        raise TrainerError(f"unknown trunk '{args.backbone}' (choose from {', '.join(TRUNKS)})")
    if args.num_classes < 2 or args.prototypes_per_class < 1 or args.image_size < 16:
        raise TrainerError("untrained export needs at least 2 classes, 1 prototype per class and 16 px images")
    started = time.time()
    torch.manual_seed(args.seed)
    cfg = TrainConfig(dataset="synthetic", image_size=args.image_size, backbone=args.backbone,
                      prototypes_per_class=args.prototypes_per_class, synthetic_classes=args.num_classes,
                      synthetic_channels=args.channels, synthetic_train_per_class=1, epochs=0, seed=args.seed,
                      prototype_dim=128)
    # Noise-free images keep the 3 x M prototype pictures small.
    split = generate_synthetic(args.num_classes, 1, args.image_size, args.channels, args.seed, "train", noise=0.0)
    mean, std = [0.5] * args.channels, [0.25] * args.channels
    model = build_model(cfg, args.channels, args.num_classes, mean, std)
    push_set = ImageSet(split, args.image_size)
    with _tempdir() as pictures:
        records = push_prototypes(model, push_set, 16, torch.device("cpu"), pictures,
                                  progress=show_progress(args))
        training = {"dataset": "synthetic", "trainSize": len(split), "testSize": 0, "backbone": args.backbone,
                    "epochs": 0, "seconds": round(time.time() - started, 3), "untrained": True,
                    "metrics": {"testAccuracy": None, "trainAccuracy": None},
                    "prototypesPerClass": args.prototypes_per_class}
        return write_bundle(args.models, args.name or f"{args.backbone}-untrained", model, classes=split.classes,
                            channels=args.channels, image_size=args.image_size, interpolation=cfg.interpolation,
                            records=records, training=training)


def _tempdir():
    import tempfile
    return tempfile.TemporaryDirectory(prefix="protopnet-untrained-")
