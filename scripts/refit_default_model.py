#!/usr/bin/python3
"""Refits a published Fashion-MNIST bundle into a new version with the fixes of issues 15 and 16, without training
its trunk again (a full retraining of the recipe takes about 3 hours on this 2-core machine at its current speed):

1. the torch model is rebuilt from the bundle's model.onnx (the export folded each batch norm into its convolution;
   here the batch norms become identities) and checked against the bundle's probe;
2. the contrast step (`input.contrast: "auto"`, protopnet_trainer/contrast.py) is declared: product photos, dark on
   light, are inverted and stretched before the network sees them, by the trainer and the service alike;
3. background-aware push (protopnet_trainer/background.py): every prototype is projected onto its nearest own-class
   training patch that is not mostly empty ground;
4. the last layer is retrained as the recipe does after a push (CE + L1 on the wrong-class weights, clamped <= 0), on
   the training images' similarity scores and those of half of them rendered as product shots (the trainer's polarity
   augmentation; the features stay as they were);
5. the unfamiliarity threshold is calibrated on test images the model never trained on (the bundle held no training
   images out), and the test accuracy, the product-shot accuracy and the interpretability scorecard are measured;
6. a new version is published next to the old one, model.json recording the refit in `training.refit`; its examples
   are the old version's plus four product photos.

Usage: PYTHONPATH=src/trainer scripts/refit_default_model.py --bundle models/fashion-mnist/<version>
           [--models models] [--calibration-images 5000] [--last-layer-iterations 20] [--seed 1]
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms.functional import to_tensor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "trainer"))

from protopnet_trainer.config import TrainConfig  # noqa: E402
from protopnet_trainer.console import say  # noqa: E402
from protopnet_trainer.data import ImageSet  # noqa: E402
from protopnet_trainer.datasets import load_data_source  # noqa: E402
from protopnet_trainer.evaluate import evaluate_accuracy, test_metrics  # noqa: E402
from protopnet_trainer.export import example_images, probe_input, write_bundle  # noqa: E402
from protopnet_trainer.model import ProtoPNet, build_model  # noqa: E402
from protopnet_trainer.pipeline import product_shot_accuracy  # noqa: E402
from protopnet_trainer.product_shots import SHOT_SEED, PolarityAugment, render_product_shot  # noqa: E402
from protopnet_trainer.push import push_prototypes  # noqa: E402
from protopnet_trainer.report import plot_confusion, prototype_gallery  # noqa: E402
from protopnet_trainer.scorecard import scorecard_hook  # noqa: E402
from protopnet_trainer.last_layer import fit_last_layer  # noqa: E402
from protopnet_trainer.train import coefficients  # noqa: E402
from protopnet_trainer.trunks import SmallCNN  # noqa: E402
from protopnet_trainer.unfamiliarity import calibration_block, flagged_share, model_scores  # noqa: E402


PRODUCT_SHOT_EXAMPLES = [0, 3, 7, 9]   # T-shirt/top, dress, sneaker, ankle boot as product photos


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="the published version folder to refit")
    parser.add_argument("--models", default="models", help="models folder the new version is published into")
    parser.add_argument("--calibration-images", type=int, default=5000,
                        help="the last N test images calibrate the unfamiliarity threshold")
    parser.add_argument("--last-layer-iterations", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--shot-share", type=float, default=0.5,
                        help="the last layer also learns from this share of the training images rendered as product "
                             "shots (the trainer's polarity augmentation at the model's size; 0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def model_from_onnx(manifest: Dict[str, Any], folder: str, cfg: TrainConfig) -> ProtoPNet:
    """The bundle's network as a torch ProtoPNet: convolution weights and biases in graph order into the small CNN
    (each batch norm then adds the folded bias and is otherwise an identity), add-on, prototypes and last layer."""
    if cfg.backbone != "small-cnn":
        raise SystemExit(f"refit: only small-cnn bundles can be rebuilt from their graph (this is {cfg.backbone})")
    graph = onnx.load(os.path.join(folder, manifest["onnx"]["file"]))
    weights = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.graph.initializer}
    channels, classes = manifest["input"]["channels"], len(manifest["classes"])
    prototype_classes = [int(p["classIndex"]) for p in manifest["prototypes"]]
    model = build_model(cfg, channels, classes, manifest["input"]["mean"], manifest["input"]["std"],
                        prototype_classes=prototype_classes, load_weights=False).eval()
    trunk = model.trunk
    assert isinstance(trunk, SmallCNN)
    convolutions = [n for n in graph.graph.node if n.op_type == "Conv" and n.input[1] in weights
                    and not n.input[1].startswith("model.")][:sum(isinstance(m, torch.nn.Conv2d) for m in trunk.body)]
    layers = [m for m in trunk.body if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    with torch.no_grad():
        for node, (conv, norm) in zip(convolutions, zip(layers[0::2], layers[1::2])):
            conv.weight.copy_(weights[node.input[1]])
            norm.weight.fill_(1.0)
            norm.bias.copy_(weights[node.input[2]])
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
        state = {name[len("model."):]: value for name, value in weights.items() if name.startswith("model.")}
        model.load_state_dict(state, strict=False)
        model.last_layer.weight.copy_(torch.tensor(manifest["lastLayer"]["weights"]))
        probe = model(probe_input(channels, manifest["input"]["height"], manifest["input"]["width"]))
    expected = torch.tensor(manifest["probe"]["logits"])
    if not torch.allclose(probe.logits[0], expected, rtol=1e-4, atol=1e-4):
        raise SystemExit(f"refit: the rebuilt model does not reproduce the bundle's probe "
                         f"(largest logit difference {float((probe.logits[0] - expected).abs().max()):.3g})")
    return model


def similarity_scores(model: ProtoPNet, images, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        pairs = [(model(x).similarities, y) for x, y, _ in DataLoader(images, batch_size=batch_size)]
    return torch.cat([s for s, _ in pairs]), torch.cat([y for _, y in pairs])


def train_last_layer(model: ProtoPNet, push_set: ImageSet, shots: Optional[Dataset], cfg: TrainConfig,
                     iterations: int, seed: int) -> float:
    """The recipe's last-layer stage on the cached similarity scores of the push set (the features are fixed), and
    of `shots`, training images rendered as product shots, when given."""
    model.eval()
    scores, labels = similarity_scores(model, push_set, cfg.push_batch_size)
    if shots is not None:
        shot_scores, shot_labels = similarity_scores(model, shots, cfg.push_batch_size)
        scores, labels = torch.cat([scores, shot_scores]), torch.cat([labels, shot_labels])
    model.last_layer.weight.requires_grad_(True)
    optimizer = torch.optim.Adam([model.last_layer.weight], lr=cfg.last_layer_lr)
    return fit_last_layer(model, scores, labels, optimizer, coefficients(cfg), cfg, iterations,
                          torch.Generator().manual_seed(seed))


def product_shot_examples(test_set: ImageSet, classes: List[int]) -> List[Tuple[torch.Tensor, int]]:
    """For the page's example picker: the first test image of each of `classes` as the product photo
    check_product_shots.py sends (280x280 colour, dark on light), decoded."""
    examples = []
    for class_index in classes:
        index = test_set.split.labels.index(class_index)
        ink = (test_set.image_before_contrast(index)[0].mul(255).round().clamp(0, 255).to(torch.uint8)).numpy()
        with Image.open(io.BytesIO(render_product_shot(ink, SHOT_SEED + index))) as shot:
            examples.append((to_tensor(shot.convert("RGB")), class_index))
    return examples


def refit_report(old_bundle: str, confusion: np.ndarray, classes: List[str]):
    """write_bundle's report hook: the old version's training curves (they still describe how the trunk was trained),
    and the refit model's own confusion matrix and prototype gallery; the scorecard adds its picture."""
    def write(staging: str, prototypes: List[Dict]) -> List[str]:
        folder = os.path.join(staging, "report")
        os.makedirs(folder, exist_ok=True)
        written = []
        curves = os.path.join(old_bundle, "report", "curves.png")
        if os.path.isfile(curves):
            shutil.copyfile(curves, os.path.join(folder, "curves.png"))
            written.append("report/curves.png")
        plot_confusion(confusion, classes, os.path.join(folder, "confusion.png"))
        prototype_gallery(prototypes, classes, staging, os.path.join(folder, "gallery.png"))
        return written + ["report/confusion.png", "report/gallery.png"]
    return write


def main(args: argparse.Namespace) -> int:
    started = time.time()
    torch.manual_seed(args.seed)
    folder = os.path.normpath(args.bundle)
    with open(os.path.join(folder, "model.json")) as f:
        manifest = json.load(f)
    old_training = manifest["training"]
    cfg = TrainConfig.from_dict(old_training["config"]).replace(contrast="auto", background_aware=True, last_layer_clamp=True)
    iterations = args.last_layer_iterations if args.last_layer_iterations is not None else cfg.last_layer_iterations
    source = load_data_source(cfg.replace(calibration_holdout=0))
    model = model_from_onnx(manifest, folder, cfg)
    say(f"rebuilt {folder}/{manifest['onnx']['file']} as a torch model (probe reproduced)")

    push_set = ImageSet(source.train, cfg.image_size, cfg.interpolation, contrast=cfg.contrast)
    test_set = ImageSet(source.test, cfg.image_size, cfg.interpolation, contrast=cfg.contrast)
    before = evaluate_accuracy(model, DataLoader(test_set, batch_size=cfg.test_batch_size), torch.device("cpu"),
                               progress=not args.no_progress)
    say(f"test accuracy with the contrast step, before the push: {before:.4f}")
    with tempfile.TemporaryDirectory(prefix="protopnet-refit-") as pictures:
        records = push_prototypes(model, push_set, cfg.push_batch_size, torch.device("cpu"), pictures,
                                  progress=not args.no_progress, background_aware=True)
        moved = sum(1 for r, p in zip(records, manifest["prototypes"])
                    if (r["itemId"], r["featureCell"]) != (p["source"]["item"], p["source"]["featureCell"]))
        say(f"background-aware push: {moved} of {len(records)} prototypes moved to another patch")
        rendered_shots = None
        if args.shot_share > 0:
            rendered = ImageSet(source.train, cfg.image_size, cfg.interpolation, PolarityAugment(1.0), cfg.contrast)
            chosen = torch.randperm(len(rendered), generator=torch.Generator().manual_seed(args.seed))
            rendered_shots = Subset(rendered, chosen[:int(round(args.shot_share * len(rendered)))].tolist())
        train_accuracy = train_last_layer(model, push_set, rendered_shots, cfg, iterations, args.seed)
        loader = DataLoader(test_set, batch_size=cfg.test_batch_size)
        test_accuracy, confusion = test_metrics(model, loader, torch.device("cpu"), len(source.classes),
                                                progress=not args.no_progress)
        shots = product_shot_accuracy(model, test_set, cfg, progress=not args.no_progress)
        say(f"after push and last layer: test accuracy {test_accuracy:.4f}, product shots {shots:.4f}, "
            f"last-layer train accuracy {train_accuracy:.4f}")

        count = len(test_set)
        calibration_images = Subset(test_set, range(count - args.calibration_images, count))
        kept_images = Subset(test_set, range(0, count - args.calibration_images))
        calibration = calibration_block(
            model_scores(model, DataLoader(calibration_images, batch_size=cfg.test_batch_size), torch.device("cpu")),
            cfg.unfamiliar_share, f"test[{count - args.calibration_images}:{count}]")
        kept_scores = model_scores(model, DataLoader(kept_images, batch_size=cfg.test_batch_size), torch.device("cpu"))
        say(f"unfamiliarity threshold {calibration['threshold']:.4f} flags "
            f"{calibration['calibration']['flaggedShare']:.4f} of its {args.calibration_images} calibration images "
            f"and {flagged_share(kept_scores, calibration['threshold']):.4f} of the other "
            f"{count - args.calibration_images} test images")

        training = copy.deepcopy(old_training)
        training["config"] = cfg.to_dict()
        training["metrics"] = dict(training["metrics"], testAccuracy=test_accuracy, productShotAccuracy=shots)
        refit_seconds = round(time.time() - started, 3)
        training["refit"] = {
            "from": f"{manifest['name']}@{manifest['version']}", "seconds": refit_seconds,
            "steps": ["contrast auto", "background-aware push",
                      f"last layer ({iterations} passes; with {args.shot_share:g} of the training images also as "
                      f"product shots)",
                      f"unfamiliarity calibrated on test images {count - args.calibration_images}-{count - 1}"],
            "testAccuracyBefore": round(before, 4), "prototypesMoved": moved,
            "script": "scripts/refit_default_model.py",
        }
        bundle = write_bundle(args.models, manifest["name"], model, classes=source.classes,
                              channels=manifest["input"]["channels"], image_size=cfg.image_size,
                              interpolation=cfg.interpolation, contrast=cfg.contrast,
                              jpeg_draft=cfg.decodes_jpeg_draft, records=records,
                              training=training, report=refit_report(folder, confusion, source.classes),
                              examples=example_images(test_set, len(manifest.get("examples", [])) or 10)
                              + product_shot_examples(test_set, PRODUCT_SHOT_EXAMPLES),
                              scorecard=scorecard_hook(test_set, source.train, True, say),
                              unfamiliarity=calibration)
    say(f"published {bundle} (test accuracy {test_accuracy:.4f}, product shots {shots:.4f}, "
        f"{time.time() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args(sys.argv[1:])))
