"""The options a training job may set: the `train` command's own options, named by their long names in camelCase
(`--lr-add-on` -> `lrAddOn`), with the values each accepts.

The list is read from the `train` parser itself, so an option added there is a job option too, once it has a range
here (or is left out on purpose). `python -m protopnet_trainer options --json` prints it; the service validates job
requests against its committed copy, and a test keeps that copy equal to this output, so the two never drift. The
worker checks every job against the same list again before it turns the job into a `train` command line.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .config import (ADD_ONS, AUGMENTATIONS, CONTRAST_MODES, GENERATED_DATASETS, IMAGE_EXTENSIONS, INTERPOLATIONS,
                     JOINT_OPTIMIZERS, MIN_IMAGE_SIZE, PRESET_SUMMARIES, PRESETS, SIMILARITIES, TrainConfig)
from .errors import TrainerError

FORMAT = "protopnet-trainer-options/1"
DATASETS = ("fashion-mnist", "cub200", "imagefolder", "synthetic", "synthetic-parts")   # datasets.DATASETS (datasets.py imports torch; a test keeps them equal)
FOLDER_DATASETS = ("cub200", "imagefolder")   # read from a folder they have no default for: a job of one needs `data` (a test checks)

# Options of `train` that a job does not set through `options`: the job's own fields (preset, dataset, data), the
# worker's (where models, runs and progress go), and those naming other processes' files.
NOT_JOB_OPTIONS = {
    "--help", "--preset", "--dataset", "--data",
    "--models", "--name", "--run-dir", "--resume", "--fresh", "--progress", "--no-progress",
    "--baseline-only", "--baseline-result", "--baseline-wait",
}

# Integer and number options: (minimum, maximum), both allowed. Every numeric job option needs an entry: the
# service refuses values outside it before a job is queued.
RANGES: Dict[str, Tuple[float, float]] = {
    "--epochs": (1, 1000), "--seed": (0, 2 ** 31 - 1), "--image-size": (MIN_IMAGE_SIZE, 1024),
    "--prototypes-per-class": (1, 100), "--prototype-dim": (1, 4096),
    "--warm-epochs": (0, 1000), "--push-start": (0, 1000), "--push-every": (0, 1000),
    "--last-layer-iterations": (0, 1000), "--epoch-copies": (1, 100), "--batch-size": (1, 4096), "--test-batch-size": (1, 4096),
    "--push-batch-size": (1, 4096), "--lr-trunk": (0, 10), "--lr-add-on": (0, 10), "--lr-prototypes": (0, 10),
    "--lr-last-layer": (0, 10), "--lr-step": (1, 1000), "--lr-gamma": (0, 1), "--weight-decay": (0, 10),
    "--onecycle-pct-start": (0.01, 0.99), "--last-layer-batch-size": (0, 65536), "--lr-baseline-head": (0, 10),
    "--crop-padding": (0, 64), "--coef-clst": (-100, 100), "--coef-sep": (-100, 100), "--coef-l1": (0, 100),
    "--prune-k": (1, 100), "--prune-threshold": (1, 100), "--small-cnn-convs": (1, 8), "--small-cnn-pools": (0, 8),
    "--threads": (0, 256), "--workers": (0, 32), "--train-limit": (1, 10 ** 9), "--test-limit": (1, 10 ** 9),
    "--synthetic-classes": (2, 256), "--synthetic-channels": (1, 3),
    "--synthetic-train-per-class": (1, 100000), "--synthetic-test-per-class": (1, 100000),
    "--examples": (0, 1000),
    "--polarity-augment": (0, 1), "--calibration-holdout": (0, 10 ** 6), "--unfamiliar-share": (0.001, 0.5),
    "--noise-augment": (0, 1),
    "--small-cnn-widths": (1, 4096),   # each width
}
# String options take one of these values (a job never names a file: --trunk-weights only the named sources).
CHOICES: Dict[str, List[Any]] = {
    "--device": ["auto", "cpu", "cuda"],
    "--backbone": ["small-cnn", "resnet18", "resnet34", "resnet50", "vgg16", "vgg19", "densenet121"],   # trunks.TRUNKS (a test keeps them equal)
    "--trunk-weights": ["torchvision", "imagenet-onnx"],
    "--add-on": list(ADD_ONS), "--similarity": list(SIMILARITIES),
    "--joint-optimizer": list(JOINT_OPTIMIZERS), "--augmentation": list(AUGMENTATIONS),
    "--interpolation": list(INTERPOLATIONS), "--contrast": list(CONTRAST_MODES),
    "--synthetic-channels": [1, 3],
}
LIST_OPTIONS = {"--small-cnn-widths": 8}   # comma-separated integers: the most items


class JobOptionError(ValueError):
    """A job's field or option that the trainer does not accept; `field` names it (e.g. options.epochs)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def camel_case(option: str) -> str:
    """--lr-add-on -> lrAddOn"""
    words = option.lstrip("-").split("-")
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


@dataclass(frozen=True)
class JobOption:
    name: str                      # camelCase, as a job names it
    option: str                    # the train command's long option
    type: str                      # integer | number | string | boolean | integers
    help: str = ""
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Optional[List[Any]] = None
    max_items: Optional[int] = None
    setting: str = ""              # what it sets (argparse's dest): --augment and --no-augment set one setting

    def to_json(self) -> Dict[str, Any]:
        entry: Dict[str, Any] = {"name": self.name, "option": self.option, "type": self.type, "setting": self.setting}
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum), ("choices", self.choices),
                           ("maxItems", self.max_items)):
            if value is not None:
                entry[key] = value
        entry["help"] = self.help
        return entry

    def check(self, value: Any) -> None:
        """Raises JobOptionError unless `value` (from JSON) is one this option accepts."""
        field = f"options.{self.name}"
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise JobOptionError(field, f"must be true or false, not {json.dumps(value)}")
            return
        if self.type == "integers":
            if not isinstance(value, list) or not value or len(value) > (self.max_items or 0):
                raise JobOptionError(field, f"must be a list of 1 to {self.max_items} integers")
            for item in value:
                self._check_number(field, item, integer=True)
            return
        if self.type == "string":
            if not isinstance(value, str):
                raise JobOptionError(field, f"must be a string, not {json.dumps(value)}")
        else:
            self._check_number(field, value, integer=self.type == "integer")
        if self.choices is not None and value not in self.choices:
            raise JobOptionError(field, f"{json.dumps(value)} is not one of {', '.join(map(str, self.choices))}")

    def _check_number(self, field: str, value: Any, integer: bool) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise JobOptionError(field, f"must be {'an integer' if integer else 'a number'}, not {json.dumps(value)}")
        if integer and value != int(value):
            raise JobOptionError(field, f"must be an integer, not {value}")
        if self.minimum is not None and value < self.minimum:
            raise JobOptionError(field, f"{value} is below the minimum {_number(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise JobOptionError(field, f"{value} is above the maximum {_number(self.maximum)}")

    def argv(self, value: Any) -> List[str]:
        """The command-line word that gives this option `value` (a checked one); a false flag gives none. Always
        `--option=value`: argparse takes a separate word that starts with '-' and looks like a number only when it
        is written as such, so a separate `-5e-05` would be read as an option's name."""
        if self.type == "boolean":
            return [self.option] if value else []
        if self.type == "integers":
            text = ",".join(str(int(v)) for v in value)
        elif self.type == "integer":
            text = str(int(value))
        else:
            text = repr(float(value)) if self.type == "number" else str(value)
        return [f"{self.option}={text}"]


def _number(value: float) -> Any:
    return int(value) if float(value).is_integer() else value


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:   # argparse has no public way to reach a subcommand's parser
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise ValueError(f"the parser has no '{command}' command")


def _option_type(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "boolean"
    if action.option_strings[-1] in LIST_OPTIONS:
        return "integers"
    return {int: "integer", float: "number", str: "string", None: "string"}.get(action.type, "")


def check_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace, command: str = "train") -> None:
    """The ranges a job's options are held to hold on the command line too: a value outside one (a negative count,
    a learning rate of inf or NaN, a 3-pixel image) is one line before any work, not a traceback or a bundle of NaN."""
    for action in _subparser(parser, command)._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), None)
        value = getattr(args, action.dest, None)
        if flag not in RANGES or value is None:
            continue
        low, high = RANGES[flag]
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if not low <= item <= high:   # False for NaN too
                raise TrainerError(f"{flag} must be from {low:g} to {high:g} (got {item})")


class JobOptions:
    """The job options of a `train` parser, by name."""

    def __init__(self, options: Sequence[JobOption]):
        self.by_name = {o.name: o for o in options}

    @classmethod
    def from_parser(cls, parser: argparse.ArgumentParser, command: str = "train") -> "JobOptions":
        options = []
        for action in _subparser(parser, command)._actions:
            longs = [s for s in action.option_strings if s.startswith("--")]
            if not longs or longs[0] in NOT_JOB_OPTIONS:
                continue
            flag = longs[0]
            kind = _option_type(action)
            if not kind:
                raise ValueError(f"{flag}: a type jobs cannot give; add it to NOT_JOB_OPTIONS in job_options.py")
            numeric = kind in ("integer", "number", "integers")
            if numeric and flag not in RANGES:
                raise ValueError(f"{flag} has no range for jobs: add one to RANGES in job_options.py")
            if kind == "string" and flag not in CHOICES:
                raise ValueError(f"{flag} has no list of values for jobs: add one to CHOICES in job_options.py")
            low, high = RANGES.get(flag, (None, None)) if numeric else (None, None)
            options.append(JobOption(camel_case(flag), flag, kind, help=(action.help or "").strip(),
                                     minimum=low, maximum=high, choices=CHOICES.get(flag),
                                     max_items=LIST_OPTIONS.get(flag), setting=action.dest))
        return cls(options)

    def in_job_words(self, message: str) -> str:
        """A trainer message that names `train`'s options (--calibration-holdout) as a job names them
        (options.calibrationHoldout), for the job's error: its submitter never wrote a command line."""
        by_option = {o.option: f"options.{o.name}" for o in self.by_name.values()}
        by_option.update({"--name": "name", "--preset": "preset", "--dataset": "dataset", "--data": "data"})   # a job's own fields
        return re.sub(r"--[a-z0-9]+(?:-[a-z0-9]+)*", lambda m: by_option.get(m.group(0), m.group(0)), message)

    def document(self) -> Dict[str, Any]:
        """The JSON the service reads (src/ProtoPNet.Service/Training/trainer-options.json)."""
        presets = [{"name": name, "dataset": values.get("dataset", TrainConfig.dataset),
                    "epochs": values.get("epochs", TrainConfig.epochs), "summary": PRESET_SUMMARIES[name]}
                   for name, values in sorted(PRESETS.items())]
        return {"format": FORMAT, "presets": presets, "datasets": list(DATASETS),
                "generatedDatasets": list(GENERATED_DATASETS), "folderDatasets": list(FOLDER_DATASETS),
                "imageExtensions": list(IMAGE_EXTENSIONS),
                "options": [o.to_json() for o in self.by_name.values()]}

    def argv(self, options: Dict[str, Any]) -> List[str]:
        """Checks a job's `options` object and turns it into `train` command-line words."""
        if not isinstance(options, dict):
            raise JobOptionError("options", "must be an object of option names and values")
        words: List[str] = []
        setting_given_by: Dict[str, str] = {}
        for name, value in options.items():
            option = self.by_name.get(name)
            if option is None:
                raise JobOptionError(f"options.{name}", "is not an option of the trainer "
                                                        "(see GET /training/options or docs/TRAINING_JOBS.md)")
            option.check(value)
            option_words = option.argv(value)
            # On a command line the last of --augment and --no-augment wins; in a job's object neither is last.
            other = setting_given_by.setdefault(option.setting, name) if option_words else name
            if other != name:
                raise JobOptionError(f"options.{name}", f"contradicts options.{other} (both set the trainer's "
                                                        f"{option.setting}): give one of them")
            words += option_words
        return words


MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def check_model_name(name: Any) -> str:
    """A model name is a folder name in the model repository: ASCII letters, digits, '.', '_' and '-', starting with a
    letter, digit or '_', no '..' (the service's rule for names in paths)."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        raise JobOptionError("name", f"{json.dumps(name)} is not a valid model name (ASCII letters, digits, '.', '_' and "
                                     f"'-', starting with a letter, digit or '_', no '..', at most 128 characters)")
    return name


def require_model_name(name: str, label: str) -> str:
    """`check_model_name` for a command line or a publish: the refusal as one TrainerError line, under `label`."""
    try:
        return check_model_name(name)
    except JobOptionError as error:
        raise TrainerError(f"{label}: {error.message}") from None
