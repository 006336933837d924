"""Run a bundle's model.onnx from Python: with ONNX Runtime when it is installed, else with a small interpreter of
the ONNX operators the trainer's exported graphs use (opsets 13-17), computed with torch. The interpretability
scorecard reads the graph's outputs through this, so it measures the file the service serves, not the torch model
it was exported from. `run_graph` gives every tensor of a graph by name (the tests' window into a graph)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .errors import TrainerError

OUTPUTS = ("logits", "similarities", "similarity_maps")


class OnnxGraph:
    """`graph(images)` -> {"logits", "similarities", "similarity_maps"} as float32 torch tensors, for images
    [N, C, H, W] in [0, 1]."""

    def __init__(self, path: str):
        self.path = path
        try:
            import onnxruntime  # type: ignore[import-not-found]
        except ImportError:
            self.session = None
            self.engine = "torch interpreter"
            self.interpreter = _Interpreter(path)
        else:
            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.engine = f"onnxruntime {onnxruntime.__version__}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        feed = images.detach().to("cpu", torch.float32).contiguous()
        if self.session is not None:
            values = self.session.run(list(OUTPUTS), {"image": feed.numpy()})
            return {name: torch.from_numpy(np.asarray(value)) for name, value in zip(OUTPUTS, values)}
        return self.interpreter.run(feed)


def _pads(x: torch.Tensor, pads: List[int], value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = pads           # ONNX order; F.pad wants (left, right, top, bottom)
    if not any(pads):
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class _Interpreter:
    """Evaluates the graph node by node in topological (file) order."""

    def __init__(self, path: str):
        import onnx
        from onnx import numpy_helper
        try:
            model = onnx.load(path)
        except Exception as error:  # noqa: BLE001 - any unreadable file is the caller's input problem
            raise TrainerError(f"cannot read ONNX graph {path}: {error}") from None
        self.graph = model.graph
        self.helper = onnx.helper
        self.numpy_helper = numpy_helper
        self.initializers = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in self.graph.initializer}
        self.input_name = [i.name for i in self.graph.input if i.name not in self.initializers][0]
        for node in self.graph.node:
            if node.op_type not in _OPERATORS:
                raise TrainerError(f"{path}: operator {node.op_type} is not supported without onnxruntime")

    def run(self, feed: torch.Tensor) -> Dict[str, torch.Tensor]:
        values = self.evaluate(feed)
        return {name: values[name].to(torch.float32) for name in OUTPUTS}

    def evaluate(self, feed: torch.Tensor, until: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """Every tensor of the graph by name (initializers too); stops after computing `until` when given."""
        values: Dict[str, torch.Tensor] = dict(self.initializers)
        values[self.input_name] = feed
        for node in self.graph.node:
            attributes = {a.name: self.helper.get_attribute_value(a) for a in node.attribute}
            inputs = [values[name] if name else None for name in node.input]
            values[node.output[0]] = _OPERATORS[node.op_type](self, inputs, attributes)
            if node.output[0] == until:
                break
        return values


def run_graph(path: str, feed: np.ndarray, until: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Every tensor of a graph by name, computed by the torch interpreter whether or not onnxruntime is installed
    (tests compare it with the torch model a graph came from, and read intermediate tensors by name)."""
    values = _Interpreter(path).evaluate(torch.from_numpy(np.ascontiguousarray(feed)), until)
    return {name: value.numpy() for name, value in values.items()}


def _conv(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    x, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    return F.conv2d(_pads(x, list(a.get("pads", [0, 0, 0, 0]))), weight, bias, stride=list(a.get("strides", [1, 1])),
                    dilation=list(a.get("dilations", [1, 1])), groups=int(a.get("group", 1)))


def _batch_norm(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    x = inputs[0]
    scale, shift, mean, var = (t.view(1, -1, 1, 1) for t in inputs[1:5])
    return (x - mean) / torch.sqrt(var + float(a.get("epsilon", 1e-5))) * scale + shift


def _average_pool(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    kernel = list(a["kernel_shape"])
    if any(a.get("pads", [0, 0, 0, 0])):   # the graphs we read never pad an average pool (ResNet18.onnx's does not)
        raise TrainerError("AveragePool with padding is not supported without onnxruntime")
    return F.avg_pool2d(inputs[0], kernel, list(a.get("strides", kernel)), ceil_mode=bool(a.get("ceil_mode", 0)))


def _max_pool(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    kernel = list(a["kernel_shape"])
    return F.max_pool2d(_pads(inputs[0], list(a.get("pads", [0, 0, 0, 0])), float("-inf")), kernel,
                        list(a.get("strides", kernel)), ceil_mode=bool(a.get("ceil_mode", 0)))


def _reduce(kind: str):
    def reduce(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
        x = inputs[0]
        if len(inputs) > 1 and inputs[1] is not None:     # opset 13+ ReduceSum (18+ all): axes as an input
            axes = [int(v) for v in inputs[1].tolist()]
        else:
            axes = list(a.get("axes", range(x.dim())))
        keep = bool(a.get("keepdims", 1))
        out = x
        for axis in sorted((ax % x.dim() for ax in axes), reverse=True):
            if kind == "sum":
                out = out.sum(dim=axis, keepdim=keep)
            elif kind == "mean":
                out = out.mean(dim=axis, keepdim=keep)
            elif kind == "max":
                out = out.max(dim=axis, keepdim=keep)[0]
            else:
                out = out.min(dim=axis, keepdim=keep)[0]
        return out
    return reduce


def _slice(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    x = inputs[0]
    starts, ends = inputs[1].tolist(), inputs[2].tolist()
    axes = inputs[3].tolist() if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = inputs[4].tolist() if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step != 1:
            raise TrainerError("Slice with a step other than 1 is not supported without onnxruntime")
        size = x.shape[axis]
        index[axis] = slice(max(-size, min(size, start)), max(-size - 1, min(size, end)))
    return x[tuple(index)]


def _reshape(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    x = inputs[0]
    shape = [x.shape[i] if v == 0 else int(v) for i, v in enumerate(inputs[1].tolist())]
    return x.reshape(shape)


def _constant(interpreter: "_Interpreter", inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    return torch.from_numpy(interpreter.numpy_helper.to_array(a["value"]).copy())


def _gemm(_: Any, inputs: List[Any], a: Dict[str, Any]) -> torch.Tensor:
    x, w = inputs[0], inputs[1]
    x = x.t() if a.get("transA", 0) else x
    w = w.t() if a.get("transB", 0) else w
    out = float(a.get("alpha", 1.0)) * (x @ w)
    if len(inputs) > 2 and inputs[2] is not None:
        out = out + float(a.get("beta", 1.0)) * inputs[2]
    return out


def _binary(function):
    return lambda _, inputs, a: function(inputs[0], inputs[1])


def _unary(function):
    return lambda _, inputs, a: function(inputs[0])


_OPERATORS = {
    "Constant": _constant, "Conv": _conv, "BatchNormalization": _batch_norm, "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "Relu": _unary(torch.relu), "Sigmoid": _unary(torch.sigmoid), "Log": _unary(torch.log),
    "Identity": _unary(lambda x: x), "Neg": _unary(torch.neg), "Sqrt": _unary(torch.sqrt),
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul), "Div": _binary(torch.div),
    "Pow": _binary(torch.pow), "MatMul": _binary(torch.matmul), "Max": _binary(torch.maximum),
    "Gemm": _gemm,
    "ReduceSum": _reduce("sum"), "ReduceMean": _reduce("mean"), "ReduceMax": _reduce("max"),
    "ReduceMin": _reduce("min"),
    "GlobalAveragePool": _unary(lambda x: x.mean(dim=(2, 3), keepdim=True)),
    "Shape": _unary(lambda x: torch.tensor(list(x.shape), dtype=torch.int64)),
    "Slice": _slice, "Reshape": _reshape,
    "Concat": lambda _, inputs, a: torch.cat(inputs, dim=int(a["axis"])),
    "Flatten": lambda _, inputs, a: inputs[0].reshape(int(np.prod(inputs[0].shape[:a.get("axis", 1)])), -1),
    "Transpose": lambda _, inputs, a: inputs[0].permute(*a["perm"]),
    "Unsqueeze": lambda _, inputs, a: _unsqueeze(inputs[0], inputs[1].tolist() if len(inputs) > 1 else a["axes"]),
    "Squeeze": lambda _, inputs, a: _squeeze(inputs[0], inputs[1].tolist() if len(inputs) > 1 else a.get("axes")),
}


def _unsqueeze(x: torch.Tensor, axes: List[int]) -> torch.Tensor:
    rank = x.dim() + len(axes)
    for axis in sorted(int(v) % rank for v in axes):
        x = x.unsqueeze(axis)
    return x


def _squeeze(x: torch.Tensor, axes: Any) -> torch.Tensor:
    if axes is None:
        return x.squeeze()
    for axis in sorted((int(v) % x.dim() for v in axes), reverse=True):
        x = x.squeeze(axis)
    return x
