"""ONNX export, the model.json manifest and the atomic publish of a bundle version (MODEL_BUNDLE.md)."""
from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from . import __version__
from .errors import TrainerError
from .model import ProtoPNet
from .push import save_png

OUTPUT_NAMES = ["logits", "similarities", "similarity_maps", "min_distances"]
PREFERRED_OPSET = 17
MIN_OPSET = 13
PROBE_NAME = "ramp-7919"


class BundleGraph(nn.Module):
    """What the ONNX file computes: image in [0, 1] -> the contract's four outputs."""

    def __init__(self, model: ProtoPNet):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        out = self.model(image)
        return out.logits, out.similarities, out.similarity_maps, out.min_distances


def export_onnx(model: ProtoPNet, channels: int, height: int, width: int, path: str) -> int:
    """Write model.onnx (batch dimension dynamic). Returns the opset used: 17, else the highest >= 13."""
    model = model.cpu().eval()
    graph = BundleGraph(model).eval()  # the exporter restores the wrapper's mode recursively afterwards
    dummy = torch.rand(2, channels, height, width)
    kwargs: Dict[str, Any] = dict(
        input_names=["image"], output_names=OUTPUT_NAMES,
        dynamic_axes={name: {0: "N"} for name in ["image"] + OUTPUT_NAMES},
        do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch 2.x: the TorchScript exporter, whose output we test
    last_error: Optional[Exception] = None
    for opset in range(PREFERRED_OPSET, MIN_OPSET - 1, -1):
        try:
            with torch.no_grad():
                torch.onnx.export(graph, (dummy,), path, opset_version=opset, **kwargs)
                outputs = graph(dummy)
            _fix_output_shapes(path, [tuple(o.shape[1:]) for o in outputs])
            return opset
        except Exception as error:  # noqa: BLE001 - an unsupported opset: try the next lower one
            last_error = error
    raise TrainerError(f"ONNX export failed for every opset {PREFERRED_OPSET}..{MIN_OPSET}: {last_error}")


def _fix_output_shapes(path: str, shapes: List[tuple]) -> None:
    """Write every output's static dimensions (the exporter leaves some reductions symbolic); batch stays 'N'."""
    import onnx
    graph_proto = onnx.load(path)
    for output, shape in zip(graph_proto.graph.output, shapes):
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        batch = dims.add()
        batch.dim_param = "N"
        for size in shape:
            dims.add().dim_value = int(size)
    onnx.checker.check_model(graph_proto)
    onnx.save(graph_proto, path)


def _short_floats(values: torch.Tensor) -> List[float]:
    """float32 values as the short decimals they were given as (0.286, not 0.28600001335144043)."""
    return [float(f"{float(v):.7g}") for v in values.view(-1)]


def probe_input(channels: int, height: int, width: int) -> torch.Tensor:
    """The contract's probe image [1, C, H, W]: element i (row-major) is ((i * 7919) mod 1000) / 999."""
    index = torch.arange(channels * height * width, dtype=torch.int64)
    return (((index * 7919) % 1000).to(torch.float32) / 999.0).view(1, channels, height, width)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def check_writable(models_dir: str) -> None:
    """Fail early (before training) when the model repository cannot be written."""
    try:
        os.makedirs(models_dir, exist_ok=True)
    except OSError as error:
        raise TrainerError(f"output folder {models_dir} cannot be created: {error.strerror}") from None
    if not os.path.isdir(models_dir) or not os.access(models_dir, os.W_OK | os.X_OK):
        raise TrainerError(f"output folder {models_dir} is not writable")


def manifest_text(manifest: Dict[str, Any]) -> str:
    """Indented JSON, except that each row of numbers (last-layer weights, probe values) stays on one line."""
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

    text = json.dumps(compact(manifest), indent=1)
    for index, row in enumerate(rows):
        text = text.replace(f'"{token}{index}"', row, 1)
    return text + "\n"


def new_version(family_dir: str) -> str:
    moment = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    while True:
        version = moment.strftime("%Y%m%dT%H%M%SZ")
        if not os.path.exists(os.path.join(family_dir, version)) and not os.path.exists(
                os.path.join(family_dir, f".staging-{version}")):
            return version
        moment += dt.timedelta(seconds=1)


def publish(models_dir: str, name: str, fill: Callable[[str, str], Dict[str, Any]]) -> str:
    """Write a version atomically: `fill(staging_dir, version)` writes the files and returns the manifest, which
    is written last; then `.staging-<version>` is renamed to `<version>`. On any failure nothing is visible."""
    check_writable(models_dir)
    if not name or name.startswith(".") or os.sep in name or name in ("..",):
        raise TrainerError(f"invalid model name '{name}'")
    family_dir = os.path.join(models_dir, name)
    try:
        os.makedirs(family_dir, exist_ok=True)
    except OSError as error:
        raise TrainerError(f"output folder {family_dir} cannot be created: {error.strerror}") from None
    version = new_version(family_dir)
    staging = os.path.join(family_dir, f".staging-{version}")
    final = os.path.join(family_dir, version)
    try:
        os.makedirs(staging)
        manifest = fill(staging, version)
        manifest_tmp = os.path.join(staging, ".model.json.tmp")
        with open(manifest_tmp, "w", encoding="utf-8") as f:
            f.write(manifest_text(manifest))
            f.flush()
            os.fsync(f.fileno())
        os.replace(manifest_tmp, os.path.join(staging, "model.json"))
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def write_bundle(models_dir: str, name: str, model: ProtoPNet, *, classes: List[str], channels: int,
                 image_size: int, interpolation: str, records: List[Dict], training: Dict[str, Any],
                 report: Optional[Callable[[str, List[Dict]], List[str]]] = None,
                 examples: Optional[List[Tuple[torch.Tensor, int]]] = None) -> str:
    """Export, copy the prototype pictures, compute the probe and publish. Returns the version folder.

    `report(staging_dir, manifest_prototypes)` may add report/ files; `examples` are (image [C, H, W] in
    [0, 1], class) pairs stored as examples/<n>.png for trying the model; `training["seconds"]` grows by the
    export's own time, so it covers the whole recipe up to the manifest."""
    started = time.time()
    model = model.cpu().eval()
    if len(records) != model.num_prototypes:
        raise TrainerError(f"{model.num_prototypes} prototypes but {len(records)} push records: push the model first")
    if model.num_classes != len(classes):
        raise TrainerError(f"model has {model.num_classes} classes, data set has {len(classes)}")

    def fill(staging: str, version: str) -> Dict[str, Any]:
        onnx_path = os.path.join(staging, "model.onnx")
        opset = export_onnx(model, channels, image_size, image_size, onnx_path)
        model.eval()
        with torch.no_grad():
            probe = model(probe_input(channels, image_size, image_size))
        feature_h, feature_w = probe.similarity_maps.shape[-2:]
        prototypes = []
        for j, record in enumerate(records):
            target = os.path.join(staging, "prototypes", str(j))
            source_dir = record.get("pictures")
            if source_dir and all(os.path.isfile(os.path.join(source_dir, f"{kind}.png"))
                                  for kind in ("patch", "source", "activation")):
                os.makedirs(target, exist_ok=True)
                for kind in ("patch", "source", "activation"):
                    shutil.copyfile(os.path.join(source_dir, f"{kind}.png"), os.path.join(target, f"{kind}.png"))
            else:
                raise TrainerError(f"prototype {j}: pictures {source_dir} are missing")
            prototypes.append({
                "index": j,
                "classIndex": int(model.prototype_classes[j]),
                "source": {"split": "train", "item": str(record["itemId"]),
                           "featureCell": dict(record["featureCell"]), "box": dict(record["box"])},
                "images": {kind: f"prototypes/{j}/{kind}.png" for kind in ("patch", "source", "activation")},
            })
        report_files = report(staging, prototypes) if report is not None else []
        example_entries = []
        for n, (image, class_index) in enumerate(examples or []):
            os.makedirs(os.path.join(staging, "examples"), exist_ok=True)
            pixels = image.detach().cpu().permute(1, 2, 0).numpy()
            save_png(pixels, os.path.join(staging, "examples", f"{n}.png"))
            example_entries.append({"file": f"examples/{n}.png", "classIndex": int(class_index)})
        training_values = dict(training)
        if isinstance(training_values.get("seconds"), (int, float)):
            training_values["seconds"] = round(training_values["seconds"] + time.time() - started, 3)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        manifest = {
            "format": "protopnet-bundle",
            "formatVersion": 1,
            "name": name,
            "version": version,
            "createdUtc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "onnx": {"file": "model.onnx", "sha256": file_sha256(onnx_path), "opset": opset},
            "input": {"channels": channels, "height": image_size, "width": image_size,
                      "colorSpace": "gray" if channels == 1 else "rgb", "resize": "stretch",
                      "interpolation": interpolation,
                      "mean": _short_floats(model.mean), "std": _short_floats(model.std)},
            "classes": [{"index": k, "name": cls} for k, cls in enumerate(classes)],
            "featureMap": {"height": int(feature_h), "width": int(feature_w)},
            "similarity": {"function": model.similarity_function, "epsilon": model.epsilon},
            "prototypes": prototypes,
            "lastLayer": {"weights": model.last_layer.weight.detach().tolist()},
            "probe": {"input": PROBE_NAME, "logits": probe.logits[0].tolist(),
                      "similarities": probe.similarities[0].tolist()},
            "training": dict(training_values, software=software_versions()),
        }
        if report_files:
            manifest["report"] = report_files
        if example_entries:
            manifest["examples"] = example_entries
        return manifest

    return publish(models_dir, name, fill)
