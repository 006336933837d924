"""A minimal, independent evaluator for ONNX graphs made of Conv, BatchNormalization, Relu, MaxPool, Add and
AveragePool (no onnxruntime for Python here). Used to check the imported ResNet-18 against its ONNX file."""
from typing import Dict, Optional

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper


def _attributes(node) -> Dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pad(x: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    # ONNX pads: [top, left, bottom, right]; F.pad wants (left, right, top, bottom).
    top, left, bottom, right = pads
    return F.pad(x, (left, right, top, bottom), value=value)


def run_graph(path: str, feed: np.ndarray, until: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Every tensor of the graph by name; stops after computing `until` when given."""
    model = onnx.load(path)
    graph = model.graph
    values: Dict[str, torch.Tensor] = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
                                       for t in graph.initializer}
    values[graph.input[0].name] = torch.from_numpy(feed)
    for node in graph.node:
        a = _attributes(node)
        x = values[node.input[0]]
        if node.op_type == "Conv":
            assert a.get("group", 1) == 1 and list(a.get("dilations", [1, 1])) == [1, 1]
            bias = values[node.input[2]] if len(node.input) > 2 else None
            out = F.conv2d(_pad(x, a.get("pads", [0, 0, 0, 0])), values[node.input[1]], bias, stride=a["strides"])
        elif node.op_type == "BatchNormalization":
            scale, shift, mean, var = (values[n].view(1, -1, 1, 1) for n in node.input[1:5])
            out = (x - mean) / torch.sqrt(var + a.get("epsilon", 1e-5)) * scale + shift
        elif node.op_type == "Relu":
            out = torch.relu(x)
        elif node.op_type == "Add":
            out = x + values[node.input[1]]
        elif node.op_type == "MaxPool":
            out = F.max_pool2d(_pad(x, a.get("pads", [0, 0, 0, 0]), float("-inf")), a["kernel_shape"], a["strides"])
        elif node.op_type == "AveragePool":
            assert list(a.get("pads", [0, 0, 0, 0])) == [0, 0, 0, 0]
            out = F.avg_pool2d(x, a["kernel_shape"], a["strides"])
        else:
            raise NotImplementedError(node.op_type)
        values[node.output[0]] = out
        if node.output[0] == until:
            break
    return {name: value.numpy() for name, value in values.items()}
