"""A bundle's files: the ONNX graph, its probe, the prototype pictures, the report and the examples, published as one
version (MODEL_BUNDLE.md). The manifest's content is composed in manifest.py, the atomic publish is publish.py."""
from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from .console import say
from .data import ImageSet, ImageSize, height_and_width
from .errors import TrainerError
from .interrupts import raise_if_interrupt
from .manifest import bundle_manifest, prototype_entry
from .model import ProtoPNet
from .publish import publish
from .pictures import save_png

if TYPE_CHECKING:
    from .scorecard import ScorecardHook

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
    errors: Dict[int, str] = {}
    for opset in range(PREFERRED_OPSET, MIN_OPSET - 1, -1):
        try:
            with torch.no_grad():
                torch.onnx.export(graph, (dummy,), path, opset_version=opset, **kwargs)
                outputs = graph(dummy)
            _fix_output_shapes(path, [tuple(o.shape[1:]) for o in outputs])
            if errors:
                say(f"ONNX export: opset {PREFERRED_OPSET} failed ({errors[PREFERRED_OPSET]}); exported with opset {opset}")
            return opset
        except Exception as error:  # noqa: BLE001 - an unsupported opset: try the next lower one
            raise_if_interrupt(error)   # a Ctrl-C or SIGTERM during the export, not an opset's failure
            errors[opset] = str(error).splitlines()[0] if str(error) else type(error).__name__
    # The preferred opset's error says most; a lower one's may only be "opset too old for this op".
    raise TrainerError(f"ONNX export failed for every opset {PREFERRED_OPSET}..{MIN_OPSET}: at {PREFERRED_OPSET}: "
                       f"{errors[PREFERRED_OPSET]}; at {MIN_OPSET}: {errors[MIN_OPSET]}")


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


PICTURE_KINDS = ("patch", "source", "activation")   # a prototype's pictures, as the bundle holds them


def has_pictures(record: Dict[str, Any]) -> bool:
    """Whether a push record's pictures are all where it says: what exporting the prototype needs."""
    folder = record.get("pictures")
    return bool(folder) and all(os.path.isfile(os.path.join(folder, f"{kind}.png")) for kind in PICTURE_KINDS)


def write_bundle(models_dir: str, name: str, model: ProtoPNet, *, classes: List[str], channels: int,
                 image_size: ImageSize, interpolation: str, records: List[Dict], training: Dict[str, Any], jpeg_draft: bool,
                 contrast: str = "none",
                 report: Optional[Callable[[str, List[Dict]], List[str]]] = None,
                 examples: Optional[List[Tuple[torch.Tensor, int]]] = None,
                 scorecard: Optional["ScorecardHook"] = None,
                 unfamiliarity: Optional[Dict[str, Any]] = None,
                 before_publish: Optional[Callable[[], None]] = None) -> str:
    """Export, copy the prototype pictures, compute the probe and publish. Returns the version folder.
    `before_publish()` may still stop the publish by raising, once everything is written (publish.publish).

    `report(staging_dir, manifest_prototypes)` may add report/ files; `scorecard(staging_dir, manifest_prototypes,
    last_layer_weights)` measures the exported graph and returns model.json's `interpretability` block and the
    report/ files it drew (scorecard.scorecard_hook); `examples` are (image [C, H, W] in
    [0, 1], class) pairs stored as examples/<n>.png for trying the model; `unfamiliarity` is the calibration of
    unfamiliarity.py (None: uncalibrated); `training["seconds"]` grows by the
    export's own time, so it covers the whole recipe up to the manifest."""
    started = time.time()
    height, width = height_and_width(image_size)
    model = model.cpu().eval()
    if len(records) != model.num_prototypes:
        raise TrainerError(f"{model.num_prototypes} prototypes but {len(records)} push records: push the model first")
    if model.num_classes != len(classes):
        raise TrainerError(f"model has {model.num_classes} classes, data set has {len(classes)}")

    def fill(staging: str, version: str) -> Dict[str, Any]:
        onnx_path = os.path.join(staging, "model.onnx")
        opset = export_onnx(model, channels, height, width, onnx_path)
        model.eval()
        with torch.no_grad():
            probe = model(probe_input(channels, height, width))
        feature_h, feature_w = probe.similarity_maps.shape[-2:]
        prototypes = []
        for j, record in enumerate(records):
            target = os.path.join(staging, "prototypes", str(j))
            source_dir = record.get("pictures")
            if has_pictures(record):
                os.makedirs(target, exist_ok=True)
                for kind in PICTURE_KINDS:
                    shutil.copyfile(os.path.join(source_dir, f"{kind}.png"), os.path.join(target, f"{kind}.png"))
            else:
                raise TrainerError(f"prototype {j}: pictures {source_dir} are missing")
            prototypes.append(prototype_entry(j, int(model.prototype_classes[j]), record))
        report_files = report(staging, prototypes) if report is not None else []
        interpretability = None
        if scorecard is not None:
            interpretability, scorecard_files = scorecard(staging, prototypes, model.last_layer.weight.detach().tolist())
            report_files = report_files + scorecard_files
        example_entries = []
        for n, (image, class_index) in enumerate(examples or []):
            os.makedirs(os.path.join(staging, "examples"), exist_ok=True)
            pixels = image.detach().cpu().permute(1, 2, 0).numpy()
            save_png(pixels, os.path.join(staging, "examples", f"{n}.png"))
            example_entries.append({"file": f"examples/{n}.png", "classIndex": int(class_index)})
        training_values = dict(training)
        if isinstance(training_values.get("seconds"), (int, float)):
            training_values["seconds"] = round(training_values["seconds"] + time.time() - started, 3)
        return bundle_manifest(
            name=name, version=version, model=model,
            onnx={"file": "model.onnx", "sha256": file_sha256(onnx_path), "opset": opset},
            classes=classes, channels=channels, height=height, width=width, interpolation=interpolation,
            contrast=contrast, jpeg_draft=jpeg_draft, feature_map={"height": int(feature_h), "width": int(feature_w)},
            prototypes=prototypes,
            probe={"input": PROBE_NAME, "logits": probe.logits[0].tolist(),
                   "similarities": probe.similarities[0].tolist()},
            training=training_values, report_files=report_files, examples=example_entries,
            interpretability=interpretability, unfamiliarity=unfamiliarity)

    return publish(models_dir, name, fill, before_rename=before_publish)


def example_images(test_set: ImageSet, count: int) -> List[Tuple[torch.Tensor, int]]:
    """The first test image of each class, for up to `count` classes (the service offers them for trying)."""
    chosen: Dict[int, int] = {}
    for index, label in enumerate(test_set.split.labels):
        if len(chosen) >= count:
            break
        chosen.setdefault(label, index)
    return [(test_set.image(index), label) for label, index in sorted(chosen.items())]
