"""The interpretability scorecard of a bundle (interpretability.py's measures), computed on its ONNX graph: for a
bundle being published (train, export: inside the staging folder, before model.json is written) and for a
published bundle (evaluate-interpretability: results written elsewhere, the bundle is never changed)."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .atomic import write_text_atomically
from .config import TrainConfig
from .data import ImageSet, Split
from .datasets import load_data_source
from .errors import TrainerError
from .interpretability import PrototypeSource, collect, scorecard
from .onnx_graph import OnnxGraph

Log = Callable[[str], None]
# write_bundle's hook: (staging folder, manifest prototypes, last-layer weights) -> (block, report files)
ScorecardHook = Callable[[str, List[Dict], List[List[float]]], Tuple[Dict[str, Any], List[str]]]


def prototype_sources(folder: str, prototypes: List[Dict], train: Optional[Split]) -> List[PrototypeSource]:
    """Each prototype's source picture and box from a bundle folder; its parts when the training split has them."""
    index_of = {item: n for n, item in enumerate(train.ids)} if train is not None and train.parts else {}
    sources = []
    for entry in prototypes:
        path = os.path.join(folder, entry.get("images", {}).get("source", f"prototypes/{entry['index']}/source.png"))
        try:
            with Image.open(path) as picture:
                image = np.asarray(picture, dtype=np.float32) / 255.0
        except OSError as error:
            raise TrainerError(f"prototype {entry['index']}: cannot read {path} ({error})") from None
        image = image[..., None] if image.ndim == 2 else image
        box = entry.get("source", {}).get("box")
        if not box:
            raise TrainerError(f"prototype {entry['index']} has no source.box")
        item = str(entry.get("source", {}).get("item"))
        parts = train.parts.boxes[index_of[item]] if item in index_of else None
        sources.append(PrototypeSource(image, (box["x"], box["y"], box["width"], box["height"]), parts))
    return sources


def measure(folder: str, onnx_file: str, prototypes: List[Dict], weights: List[List[float]], test_set: ImageSet,
            train: Optional[Split], batch_size: int = 100, progress: bool = False) -> Dict[str, Any]:
    """The `interpretability` block for the graph in `folder`, measured on `test_set` (a progress bar of its batches:
    each runs the graph on six variants of its images, about as long as an epoch's test pass)."""
    started = time.time()
    graph = OnnxGraph(os.path.join(folder, onnx_file))
    images = torch.stack([test_set.image(n) for n in range(len(test_set))]) if len(test_set) else None
    if images is None:
        raise TrainerError("interpretability: no test images")
    labels = list(test_set.split.labels)
    mean_colour = images.mean(dim=(0, 2, 3))
    batches = tqdm([(images[n:n + batch_size], labels[n:n + batch_size]) for n in range(0, len(labels), batch_size)],
                   desc="interpretability", leave=False, disable=not progress)
    prototype_classes = torch.tensor([int(p["classIndex"]) for p in prototypes])
    records = collect(graph, batches, torch.tensor(weights), prototype_classes, mean_colour)
    parts = test_set.split.parts
    block = scorecard(records, prototype_classes.tolist(), prototype_sources(folder, prototypes, train),
                      parts, parts.boxes if parts is not None else None)
    block.update({"split": test_set.split.name, "meanColour": [round(float(v), 4) for v in mean_colour],
                  "engine": graph.engine, "seconds": round(time.time() - started, 1)})
    return block


def scorecard_hook(test_set: ImageSet, train: Optional[Split], report: bool, log: Log,
                   batch_size: int = 100, progress: bool = False) -> ScorecardHook:
    """write_bundle's step that measures the exported graph in the staging folder (and draws its picture)."""
    def run(staging: str, prototypes: List[Dict], weights: List[List[float]]) -> Tuple[Dict[str, Any], List[str]]:
        block = measure(staging, "model.onnx", prototypes, weights, test_set, train, batch_size, progress)
        log(summary(block))
        for warning in scorecard_warnings(block):
            log(f"warning: {warning}")
        files = []
        if report:
            from .report import plot_interpretability
            os.makedirs(os.path.join(staging, "report"), exist_ok=True)
            plot_interpretability(block, os.path.join(staging, "report", "interpretability.png"))
            files.append("report/interpretability.png")
        return block, files
    return run


def summary(block: Dict[str, Any]) -> str:
    def share(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"
    deletion = block["deletion"]
    return (f"interpretability on {block['images']} images: pointing game {share(block['pointingGame'])}, "
            f"consistency {share(block['consistency'])}, noise stability {share(block['noiseStability'])}, "
            f"JPEG stability {share(block['jpegStability'])}, deletion ratio {deletion['ratio']} "
            f"(top box {deletion['meanDropTopBox']}, random {deletion['meanDropRandomBox']}), background "
            f"{block['backgroundPrototypes']}/{len(block['prototypes'])} prototypes")


def scorecard_warnings(block: Dict[str, Any]) -> List[str]:
    """What the scorecard says against the model's explanations, whatever the data set: said where a job's warnings
    are read, not only in the log line and the bundle."""
    warnings = []
    ratio = block["deletion"]["ratio"]
    if ratio is not None and ratio < 1:
        warnings.append(f"the explanations do not carry the decisions: covering the top prototype's box lowers the "
                        f"score less than covering a random box of its size (deletion ratio {ratio})")
    prototypes, background = len(block["prototypes"]), block["backgroundPrototypes"]
    if prototypes and background > prototypes / 2:
        warnings.append(f"{background} of {prototypes} prototypes are patches of background, not of an object: "
                        f"their evidence says little about the class")
    return warnings


# The manifest's parts the scorecard reads, and their JSON types (docs/MODEL_BUNDLE.md).
_MANIFEST_PARTS = (("version", str), ("input", dict), ("classes", list), ("prototypes", list), ("lastLayer", dict),
                   ("onnx", dict))
_INPUT_PARTS = (("width", int), ("height", int), ("channels", int))
_JSON_NAMES = {int: "number", str: "string", dict: "object", list: "array"}


def _check_manifest(manifest: Any, path: str) -> None:
    """Refuses a model.json without the parts the scorecard reads, or with one of another type, in one line."""
    if not isinstance(manifest, dict):
        raise TrainerError(f"{path} is not a bundle manifest: it holds a JSON {type(manifest).__name__}, not an object")
    checks = [(manifest.get(key), kind, key) for key, kind in _MANIFEST_PARTS]
    size = manifest.get("input")
    if isinstance(size, dict):
        checks += [(size.get(key), kind, f"input.{key}") for key, kind in _INPUT_PARTS]
    for value, kind, name in checks:
        if not isinstance(value, kind) or isinstance(value, bool):
            raise TrainerError(f"{path} is not a bundle manifest the trainer wrote: its {name} is "
                               f"{json.dumps(value)[:60]}, not a JSON {_JSON_NAMES[kind]}")


def evaluate_bundle(bundle: str, dataset: Optional[str], data: Optional[str], output: Optional[str],
                    limit: Optional[int], batch_size: int, log: Log, progress: bool = False) -> Dict[str, Any]:
    """The scorecard of a published bundle, on its data set's test split (or another data set's), written to
    `output` (interpretability.json, interpretability.png); the bundle itself is only read."""
    manifest_path = os.path.join(bundle, "model.json")
    if not os.path.isdir(bundle):
        raise TrainerError(f"--bundle {bundle} is not a folder (a bundle is a version folder, models/<name>/<version>)")
    versions = sorted(entry for entry in os.listdir(bundle) if os.path.isfile(os.path.join(bundle, entry, "model.json")))
    if not os.path.exists(manifest_path) and versions:
        raise TrainerError(f"--bundle {bundle} is a model folder: pass one of its version folders, "
                           f"e.g. {os.path.join(bundle, versions[-1])}")
    try:
        with open(manifest_path, "r", encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        raise TrainerError(f"cannot read {manifest_path}: {error}") from None
    _check_manifest(manifest, manifest_path)
    output = output or os.path.join("runs", manifest.get("name", "bundle"), f"interpretability-{manifest['version']}")
    # Resolved, so that a folder inside the bundle or a link to it is refused too.
    bundle_path, output_path = os.path.realpath(bundle), os.path.realpath(output)
    if os.path.commonpath([bundle_path, output_path]) == bundle_path:
        raise TrainerError(f"--output {output} is the bundle or inside it: published versions are immutable")
    if os.path.exists(output) and not os.path.isdir(output):   # found before the measuring, not after it
        raise TrainerError(f"--output {output} is a file, not a folder")
    if limit is not None and limit < 1:
        raise TrainerError(f"--limit must be at least 1 (got {limit})")
    if batch_size < 1:   # 0 stopped in a traceback, a negative size measured no image and wrote a scorecard of zeros
        raise TrainerError(f"--batch-size must be at least 1 (got {batch_size})")
    training = manifest.get("training") or {}
    cfg = TrainConfig.from_dict(training.get("config") or {"dataset": training.get("dataset", "fashion-mnist")})
    changes = {k: v for k, v in (("dataset", dataset), ("data", data)) if v is not None}
    size = manifest["input"]
    # The bundle's own decoding: JPEGs at a reduced DCT scale only when it says so (as the service decodes).
    cfg = cfg.replace(**changes, augment=False, test_limit=limit, image_size=int(size["width"]),
                      jpeg_draft=bool(size.get("jpegDraft", False)))
    source = load_data_source(cfg, read=("test",))   # scored on the test split (a prototype's own image read as needed)
    # Only the count: the measures are of boxes and parts, which another data set of as many classes can be scored on.
    if len(source.classes) != len(manifest["classes"]):
        raise TrainerError(f"class-count mismatch: the bundle has {len(manifest['classes'])} classes, data set "
                           f"{cfg.dataset} has {len(source.classes)}")
    if size["channels"] != source.channels:
        raise TrainerError(f"the bundle takes {size['channels']} channels, data set {cfg.dataset} has "
                           f"{source.channels}")
    test_set = ImageSet(source.test, int(size["height"]), size.get("interpolation", "bilinear"),
                        contrast=size.get("contrast", "none"))
    same_data = cfg.dataset == training.get("dataset")
    block = measure(bundle, manifest["onnx"]["file"], manifest["prototypes"], manifest["lastLayer"]["weights"],
                    test_set, source.train if same_data else None, batch_size, progress)
    block["dataset"] = cfg.dataset
    log(summary(block))
    os.makedirs(output, exist_ok=True)
    write_text_atomically(os.path.join(output, "interpretability.json"), json.dumps(block, indent=1) + "\n")
    from .report import plot_interpretability
    plot_interpretability(block, os.path.join(output, "interpretability.png"))
    log(f"wrote {output}/interpretability.json and interpretability.png")
    return block
