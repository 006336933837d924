"""Feature trunks f: a small CNN for 28 px inputs and torchvision's ImageNet architectures without classifier."""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import torch
from torch import nn
from torchvision import models as tv_models

from .errors import TrainerError

# The normalisation ImageNet-pretrained trunks were trained with (torchvision's), and that the photo data sets use.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

TRUNKS = ("small-cnn", "resnet18", "resnet34", "resnet50", "vgg16", "vgg19", "densenet121")

# torchvision's file names for ImageNet weights (looked up in torch's hub cache, never downloaded here).
TORCHVISION_WEIGHT_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
    "densenet121": "densenet121-a639ec97.pth",
}


class SmallCNN(nn.Module):
    """Stages of (conv3x3 -> BN -> ReLU) x convs_per_stage, a 2x2 max-pool after each of the first `pools` stages."""

    def __init__(self, in_channels: int, widths: List[int], convs_per_stage: int = 2, pools: int = 2):
        super().__init__()
        if not widths or convs_per_stage < 1 or pools < 0 or pools > len(widths):
            raise TrainerError("small-cnn: needs at least one width, one conv per stage and 0 <= pools <= stages")
        layers: List[nn.Module] = []
        channels = in_channels
        for stage, width in enumerate(widths):
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                channels = width
            if stage < pools:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResNetTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class VGGTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.features = net.features
        self.out_channels = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class DenseNetTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.features = net.features
        self.out_channels = net.classifier.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.features(x))


def _torchvision_net(name: str) -> nn.Module:
    constructor = getattr(tv_models, name.replace("-", ""))
    try:
        return constructor(weights=None)
    except TypeError:  # torchvision before 0.13
        return constructor(pretrained=False)


def adapt_first_conv(trunk: nn.Module, in_channels: int) -> None:
    """Grey input for an RGB architecture: sum the first conv's kernels over colour (same response to grey)."""
    if in_channels == 3:
        return
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            conv = module
            break
    if conv.in_channels == in_channels:
        return
    weight = conv.weight.data.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels
    conv.in_channels = in_channels
    conv.weight = nn.Parameter(weight)


# The "ResNet18" of Microsoft.ML.DnnImageFeaturizer.ResNet18 (a CNTK export) has one more basic block in
# its last stage than torchvision's: blocks [2, 2, 2, 3].
ONNX_RESNET18_BLOCKS = [2, 2, 2, 3]


def build_trunk(name: str, in_channels: int, small_cnn_widths: Optional[List[int]] = None,
                small_cnn_convs_per_stage: int = 2, small_cnn_pools: int = 2,
                weights: Optional[str] = None) -> nn.Module:
    """The trunk's architecture; `weights` matters only where it changes the architecture (imagenet-onnx)."""
    if name == "small-cnn":
        return SmallCNN(in_channels, list(small_cnn_widths or [32, 64, 128]), small_cnn_convs_per_stage,
                        small_cnn_pools)
    if name not in TRUNKS:
        raise TrainerError(f"unknown trunk '{name}' (choose from {', '.join(TRUNKS)})")
    if name == "resnet18" and weights == "imagenet-onnx":
        from torchvision.models.resnet import BasicBlock, ResNet
        net: nn.Module = ResNet(BasicBlock, ONNX_RESNET18_BLOCKS)
    else:
        net = _torchvision_net(name)
    if name.startswith("resnet"):
        trunk: nn.Module = ResNetTrunk(net)
    elif name.startswith("vgg"):
        trunk = VGGTrunk(net)
    else:
        trunk = DenseNetTrunk(net)
    return trunk


def _trunk_state_from_classifier_state(name: str, state: dict) -> dict:
    """Map a full torchvision classifier state dict onto the trunk's parameter names."""
    if name.startswith("resnet"):
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
    return {k: v for k, v in state.items() if k.startswith("features.")}


def load_trunk_weights(trunk: nn.Module, name: str, weights: Optional[str], in_channels: int) -> Tuple[str, List[float], List[float]]:
    """Load pretrained weights. Returns (description, mean, std) of the normalisation the weights expect
    (empty lists: keep the data set's own)."""
    if not weights:
        adapt_first_conv(trunk, in_channels)
        return "random initialisation", [], []
    if weights == "imagenet-onnx":
        if name != "resnet18":
            raise TrainerError("imagenet-onnx weights exist for resnet18 only")
        from .resnet18_onnx import import_resnet18_onnx
        mean, std, source = import_resnet18_onnx(trunk)
        adapt_first_conv(trunk, in_channels)
        return source, _grey(mean, in_channels), _grey(std, in_channels)
    if weights == "torchvision":
        if name not in TORCHVISION_WEIGHT_FILES:
            raise TrainerError(f"torchvision has no ImageNet weights for trunk '{name}'")
        path = os.path.join(torch.hub.get_dir(), "checkpoints", TORCHVISION_WEIGHT_FILES[name])
        if not os.path.isfile(path):
            # Said for a training job too, whose trunkWeights names no file: what it can do there is named as well.
            raise TrainerError(f"torchvision ImageNet weights for {name} are not in the cache ({path}); "
                               f"download them there where there is internet, or give train --trunk-weights a weights "
                               f"file (a training job's trunkWeights takes 'torchvision' or, for resnet18, "
                               f"'imagenet-onnx')")
    else:
        path = weights
        if not os.path.isfile(path):
            raise TrainerError(f"trunk weights file {path} does not exist")
    try:
        # Tensors only, on every torch (the default from torch 2.6): a weights file is not a program to run.
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # a torch without weights_only
            state = torch.load(path, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise TrainerError(f"cannot read trunk weights {path}: {str(error).splitlines()[0] if str(error) else type(error).__name__} "
                           f"(a weights file must hold tensors only, e.g. torch.save(model.state_dict(), path))") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if name != "small-cnn":
        state = _trunk_state_from_classifier_state(name, state) if any(
            k.startswith(("fc.", "classifier.")) for k in state) else state
    if name.startswith("densenet"):  # old torchvision names: 'norm.1' -> 'norm1'
        import re
        pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
        state = {(pattern.sub(lambda m: m.group(1) + m.group(2), k)): v for k, v in state.items()}
    try:
        missing, _ = trunk.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of the wrong shapes
        raise TrainerError(f"trunk weights {path} do not fit {name}: {str(error).splitlines()[-1].strip()}") from None
    if missing:
        raise TrainerError(f"trunk weights {path} do not fit {name}: missing {len(missing)} tensors, e.g. {missing[0]}")
    adapt_first_conv(trunk, in_channels)
    return path, _grey(IMAGENET_MEAN, in_channels), _grey(IMAGENET_STD, in_channels)


def _grey(values: List[float], channels: int) -> List[float]:
    if channels == 1:
        return [sum(values) / len(values)]
    return list(values)
