"""A minimal, independent evaluator for the ONNX operators our graphs use (no onnxruntime for Python here).

Used to check the imported ResNet-18 against its ONNX file and the exported bundle graph against the torch
model it came from. Operators follow the ONNX specification at opsets 13-17."""
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
        x = values[node.input[0]] if node.input else None
        op = node.op_type
        if op == "Constant":
            out = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        elif op == "Conv":
            assert a.get("group", 1) == 1 and list(a.get("dilations", [1, 1])) == [1, 1]
            bias = values[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            out = F.conv2d(_pad(x, a.get("pads", [0, 0, 0, 0])), values[node.input[1]], bias,
                           stride=a.get("strides", [1, 1]))
        elif op == "BatchNormalization":
            scale, shift, mean, var = (values[n].view(1, -1, 1, 1) for n in node.input[1:5])
            out = (x - mean) / torch.sqrt(var + a.get("epsilon", 1e-5)) * scale + shift
        elif op == "Relu":
            out = torch.relu(x)
        elif op == "Sigmoid":
            out = torch.sigmoid(x)
        elif op == "Log":
            out = torch.log(x)
        elif op in ("Add", "Sub", "Mul", "Div", "Pow", "MatMul"):
            y = values[node.input[1]]
            out = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow,
                   "MatMul": torch.matmul}[op](x, y)
        elif op == "Gemm":
            w = values[node.input[1]]
            w = w.t() if a.get("transB", 0) else w
            x2 = x.t() if a.get("transA", 0) else x
            out = a.get("alpha", 1.0) * (x2 @ w)
            if len(node.input) > 2:
                out = out + a.get("beta", 1.0) * values[node.input[2]]
        elif op == "MaxPool":
            out = F.max_pool2d(_pad(x, a.get("pads", [0, 0, 0, 0]), float("-inf")), a["kernel_shape"],
                               a.get("strides", a["kernel_shape"]))
        elif op == "AveragePool":
            assert list(a.get("pads", [0, 0, 0, 0])) == [0, 0, 0, 0]
            out = F.avg_pool2d(x, a["kernel_shape"], a["strides"])
        elif op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceMean"):
            if op == "ReduceSum" and len(node.input) > 1 and node.input[1]:
                axes = [int(v) for v in values[node.input[1]]]
            else:
                axes = list(a.get("axes", range(x.dim())))
            keep = bool(a.get("keepdims", 1))
            axes = sorted(ax % x.dim() for ax in axes)
            out = x
            for ax in reversed(axes):
                if op == "ReduceSum":
                    out = out.sum(dim=ax, keepdim=keep)
                elif op == "ReduceMean":
                    out = out.mean(dim=ax, keepdim=keep)
                elif op == "ReduceMax":
                    out = out.max(dim=ax, keepdim=keep)[0]
                else:
                    out = out.min(dim=ax, keepdim=keep)[0]
        elif op == "Shape":
            out = torch.tensor(list(x.shape), dtype=torch.int64)
        elif op == "Slice":
            starts, ends = values[node.input[1]].tolist(), values[node.input[2]].tolist()
            axes = values[node.input[3]].tolist() if len(node.input) > 3 else list(range(len(starts)))
            steps = values[node.input[4]].tolist() if len(node.input) > 4 else [1] * len(starts)
            index = [slice(None)] * x.dim()
            for start, end, axis, step in zip(starts, ends, axes, steps):
                assert step == 1
                index[axis] = slice(max(-(2 ** 62), start), min(2 ** 62, end))
            out = x[tuple(index)]
        elif op == "Concat":
            out = torch.cat([values[n] for n in node.input], dim=a["axis"])
        elif op == "Reshape":
            shape = values[node.input[1]].tolist()
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
            out = x.reshape(shape)
        elif op == "Flatten":
            axis = a.get("axis", 1)
            out = x.reshape(int(np.prod(x.shape[:axis])), -1)
        elif op == "Transpose":
            out = x.permute(*a["perm"])
        elif op == "Unsqueeze":
            out = x
            for ax in sorted(int(v) for v in values[node.input[1]].tolist()):
                out = out.unsqueeze(ax)
        elif op == "Squeeze":
            out = x
            for ax in sorted((int(v) for v in values[node.input[1]].tolist()), reverse=True):
                out = out.squeeze(ax)
        elif op == "Identity":
            out = x
        else:
            raise NotImplementedError(op)
        values[node.output[0]] = out
        if node.output[0] == until:
            break
    return {name: value.numpy() for name, value in values.items()}
