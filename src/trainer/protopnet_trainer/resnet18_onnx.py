"""ImageNet ResNet-18 weights imported from the ResNet18.onnx of Microsoft.ML.DnnImageFeaturizer.ResNet18.

That file (a CNTK export) is torchvision's ResNet structure with basic blocks [2, 2, 2, 3] (one block more
in the last stage than torchvision's resnet18): Conv (no bias) -> BatchNormalization -> Relu, MaxPool, Add,
then a 7x7 AveragePool. Its asymmetric paddings (begin 1, end 0 on stride-2 layers) select the same windows
as torchvision's symmetric ones at 224 px. Its input is 0-255 **BGR** with the per-pixel mean image of
ResNetPreprocess.onnx subtracted. We copy the conv and BN tensors into torchvision's module and express the
preprocessing as the model's own normalisation: the first conv's kernels are reordered BGR -> RGB, the
mean becomes the mean image's per-channel average (the image varies only a few grey levels around it) and
std = 1/255, so `(x - mean) / std` on [0, 1] RGB is the ONNX file's input.
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn

from .errors import TrainerError

PACKAGE = "microsoft.ml.dnnimagefeaturizer.resnet18"
PACKAGE_VERSION = "0.23.1"
RESTORE_HINT = "run `dotnet restore src/trainer/pretrained/PretrainedWeights.csproj` first"


def package_dir() -> str:
    root = os.environ.get("NUGET_PACKAGES") or os.path.join(os.path.expanduser("~"), ".nuget", "packages")
    return os.path.join(root, PACKAGE, PACKAGE_VERSION, "tools", "DnnImageModels")


def resnet18_onnx_path() -> str:
    return os.environ.get("PROTOPNET_RESNET18_ONNX") or os.path.join(package_dir(), "ResNet18Onnx", "ResNet18.onnx")


def preprocess_onnx_path() -> str:
    return os.path.join(package_dir(), "ResNetPrepOnnx", "ResNetPreprocess.onnx")


def _load(path: str):
    import onnx
    if not os.path.isfile(path):
        raise TrainerError(f"ResNet-18 ONNX weights not found at {path}: {RESTORE_HINT}")
    try:
        return onnx.load(path)
    except Exception as error:  # noqa: BLE001 - a corrupt file is an input problem
        raise TrainerError(f"cannot read {path}: {error}") from None


def mean_image_bgr() -> np.ndarray:
    """The mean image [3, 224, 224] (BGR, 0-255) that ResNetPreprocess.onnx subtracts."""
    from onnx import numpy_helper
    model = _load(preprocess_onnx_path())
    for tensor in model.graph.initializer:
        if tensor.name == "MeanImage":
            return numpy_helper.to_array(tensor).reshape(3, 224, 224).astype(np.float32)
    raise TrainerError(f"{preprocess_onnx_path()} has no MeanImage")


def conv_bn_pairs(path: str) -> List[Tuple[np.ndarray, Dict[str, np.ndarray], float]]:
    """(conv weight, BN tensors, BN epsilon) for every Conv of the graph, in graph order."""
    from onnx import helper, numpy_helper
    model = _load(path)
    graph = model.graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: Dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    pairs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        if len(node.input) > 2:
            raise TrainerError(f"{path}: conv {node.name} has a bias; not the expected ResNet-18 export")
        bns = [c for c in consumers.get(node.output[0], []) if c.op_type == "BatchNormalization"]
        if len(bns) != 1:
            raise TrainerError(f"{path}: conv {node.output[0]} is not followed by one BatchNormalization")
        bn = bns[0]
        epsilon = 1e-5
        for attribute in bn.attribute:
            if attribute.name == "epsilon":
                epsilon = float(helper.get_attribute_value(attribute))
        scale, bias, mean, var = (tensors[name] for name in bn.input[1:5])
        pairs.append((tensors[node.input[1]], {"weight": scale, "bias": bias, "running_mean": mean,
                                               "running_var": var}, epsilon))
    return pairs


def _targets(trunk: nn.Module) -> List[Tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """torchvision modules in the ONNX graph's conv order (a block's 1x1 projection comes first there)."""
    targets = [(trunk.conv1, trunk.bn1)]
    for layer in (trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4):
        for block in layer:
            if block.downsample is not None:
                targets.append((block.downsample[0], block.downsample[1]))
            targets += [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    return targets


def load_into_trunk(trunk: nn.Module, path: str) -> None:
    """Copy the ONNX file's tensors into a torchvision ResNet-18 trunk, unchanged (BGR input order)."""
    pairs = conv_bn_pairs(path)
    targets = _targets(trunk)
    if len(pairs) != len(targets):
        raise TrainerError(f"{path}: {len(pairs)} convolutions, ResNet-18 has {len(targets)}")
    with torch.no_grad():
        for (weight, bn, epsilon), (conv, norm) in zip(pairs, targets):
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise TrainerError(f"{path}: conv weight {weight.shape} does not fit {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            for name, value in bn.items():
                getattr(norm, name).copy_(torch.from_numpy(value.copy()).view(-1))
            norm.eps = epsilon


def import_resnet18_onnx(trunk: nn.Module) -> Tuple[List[float], List[float], str]:
    """Load the weights and make the trunk take RGB: returns (mean, std) for [0, 1] RGB input and the source."""
    path = resnet18_onnx_path()
    load_into_trunk(trunk, path)
    with torch.no_grad():
        trunk.conv1.weight.copy_(trunk.conv1.weight.flip(1))   # BGR kernels -> RGB kernels
    channel_mean_bgr = mean_image_bgr().reshape(3, -1).mean(axis=1)
    mean_rgb = [float(v) / 255.0 for v in channel_mean_bgr[::-1]]
    return mean_rgb, [1.0 / 255.0] * 3, path
