"""Checkpoint files: plain state (tensors, numbers, strings, lists, dicts), never pickled modules.

The structure is stored as JSON and the tensors beside it, so `torch.load(weights_only=True)` can read a
checkpoint on every torch version (torch 1.13's safe unpickler rejects even Python floats)."""
from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, List

import torch

from .atomic import atomic_path
from .config import TrainConfig
from .errors import TrainerError
from .interrupts import raise_if_interrupt
from .model import ProtoPNet, build_model

FORMAT = "protopnet-checkpoint/1"


def _encode(value: Any, tensors: List[torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors.append(value.detach().cpu().clone())
        return {"__tensor__": len(tensors) - 1}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def _decode(value: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[str(value["__tensor__"])]
        if "__tuple__" in value:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__dict__"]}
    return value


def save_checkpoint(state: Dict[str, Any], path: str) -> None:
    tensors: List[torch.Tensor] = []
    structure = json.dumps(_encode(state, tensors))
    # Serialized in memory, then written by Python: a full disk is then an OSError (said in one line), where torch's
    # own file writer aborts the whole process from a destructor.
    serialized = io.BytesIO()
    torch.save({"format": FORMAT, "structure": structure, "tensors": {str(i): t for i, t in enumerate(tensors)}}, serialized)
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(serialized.getbuffer())


def _checkpoint_in(folder: str) -> str:
    """What to pass instead of a folder: its checkpoint when it holds one (a run folder keeps them in checkpoints/)."""
    for candidate in (os.path.join(folder, "checkpoints", "final.pt"), os.path.join(folder, "final.pt")):
        if os.path.isfile(candidate):
            return f"pass a checkpoint file, e.g. {candidate}"
    if os.path.isfile(os.path.join(folder, "model.json")):
        return "it is a published bundle; a checkpoint is a file in its run folder's checkpoints/ (runs/<name>/checkpoints/final.pt)"
    return "pass a checkpoint file (a run keeps them in its folder's checkpoints/, e.g. runs/<name>/checkpoints/final.pt)"


def load_checkpoint(path: str) -> Dict[str, Any]:
    if os.path.isdir(path):
        raise TrainerError(f"checkpoint {path} is a folder: {_checkpoint_in(path)}")
    if not os.path.isfile(path):
        raise TrainerError(f"checkpoint {path} does not exist")
    try:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # a torch without weights_only
            raw = torch.load(path, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - a broken file is the user's input problem
        raise_if_interrupt(error)
        # torch's own words (a bare number, an errno, advice about weights_only) say little about what is wrong; its
        # advice to load without weights_only would run whatever code the file holds.
        first_line = (str(error).splitlines() or ["no message"])[0]
        if os.path.getsize(path) == 0:
            reason = "it is empty (0 bytes)"
        elif first_line.startswith("Weights only load failed"):
            reason = "torch's safe loader, which reads tensors only, refused it"
        else:
            reason = f"{type(error).__name__}: {first_line if len(first_line) <= 120 else first_line[:117].rsplit(' ', 1)[0] + '...'}"
        raise TrainerError(f"cannot read checkpoint {path}: it is not a checkpoint file the trainer wrote, or it is cut "
                           f"short ({reason})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise TrainerError(f"{path} is not a protopnet_trainer checkpoint")
    try:
        checkpoint = _decode(json.loads(raw["structure"]), raw["tensors"])
    except Exception as error:  # noqa: BLE001 - damaged contents are the user's input problem
        raise TrainerError(f"{path} is a damaged protopnet_trainer checkpoint: its contents cannot be read "
                           f"({type(error).__name__}: {error})") from None
    for key, kind in (("config", dict), ("model", dict), ("classes", list)):
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get(key), kind):
            raise TrainerError(f"{path} is a damaged protopnet_trainer checkpoint: it has no {key} {kind.__name__}")
    return checkpoint


def model_from_checkpoint(checkpoint: Dict[str, Any]) -> ProtoPNet:
    """The checkpoint's model on the CPU, built from its own configuration (no pretrained weights are loaded)."""
    try:
        cfg = TrainConfig.from_dict(checkpoint["config"])
        state = checkpoint["model"]
        channels = state["mean"].numel()
        model = build_model(cfg, channels, len(checkpoint["classes"]), [0.0] * channels, [1.0] * channels,
                            prototype_classes=state["prototype_classes"].tolist(), load_weights=False)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        # A configuration that does not match the weights, or parts missing: the file was damaged or edited.
        first_line = (str(error).splitlines() or [""])[0][:200]
        raise TrainerError(f"the checkpoint's model cannot be rebuilt from it, so it is damaged or not one this trainer "
                           f"wrote ({type(error).__name__}: {first_line})") from None
    return model
