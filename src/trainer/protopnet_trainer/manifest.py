"""What a bundle's model.json says (MODEL_BUNDLE.md): the manifest's sections, its `training` block with the
baseline, and its text. Pure composition: no files are read or written here."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import torch

from . import __version__
from .atomic import finite
from .config import TrainConfig

if TYPE_CHECKING:
    from .model import ProtoPNet
    from .train import TrainResult

BASELINE_MODEL = "same trunk + global average pooling + linear"


def training_block(cfg: TrainConfig, result: "TrainResult", train_size: int, test_size: int,
                   preset: Optional[str]) -> Dict[str, Any]:
    """The manifest's `training`: the recipe, its data, time and accuracy, and the baseline when there is one."""
    block: Dict[str, Any] = {
        "dataset": cfg.dataset, "trainSize": train_size, "testSize": test_size, "backbone": cfg.backbone,
        "trunkWeights": cfg.trunk_weights, "epochs": cfg.epochs, "seconds": round(result.seconds, 3),
        "metrics": {"testAccuracy": result.test_accuracy, "trainAccuracy": result.train_accuracy},
        "preset": preset, "prototypesPerClass": cfg.prototypes_per_class, "cropToBox": cfg.crop_to_box,
        "augment": cfg.augment, "pushEpochs": [m["epoch"] for m in result.history if m.get("pushed")],
        "pruned": cfg.prune, "config": cfg.to_dict(),
    }
    if result.baseline is not None:
        block["baseline"] = dict(result.baseline.block)
    return block


def baseline_block(cfg: TrainConfig, test_accuracy: float, seconds: Optional[float]) -> Dict[str, Any]:
    """training.baseline of a baseline trained in the same process, after ProtoPNet."""
    block: Dict[str, Any] = {"testAccuracy": test_accuracy, "backbone": cfg.backbone, "epochs": cfg.epochs,
                             "model": BASELINE_MODEL, "augment": cfg.augment, "augmentation": cfg.augmentation,
                             "jointOptimizer": cfg.joint_optimizer}
    block.update(recipe_extras(cfg))
    if seconds:
        block["seconds"] = round(seconds, 3)
    return block


def separate_baseline_block(cfg: TrainConfig, history: List[float], seconds: float) -> Dict[str, Any]:
    """training.baseline of a baseline trained in a process of its own (--baseline-only): also its per-epoch
    history and seed, so the ProtoPNet run that reads it can check that it is of the same recipe."""
    block = {"testAccuracy": history[-1], "history": history, "seconds": round(seconds, 3),
             "backbone": cfg.backbone, "epochs": cfg.epochs, "seed": cfg.seed, "model": BASELINE_MODEL,
             "augment": cfg.augment, "augmentation": cfg.augmentation, "jointOptimizer": cfg.joint_optimizer,
             "process": "separate (--baseline-only)"}
    block.update(recipe_extras(cfg))
    return block


# The data recipe beyond the paper's: the baseline block's key, the config attribute, and its value when off.
RECIPE_EXTRAS = (("polarityAugment", "polarity_augment", 0), ("noiseAugment", "noise_augment", 0),
                 ("contrast", "contrast", "none"), ("calibrationHoldout", "calibration_holdout", 0))


def recipe_extras(cfg: TrainConfig) -> Dict[str, Any]:
    """The data recipe beyond the paper's, where it is on: product-shot augmentation, noise, contrast normalisation
    and the calibration hold-out all change what the baseline sees, so its block records them."""
    return {key: getattr(cfg, attribute) for key, attribute, off in RECIPE_EXTRAS if getattr(cfg, attribute) != off}


def baseline_mismatches(block: Dict[str, Any], cfg: TrainConfig) -> List[str]:
    """The recipe fields in which a separate baseline's block differs from `cfg`."""
    mismatches = [key for key, value in (("backbone", cfg.backbone), ("epochs", cfg.epochs), ("seed", cfg.seed),
                                         ("augmentation", cfg.augmentation), ("jointOptimizer", cfg.joint_optimizer))
                  if block.get(key) != value]
    # recipe_extras names a recipe field only when it is on, in both blocks: an absent key is the default.
    extras = recipe_extras(cfg)
    mismatches += [key for key, _, _ in RECIPE_EXTRAS if block.get(key) != extras.get(key)]
    return mismatches


def prototype_entry(index: int, class_index: int, record: Dict[str, Any]) -> Dict[str, Any]:
    """One prototype: its class, the training patch it was pushed onto and its three pictures."""
    return {
        "index": index,
        "classIndex": class_index,
        "source": {"split": "train", "item": str(record["itemId"]),
                   "featureCell": dict(record["featureCell"]), "box": dict(record["box"])},
        "images": {kind: f"prototypes/{index}/{kind}.png" for kind in ("patch", "source", "activation")},
    }


def short_floats(values: torch.Tensor) -> List[float]:
    """float32 values as the short decimals they were given as (0.286, not 0.28600001335144043)."""
    return [float(f"{float(v):.7g}") for v in values.view(-1)]


def bundle_manifest(*, name: str, version: str, model: "ProtoPNet", onnx: Dict[str, Any], classes: List[str],
                    channels: int, height: int, width: int, interpolation: str, contrast: str, jpeg_draft: bool,
                    feature_map: Dict[str, int],
                    prototypes: List[Dict[str, Any]], probe: Dict[str, Any], training: Dict[str, Any],
                    report_files: List[str], examples: List[Dict[str, Any]],
                    interpretability: Optional[Dict[str, Any]] = None,
                    unfamiliarity: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The whole model.json of a bundle version."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    manifest = {
        "format": "protopnet-bundle",
        "formatVersion": 1,
        "name": name,
        "version": version,
        "createdUtc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "onnx": onnx,
        "input": {"channels": channels, "height": height, "width": width,
                  "colorSpace": "gray" if channels == 1 else "rgb", "resize": "stretch",
                  "interpolation": interpolation, "contrast": contrast, "jpegDraft": jpeg_draft,
                  "mean": short_floats(model.mean), "std": short_floats(model.std)},
        "classes": [{"index": k, "name": cls} for k, cls in enumerate(classes)],
        "featureMap": feature_map,
        "similarity": {"function": model.similarity_function, "epsilon": model.epsilon},
        "prototypes": prototypes,
        "lastLayer": {"weights": model.last_layer.weight.detach().tolist()},
        "probe": probe,
        "training": dict(training, software=software_versions()),
    }
    if interpretability is not None:
        manifest["interpretability"] = interpretability
    if unfamiliarity:
        manifest["unfamiliarity"] = unfamiliarity
    if report_files:
        manifest["report"] = report_files
    if examples:
        manifest["examples"] = examples
    return manifest


def software_versions() -> Dict[str, str]:
    versions = {"trainer": trainer_version(), "torch": torch.__version__, "python": platform.python_version()}
    try:
        import torchvision
        versions["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        import onnx
        versions["onnx"] = onnx.__version__
    except ImportError:
        pass
    return versions


def trainer_version() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def manifest_text(manifest: Dict[str, Any]) -> str:
    """Indented JSON, except that each row of numbers (last-layer weights, probe values) stays on one line. A NaN or
    infinity is written as null: JSON has no such numbers, and the service would refuse the whole file for one (null
    refuses the bundle only where the service needs a number, as a NaN probe value should)."""
    rows: List[str] = []
    token = f"row-{uuid.uuid4().hex}-"

    def compact(value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     for v in value):
            rows.append(json.dumps(value))
            return f"{token}{len(rows) - 1}"
        if isinstance(value, list):
            return [compact(v) for v in value]
        if isinstance(value, dict):
            return {k: compact(v) for k, v in value.items()}
        return value

    text = json.dumps(compact(finite(manifest)), indent=1, allow_nan=False)
    for index, row in enumerate(rows):
        text = text.replace(f'"{token}{index}"', row, 1)
    return text + "\n"
