#!/usr/bin/python3
"""A model on real photos and on unfamiliar images, through `POST /classify` of a running service (issue 16).

Sends, each as an image file:
  test      the model's own test images as they are (PNG), at the model's input size
  shots     the same test images rendered as product shots (protopnet_trainer.product_shots: inverted to dark on
            light, enlarged to 280x280, tinted, shifted and scaled a little, JPEG)
  noise     uniform RGB noise at the model's input size (PNG)
  other     images of another data set at the model's input size: the trainer's synthetic shapes (for a Fashion-MNIST
            model), Fashion-MNIST test images (for a model of the synthetic shapes)
and prints the accuracy on `test` and `shots`, and for each set the share the service flags `unfamiliar` and the ROC
AUC of the unfamiliarity score against `test`.

The threshold is the bundle's own (model.json `unfamiliarity`), or, with `--calibrate N`, one computed here on the
last N training images sent through the service the same way (for a bundle trained without a held-out split, such
as the default model before issue 16: those images were trained on, which the output says). `--calibration-out FILE`
writes that calibration as model.json's `unfamiliarity` block, outside the bundle.

Usage (loopback only; PYTHONPATH=src/trainer for the trainer's data sets and rendering):
  PYTHONPATH=src/trainer scripts/check_product_shots.py --start-service [--models models] [--model fashion-mnist]
      [--limit 2000] [--calibrate 5000 --calibration-out artifacts/default-unfamiliarity.json] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src", "trainer"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from check_default_model import add_service_arguments, classify, first_paragraph, png_bytes, service_url  # noqa: E402
from protopnet_trainer.config import TrainConfig  # noqa: E402
from protopnet_trainer.data import Split  # noqa: E402
from protopnet_trainer.datasets import load_data_source  # noqa: E402
from protopnet_trainer.synthetic import generate_synthetic  # noqa: E402
from protopnet_trainer.product_shots import SHOT_SEED, render_product_shot  # noqa: E402
from protopnet_trainer.unfamiliarity import (calibration_block, flagged_share, roc_auc)  # noqa: E402

Upload = Tuple[bytes, str]   # file bytes, content type
NOISE_SEED = 16


def encode_png(pixels: np.ndarray) -> Upload:
    return png_bytes(pixels), "image/png"


def split_pixels(split: Split, count: int, size: int) -> List[np.ndarray]:
    """The first `count` images of a split as uint8 arrays at size x size (grey: [H, W]; colour: [H, W, 3])."""
    pictures = []
    for index in range(min(count, len(split))):
        picture = split.load(index).convert("L" if split.channels == 1 else "RGB")
        if picture.size != (size, size):
            picture = picture.resize((size, size), Image.BILINEAR)
        pictures.append(np.asarray(picture))
    return pictures


def luma(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.ndim == 2 else np.asarray(Image.fromarray(pixels).convert("L"))


def classify_upload(url: str, upload: Upload, name: str, model: Optional[str]) -> dict:
    data, content_type = upload
    return classify(url, data, name, model, content_type)


def classify_all(url: str, uploads: Sequence[Upload], label: str, model: Optional[str], concurrency: int) -> List[dict]:
    started = time.time()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = list(pool.map(lambda item: classify_upload(url, item[1], f"{label}-{item[0]}", model), enumerate(uploads)))
    print(f"  {label}: {len(answers)} images in {time.time() - started:.0f}s", flush=True)
    return answers


def image_sets(cfg: TrainConfig, size: int, channels: int, limit: int, seed: int
               ) -> Tuple[Dict[str, List[Upload]], List[int]]:
    """The uploads of each set and the true classes of `test` (and `shots`, the same images)."""
    source = load_data_source(cfg.replace(augment=False, calibration_holdout=0))
    test = split_pixels(source.test, limit, size)
    labels = source.test.labels[:len(test)]
    rng = np.random.RandomState(NOISE_SEED + seed)
    noise = [rng.randint(0, 256, (size, size, 3)).astype(np.uint8) for _ in range(len(test))]
    if cfg.dataset == "synthetic":
        other_cfg = TrainConfig(dataset="fashion-mnist", image_size=size)
        other = split_pixels(load_data_source(other_cfg).test, len(test), size)
    else:
        per_class = -(-len(test) // 10)
        shapes = generate_synthetic(10, per_class, size, channels, seed + 3, "test")
        other = split_pixels(shapes, len(test), size)
    return {
        "test": [encode_png(p) for p in test],
        "shots": [(render_product_shot(luma(p), SHOT_SEED + i), "image/jpeg") for i, p in enumerate(test)],
        "noise": [encode_png(p) for p in noise],
        "other": [encode_png(p) for p in other],
    }, labels


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=first_paragraph(__doc__))
    add_service_arguments(parser)
    parser.add_argument("--model", default="fashion-mnist", help="model name (its newest version is read)")
    parser.add_argument("--limit", type=int, default=2000, help="test images (and as many of each other set)")
    parser.add_argument("--calibrate", type=int, metavar="N",
                        help="compute the threshold here on the last N training images instead of the bundle's")
    parser.add_argument("--calibration-out", metavar="FILE", help="with --calibrate: write the unfamiliarity block")
    parser.add_argument("--share", type=float, default=0.01, help="with --calibrate: share of those images to flag")
    parser.add_argument("--json", metavar="FILE", help="write the numbers as JSON")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the noise images and the synthetic shapes (default 1)")
    args = parser.parse_args(argv)

    family = os.path.join(args.models, args.model)
    version = sorted(v for v in os.listdir(family) if not v.startswith("."))[-1]
    with open(os.path.join(family, version, "model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    cfg = TrainConfig.from_dict(manifest["training"]["config"])
    size, channels = manifest["input"]["width"], manifest["input"]["channels"]
    sets, labels = image_sets(cfg, size, channels, args.limit, args.seed)
    holdout: List[Upload] = []
    if args.calibrate:
        held = load_data_source(cfg.replace(augment=False, calibration_holdout=args.calibrate)).holdout
        holdout = [encode_png(p) for p in split_pixels(held, args.calibrate, size)]

    with service_url(args) as url:
        answers = {name: classify_all(url, uploads, name, args.model, args.concurrency) for name, uploads in sets.items()}
        held_answers = classify_all(url, holdout, "holdout", args.model, args.concurrency) if holdout else []

    served = {(a["model"]["name"], a["model"]["version"]) for group in answers.values() for a in group}
    if served != {(args.model, version)}:
        raise SystemExit(f"error: answers came from {sorted(served)}, expected {args.model}@{version}")
    scores = {name: [a["unfamiliarity"]["score"] for a in group] for name, group in answers.items()}
    measure = answers["test"][0]["unfamiliarity"]["measure"]
    if held_answers:
        calibration = calibration_block([a["unfamiliarity"]["score"] for a in held_answers], args.share,
                                        f"train-last-{args.calibrate}")
        trained_on = not cfg.calibration_holdout or args.calibrate > cfg.calibration_holdout
        calibration["calibration"]["trainedOn"] = trained_on
        calibration["calibration"]["bundle"] = f"{args.model}@{version}"
        origin = (f"computed here on the last {args.calibrate} training images"
                  + (" (the model was trained on them)" if trained_on else " (held out of training)"))
        if args.calibration_out:
            os.makedirs(os.path.dirname(os.path.abspath(args.calibration_out)), exist_ok=True)
            with open(args.calibration_out, "w", encoding="utf-8") as f:
                json.dump(calibration, f, indent=1)
            origin += f", written to {args.calibration_out}"
    elif manifest.get("unfamiliarity"):
        calibration = manifest["unfamiliarity"]
        origin = "the bundle's (model.json)"
    else:
        raise SystemExit("error: the bundle has no unfamiliarity calibration: pass --calibrate N")
    threshold = float(calibration["threshold"])

    def accuracy(name: str) -> float:
        return sum(int(a["prediction"]["classIndex"] == labels[i]) for i, a in enumerate(answers[name])) / len(labels)

    results: Dict[str, Dict[str, float]] = {}
    print(f"model {args.model}@{version}, measure {measure}, threshold {threshold:.4f} ({origin}; it flags "
          f"{calibration['calibration']['flaggedShare']:.4f} of its {calibration['calibration']['size']} images)")
    print(f"{'set':8} {'images':>7} {'accuracy':>9} {'flagged':>8} {'AUC vs test':>12}")
    for name in ("test", "shots", "noise", "other"):
        row = {"images": len(scores[name]), "flagged": flagged_share(scores[name], threshold)}
        if name in ("test", "shots"):
            row["accuracy"] = accuracy(name)
        if name != "test":
            row["auc"] = roc_auc(scores["test"], scores[name])
        results[name] = row
        acc = f"{100 * row['accuracy']:.2f}%" if "accuracy" in row else "-"
        auc = f"{row['auc']:.4f}" if "auc" in row else "-"
        print(f"{name:8} {row['images']:>7} {acc:>9} {100 * row['flagged']:>7.2f}% {auc:>12}")
    metrics = manifest["training"].get("metrics") or {}
    for name, key in (("test", "testAccuracy"), ("shots", "productShotAccuracy")):
        if metrics.get(key) is not None:
            print(f"trainer's {key}: {100 * metrics[key]:.2f}% on the whole test split "
                  f"(served: {100 * results[name]['accuracy']:.2f}% on {len(labels)} images)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": f"{args.model}@{version}", "measure": measure, "threshold": threshold,
                       "calibration": calibration, "sets": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
