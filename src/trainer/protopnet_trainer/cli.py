"""Command line: parses the arguments of train, evaluate, export, prune, benchmark, evaluate-interpretability, worker
and options and calls the module that does each (pipeline, evaluate, untrained, benchmark, scorecard, worker,
job_options); the heavy modules are imported only by the command that needs them, so `--help` and argument errors
are quick."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Tuple, Union

from .alive import ENVIRONMENT_VARIABLE as ALIVE_FILE_VARIABLE
from .config import GENERATED_DATASETS, PRESETS, TrainConfig, preset_config
from .console import say
from .errors import TrainerError, one_line
from .interrupts import Terminated, disguised_interrupt
from .job_options import CHOICES, DATASETS, JobOptions, check_ranges, require_model_name

if TYPE_CHECKING:
    from .pipeline import TrainJob

# Command-line overrides: option -> (config field, type). `None` values are "not given".
OVERRIDES = [
    ("--dataset", "dataset", str), ("--data", "data", str), ("--epochs", "epochs", int),
    ("--device", "device", str), ("--seed", "seed", int), ("--image-size", "image_size", int),
    ("--backbone", "backbone", str), ("--trunk-weights", "trunk_weights", str),
    ("--prototypes-per-class", "prototypes_per_class", int), ("--prototype-dim", "prototype_dim", int),
    ("--add-on", "add_on", str), ("--similarity", "similarity", str),
    ("--warm-epochs", "warm_epochs", int), ("--push-start", "push_start", int), ("--push-every", "push_every", int),
    ("--last-layer-iterations", "last_layer_iterations", int), ("--epoch-copies", "epoch_copies", int),
    ("--batch-size", "batch_size", int),
    ("--test-batch-size", "test_batch_size", int), ("--push-batch-size", "push_batch_size", int),
    ("--lr-trunk", "joint_lr_trunk", float), ("--lr-add-on", "joint_lr_add_on", float),
    ("--lr-prototypes", "joint_lr_prototypes", float), ("--lr-last-layer", "last_layer_lr", float),
    ("--lr-step", "joint_lr_step", int), ("--lr-gamma", "joint_lr_gamma", float),
    ("--weight-decay", "weight_decay", float), ("--joint-optimizer", "joint_optimizer", str),
    ("--onecycle-pct-start", "onecycle_pct_start", float), ("--last-layer-batch-size", "last_layer_batch_size", int),
    ("--lr-baseline-head", "baseline_lr_head", float),
    ("--augmentation", "augmentation", str), ("--crop-padding", "crop_padding", int),
    ("--coef-clst", "coef_clst", float), ("--coef-sep", "coef_sep", float), ("--coef-l1", "coef_l1", float),
    ("--prune-k", "prune_k", int), ("--prune-threshold", "prune_threshold", int),
    ("--small-cnn-convs", "small_cnn_convs_per_stage", int), ("--small-cnn-pools", "small_cnn_pools", int),
    ("--interpolation", "interpolation", str), ("--threads", "threads", int), ("--workers", "num_workers", int),
    ("--train-limit", "train_limit", int), ("--test-limit", "test_limit", int),
    ("--polarity-augment", "polarity_augment", float), ("--noise-augment", "noise_augment", float),
    ("--calibration-holdout", "calibration_holdout", int),
    ("--unfamiliar-share", "unfamiliar_share", float), ("--contrast", "contrast", str),
    ("--synthetic-classes", "synthetic_classes", int), ("--synthetic-channels", "synthetic_channels", int),
    ("--synthetic-train-per-class", "synthetic_train_per_class", int),
    ("--synthetic-test-per-class", "synthetic_test_per_class", int),
]
FLAGS = [  # (option, config field, value when given)
    ("--crop-to-box", "crop_to_box", True), ("--no-augment", "augment", False), ("--augment", "augment", True),
    ("--prune", "prune", True), ("--with-baseline", "with_baseline", True), ("--no-baseline", "with_baseline", False),
    ("--last-layer-clamp", "last_layer_clamp", True), ("--no-last-layer-clamp", "last_layer_clamp", False),
    ("--background-aware", "background_aware", True), ("--no-background-aware", "background_aware", False),
    ("--jpeg-draft", "jpeg_draft", True), ("--no-jpeg-draft", "jpeg_draft", False),
    ("--skip-unreadable-images", "skip_unreadable_images", True),
]


HELP = {
    "--dataset": " | ".join(DATASETS),
    "--data": "data set folder (fashion-mnist: default /usr/share/datasets/fashion-mnist; cub200: CUB_200_2011; "
              "imagefolder: the folder holding train/ and test/)",
    "--epochs": "total epochs (warm-up + joint)", "--device": " | ".join(CHOICES["--device"]), "--seed": "random seed",
    "--image-size": "model input size in pixels (images are stretched to it)",
    "--backbone": " | ".join(CHOICES["--backbone"]),
    "--trunk-weights": "pretrained trunk: a state-dict file, 'torchvision' (its local cache) or 'imagenet-onnx' "
                       "(resnet18 from the NuGet ResNet18.onnx)",
    "--add-on": " | ".join(CHOICES["--add-on"]), "--similarity": " | ".join(CHOICES["--similarity"]),
    "--prototypes-per-class": "prototypes of each class (the paper: 10)",
    "--prototype-dim": "channels of a prototype, the add-on layers' output (the paper: 128)",
    "--batch-size": "training batch size", "--test-batch-size": "batch size of the test passes",
    "--push-batch-size": "batch size of the push's pass over the training set",
    "--lr-trunk": "joint stage: learning rate of the trunk",
    "--lr-add-on": "joint stage: learning rate of the add-on layers",
    "--lr-prototypes": "joint stage: learning rate of the prototypes",
    "--lr-last-layer": "last-layer stage: learning rate of the last layer",
    "--lr-step": "adam-step: the joint learning rates are multiplied by --lr-gamma every N epochs",
    "--lr-gamma": "adam-step: the factor of each learning-rate step",
    "--coef-clst": "weight of the cluster cost, which pulls each image's patches near a prototype of its class",
    "--coef-sep": "weight of the separation cost, negative: it pushes patches away from other classes' prototypes",
    "--coef-l1": "weight of the L1 penalty on the last layer's wrong-class connections",
    "--interpolation": " | ".join(CHOICES["--interpolation"]) + ": the filter images are resized with (recorded in the bundle, "
                       "the service resizes uploads with it too)",
    "--synthetic-classes": "synthetic data sets: number of classes",
    "--synthetic-channels": "synthetic data sets: 1 (grey) or 3 (colour)",
    "--synthetic-train-per-class": "synthetic data sets: training images per class",
    "--synthetic-test-per-class": "synthetic data sets: test images per class",
    "--warm-epochs": "epochs with the trunk frozen", "--push-start": "first push after this epoch (0-based)",
    "--last-layer-iterations": "last-layer epochs after each push (each --epoch-copies passes over the training "
                               "set's scores)",
    "--epoch-copies": "passes over the training set per epoch (the cub200 presets: 30, as the reference's epoch is "
                      "one pass over 30 augmented copies of each image)",
    "--prune-k": "pruning: nearest patches looked at", "--prune-threshold": "pruning: own-class patches needed",
    "--small-cnn-convs": "small-cnn: convolutions per stage", "--small-cnn-pools": "small-cnn: 2x2 max-pools",
    "--threads": "torch CPU threads (0: torch's default)", "--workers": "data loader worker processes",
    "--train-limit": "use only the first N training images", "--test-limit": "use only the first N test images",
    "--crop-to-box": "cub200: crop every image to its bounding box (the paper's setting)",
    "--jpeg-draft": "decode JPEG files at the smallest DCT scale (1/2, 1/4, 1/8) that keeps them at least "
                    "--image-size, as the service then decodes uploads (the default; not with --crop-to-box, whose crop "
                    "is what gets resized)",
    "--no-jpeg-draft": "decode JPEG files in full",
    "--skip-unreadable-images": "train without the image files that do not decode (each is named in a warning); "
                                "without it, such files stop the run before it trains, all of them named",
    "--no-augment": "no online augmentation", "--augment": "online augmentation of the training set (see --augmentation)",
    "--augmentation": "paper: rotation, skew/shear and flips | crop-flip: random crop of the image padded by "
                      "--crop-padding black pixels, and flips | none",
    "--crop-padding": "crop-flip: padding in pixels before the random crop",
    "--polarity-augment": "share of training images re-rendered as product shots: inverted to dark on a light "
                          "background, tinted, scaled and shifted (0: off)",
    "--noise-augment": "add Gaussian noise to each training image, its sigma drawn uniformly from [0, this] on "
                       "pixels in [0, 1] (0: off)",
    "--calibration-holdout": "hold the last N training images out of training and calibrate the bundle's "
                             "unfamiliarity threshold on them (0: no calibration)",
    "--contrast": "none | auto: invert an image whose border is light and stretch its contrast (ground 0, "
                  "brightest 1); declared in the bundle, the service applies it to every upload",
    "--background-aware": "cluster cost and push only on feature cells that are not mostly the border's colour",
    "--no-background-aware": "cluster cost and push on every feature cell (the paper)",
    "--unfamiliar-share": "share of the held-out images the unfamiliarity threshold flags (default 0.01)",
    "--joint-optimizer": "adam-step: Adam + StepLR per epoch (the reference) | adamw-onecycle: AdamW + OneCycleLR "
                         "stepped per batch, the --lr-* values are the peaks",
    "--onecycle-pct-start": "adamw-onecycle: share of the joint steps spent ramping the lr up",
    "--weight-decay": "weight decay of the trunk and add-on layers (prototypes: none)",
    "--last-layer-batch-size": "batch size of the last-layer passes (0: --batch-size)",
    "--last-layer-clamp": "clamp the wrong-class last-layer weights to <= 0 after every step",
    "--no-last-layer-clamp": "let wrong-class last-layer weights become positive",
    "--lr-baseline-head": "learning rate of the baseline's linear classifier",
    "--push-every": "push every N epochs after push-start, the last epoch always pushes (0: only the last epoch)",
    "--prune": "prune prototypes after training, then retrain the last layer",
    "--with-baseline": "also train the black-box baseline (same trunk, global average pooling, linear) with the "
                       "same epochs and augmentation; its test accuracy goes into the manifest",
    "--no-baseline": "skip the black-box baseline",
}


def _widths(text: str) -> List[int]:
    try:
        widths = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("widths must be comma-separated integers, e.g. 32,64,128") from None
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError("widths must be positive integers")
    return widths


def _untrained_image_size(text: str) -> Union[int, Tuple[int, int]]:
    """`export --untrained --image-size`: a square's side, 224, or WIDTHxHEIGHT, 320x224, as image sizes are written
    elsewhere (a 640x480 JPEG); returned as the side or (height, width)."""
    size = re.fullmatch(r"\s*([0-9]+)\s*(?:[xX]\s*([0-9]+)\s*)?", text)
    if size is not None:
        width, height = size.group(1), size.group(2)
        return int(width) if height is None else (int(height), int(width))
    raise argparse.ArgumentTypeError(f"'{text}' is not a size: give a side in pixels (224) or WIDTHxHEIGHT (320x224)")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="named recipe; other options override it")
    for option, dest, kind in OVERRIDES:
        parser.add_argument(option, dest=dest, type=kind, default=None, help=HELP.get(option),
                            metavar=kind.__name__.upper())
    for option, dest, value in FLAGS:
        parser.add_argument(option, dest=dest, action="store_const", const=value, default=None,
                            help=HELP.get(option))
    parser.add_argument("--small-cnn-widths", dest="small_cnn_widths", type=_widths, default=None,
                        help="channel widths of the small-cnn stages, e.g. 32,64,128")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = preset_config(args.preset)
    changes: Dict[str, Any] = {}
    for _, dest, _ in OVERRIDES + FLAGS:
        value = getattr(args, dest, None)
        if value is not None:
            changes[dest] = value
    if args.small_cnn_widths is not None:
        changes["small_cnn_widths"] = args.small_cnn_widths
    # A preset's calibration hold-out is sized for its own data set (smoke's 400 is 100 of each synthetic class's 300);
    # on another data set it would be an arbitrary count, and more than a small folder holds: none unless asked for.
    if "dataset" in changes and changes["dataset"] != cfg.dataset and "calibration_holdout" not in changes:
        changes["calibration_holdout"] = 0
    # The photo presets crop CUB-200's images to their bird boxes; another data set has no boxes, and a crop left on
    # would only have turned off the JPEG draft decoding that its photos (and the service, on their uploads) gain from.
    if changes.get("dataset", cfg.dataset) != "cub200":
        if changes.get("crop_to_box"):
            raise TrainerError("--crop-to-box crops CUB-200-2011's images to their bird boxes: it needs --dataset cub200")
        changes["crop_to_box"] = False
    cfg = cfg.replace(**changes)
    if "data" in changes and cfg.dataset in GENERATED_DATASETS:
        # It was ignored: forgetting --dataset imagefolder trained and published a model of synthetic images.
        raise TrainerError(f"--data {cfg.data}: the data set '{cfg.dataset}' is drawn by the trainer and reads no "
                           f"folder (add --dataset imagefolder, or cub200, to train on the folder)")
    cfg.validate()
    return cfg


# ---------------------------------------------------------------------------------------------- commands

def cmd_train(args: argparse.Namespace) -> None:
    cfg = config_from_args(args)
    job = None if args.baseline_only else train_job(args, cfg)
    check_ranges(build_parser(), args)   # what the checks in their own words above leave: the ranges jobs are held to
    if args.baseline_only:
        from .baseline import train_to_file
        train_to_file(cfg, args.baseline_only, progress=show_progress(args), log=say)
        return
    from .pipeline import train_and_publish
    train_and_publish(job, progress=show_progress(args), log=say)


def train_job(args: argparse.Namespace, cfg: TrainConfig) -> "TrainJob":
    """The run a `train` command line asks for (the worker's jobs are `train` command lines too)."""
    from .pipeline import TrainJob
    # Checked before training, not when publishing after it; an empty --name is refused, not replaced.
    name = checked_name(args.name if args.name is not None else args.preset or cfg.dataset)
    checked_examples(args.examples)
    return TrainJob(cfg, models=args.models, name=name, run_dir=args.run_dir,
                    preset=args.preset, resume=args.resume, fresh=args.fresh, report=not args.no_report, examples=args.examples,
                    baseline_result=args.baseline_result, baseline_wait=args.baseline_wait,
                    scorecard=not args.no_interpretability)


def train_job_from_argv(argv: List[str]) -> "TrainJob":
    args = build_parser().parse_args(argv)
    return train_job(args, config_from_args(args))


def cmd_worker(args: argparse.Namespace) -> None:
    from .worker import WorkerSettings, run_worker
    settings = WorkerSettings(jobs=args.jobs, models=args.models, runs=args.runs, data_root=args.data_root,
                              poll=args.poll, heartbeat=args.heartbeat, stale_after=args.stale_after,
                              progress=show_progress(args), once=args.once, alive_file=args.alive_file,
                              max_takeovers=args.max_takeovers)
    for option, value in (("--poll", settings.poll), ("--heartbeat", settings.heartbeat), ("--stale-after", settings.stale_after)):
        if value <= 0:
            raise TrainerError(f"{option} must be a positive number of seconds (got {value})")
    if settings.max_takeovers < 0:
        raise TrainerError(f"--max-takeovers must be 0 or more (got {settings.max_takeovers})")
    if settings.heartbeat >= settings.stale_after:
        raise TrainerError("--heartbeat must be shorter than --stale-after")
    run_worker(settings, JobOptions.from_parser(build_parser()), train_job_from_argv)


def cmd_options(args: argparse.Namespace) -> None:
    import json
    document = JobOptions.from_parser(build_parser()).document()
    if args.json:
        print(json.dumps(document, indent=2))
        return
    for option in document["options"]:
        bounds = option.get("choices") or [option[k] for k in ("minimum", "maximum") if k in option]
        say(f"{option['name']:28} {option['option']:28} {option['type']:8} {bounds or ''}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_checkpoint
    evaluate_checkpoint(args.checkpoint, args.dataset, args.data, args.split, args.device,
                        progress=show_progress(args), log=say, skip_unreadable_images=args.skip_unreadable_images)


def checked_name(name: str) -> str:
    """`--name`, refused at once when the service could not address it (see job_options.check_model_name)."""
    return require_model_name(name, "--name")


def checked_examples(count: int) -> int:
    """`--examples`: how many test images go into the bundle, 0 for none."""
    if count < 0:
        raise TrainerError(f"--examples must be 0 (none) or more (got {count})")
    return count


CHECKPOINT_HELP = "a checkpoint file of a run (runs/<name>/checkpoints/final.pt, epoch-NNN.pt)"
DEVICE_HELP = "auto (CUDA when there is a GPU, else the CPU), cpu or cuda (default auto)"
DATA_MOVED_HELP = "the data set's folder, when it has moved since the run (default: where the run read it)"

# The network `export --untrained` builds, unless its options say otherwise.
UNTRAINED_DEFAULTS: Dict[str, Any] = dict(backbone="resnet18", num_classes=200, prototypes_per_class=10, image_size=224,
                                          channels=3, seed=1)


def cmd_export(args: argparse.Namespace) -> None:
    if args.name is not None:
        checked_name(args.name)   # before the export's work
    checked_examples(args.examples)
    shaping = {option: getattr(args, option) for option in UNTRAINED_DEFAULTS if getattr(args, option) is not None}
    if args.untrained:
        # Each of these was ignored: a user who meant the checkpoint got a random-weight model after a minute.
        given = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--push", args.push),
                                          ("--baseline-result", args.baseline_result), ("--data", args.data)) if value]
        if given:
            raise TrainerError(f"export --untrained builds a network of random weights and reads no {' or '.join(given)}: "
                               f"leave out --untrained to publish the checkpoint")
        from .untrained import export_untrained
        shape = {**UNTRAINED_DEFAULTS, **shaping}
        bundle = export_untrained(args.models, args.name, shape["backbone"], shape["num_classes"],
                                  shape["prototypes_per_class"], shape["image_size"], shape["channels"], shape["seed"],
                                  progress=show_progress(args))
        say(f"published {bundle}")
        return
    if not args.checkpoint:
        raise TrainerError("export: pass --checkpoint (or --untrained)")
    if shaping:
        flags = ", ".join("--" + option.replace("_", "-") for option in shaping)
        raise TrainerError(f"{flags} shape an --untrained export only: a checkpoint is published as it was trained")
    from .pipeline import publish_checkpoint
    publish_checkpoint(args.checkpoint, args.models, args.name, push=args.push, baseline_result=args.baseline_result,
                       report=not args.no_report, examples=args.examples, progress=show_progress(args), log=say,
                       scorecard=not args.no_interpretability, data=args.data)


def cmd_evaluate_interpretability(args: argparse.Namespace) -> None:
    from .scorecard import evaluate_bundle
    evaluate_bundle(args.bundle, args.dataset, args.data, args.output, args.limit, args.batch_size, log=say,
                    progress=show_progress(args))


def cmd_prune(args: argparse.Namespace) -> None:
    from .pipeline import prune_checkpoint
    prune_checkpoint(args.checkpoint, args.k, args.threshold, args.output, args.device,
                     progress=show_progress(args), log=say, data=args.data)


def cmd_benchmark(args: argparse.Namespace) -> None:
    from .benchmark import run_benchmark
    if args.batches < 1:
        raise TrainerError(f"--batches must be at least 1 (got {args.batches})")
    cfg = config_from_args(args)
    for line in run_benchmark(cfg, args.batches, progress=show_progress(args)):
        say(line)


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars on a terminal (or with --progress); logs and CI get the per-epoch metrics lines only."""
    if args.no_progress:
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


class OneLineErrors(argparse.ArgumentParser):
    """An option the parser refuses is one `error:` line, as every other refusal, not the whole usage (48 lines for
    `train`) with the reason at its end."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Optional[List[str]] = None, namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:  # type: ignore[override]
        # The top parser finds words no command takes: they are the command's to explain, so its --help is named.
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            self.exit(2, f"error: {prog}: unrecognized arguments: {' '.join(extras)} (see {prog} --help)\n")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="protopnet_trainer", description="Train ProtoPNet models and publish bundles.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrors)

    train = commands.add_parser("train", help="train a model and publish a bundle")
    add_config_options(train)
    train.add_argument("--models", default="models", help="model repository root (default: models)")
    train.add_argument("--name", help="model family name (default: the preset or data set name)")
    train.add_argument("--run-dir", help="checkpoints and metrics.jsonl (default: runs/<name>)")
    restart = train.add_mutually_exclusive_group()
    restart.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder")
    restart.add_argument("--fresh", action="store_true",
                         help="start over in a run folder that holds an unfinished run, deleting its checkpoints "
                              "(without it such a run folder is refused)")
    add_progress_options(train)
    train.add_argument("--no-report", action="store_true", help="no report/ (curves, confusion matrix, gallery)")
    train.add_argument("--examples", type=int, default=10,
                       help="store the first test image of up to N classes in the bundle (examples/, default 10)")
    train.add_argument("--baseline-only", metavar="FILE",
                       help="train only the black-box baseline and write its result to FILE (JSON), for a "
                            "ProtoPNet run to read with --baseline-result")
    train.add_argument("--baseline-result", metavar="FILE",
                       help="take training.baseline from FILE, written by --baseline-only with the same recipe, "
                            "instead of training the baseline after ProtoPNet in this process; when FILE does not "
                            "exist yet, a parallel child process trains the baseline and writes it")
    train.add_argument("--baseline-wait", type=float, default=1800.0, metavar="SECONDS",
                       help="with --baseline-result: how long to wait after training for that child process "
                            "(default 1800)")
    train.add_argument("--no-interpretability", action="store_true",
                       help="publish without measuring the explanations (model.json interpretability)")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="accuracy of a checkpoint on a data set")
    evaluate.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
    evaluate.add_argument("--dataset", help="data set to evaluate on, with the checkpoint's classes (default: the "
                                            "checkpoint's)")
    evaluate.add_argument("--data", help="data set folder (default: where the run read it)")
    evaluate.add_argument("--split", choices=["train", "test"], default="test", help="split to evaluate (default test)")
    evaluate.add_argument("--skip-unreadable-images", action="store_true",
                          help="leave out image files that cannot be read, with a warning (default: refuse the data set)")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], help=DEVICE_HELP)
    add_progress_options(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    export = commands.add_parser("export", help="publish a bundle from a checkpoint, or an untrained bundle")
    export.add_argument("--checkpoint", help=CHECKPOINT_HELP + " (or --untrained)")
    export.add_argument("--data", help=DATA_MOVED_HELP)
    export.add_argument("--models", default="models", help="model repository root (default: models)")
    export.add_argument("--name", help="model family name (default: the data set's name, e.g. fashion-mnist; `train` "
                                       "names a model after its preset; with --untrained, <backbone>-untrained, e.g. "
                                       "resnet18-untrained)")
    export.add_argument("--push", action="store_true",
                        help="the checkpoint is from an unfinished run (not pushed yet): push its prototypes and "
                             "train the last layer before publishing")
    export.add_argument("--baseline-result", metavar="FILE",
                        help="training.baseline from FILE, written by a --baseline-only run of the same recipe")
    export.add_argument("--untrained", action="store_true",
                        help="random-weight model, pushed on a few synthetic images per class (service benchmarks)")
    untrained_only = "with --untrained only; default %s"
    export.add_argument("--backbone", help=untrained_only % UNTRAINED_DEFAULTS["backbone"])
    export.add_argument("--num-classes", type=int, help=untrained_only % UNTRAINED_DEFAULTS["num_classes"])
    export.add_argument("--prototypes-per-class", type=int, help=untrained_only % UNTRAINED_DEFAULTS["prototypes_per_class"])
    export.add_argument("--image-size", type=_untrained_image_size,
                        help=(untrained_only % UNTRAINED_DEFAULTS["image_size"]) + "; a side in pixels or WIDTHxHEIGHT, "
                             "e.g. 320x224, for a non-square input")
    export.add_argument("--channels", type=int, choices=[1, 3], help=untrained_only % UNTRAINED_DEFAULTS["channels"])
    export.add_argument("--seed", type=int, help=untrained_only % UNTRAINED_DEFAULTS["seed"])
    add_progress_options(export)
    export.add_argument("--no-report", action="store_true", help="no report/ (curves, gallery)")
    export.add_argument("--examples", type=int, default=10,
                        help="store the first test image of up to N classes in the bundle (examples/, default 10)")
    export.add_argument("--no-interpretability", action="store_true",
                        help="publish without measuring the explanations (model.json interpretability)")
    export.set_defaults(handler=cmd_export)

    scorecard = commands.add_parser(
        "evaluate-interpretability",
        help="measure a bundle's explanations on its ONNX graph (pointing game, consistency, stability, deletion, "
             "background); the bundle is not changed")
    scorecard.add_argument("--bundle", required=True, help="a bundle version folder (models/<name>/<version>)")
    scorecard.add_argument("--dataset", help="data set to measure on (default: the bundle's training data set)")
    scorecard.add_argument("--data", help="data set folder (default: the bundle's, or the data set's default)")
    scorecard.add_argument("--output", help="folder for interpretability.json and interpretability.png "
                                            "(default: runs/<name>/interpretability-<version>)")
    scorecard.add_argument("--limit", type=int, help="use only the first N test images")
    scorecard.add_argument("--batch-size", type=int, default=100, help="images per run of the ONNX graph (default 100)")
    add_progress_options(scorecard)
    scorecard.set_defaults(handler=cmd_evaluate_interpretability)

    prune = commands.add_parser("prune", help="prune a pushed checkpoint and retrain its last layer")
    prune.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP + ", pushed")
    prune.add_argument("--data", help=DATA_MOVED_HELP)
    # Also by train's names, which the check's message uses.
    prune.add_argument("--k", "--prune-k", type=int, default=6,
                       help="nearest training patches looked at per prototype (default 6)")
    prune.add_argument("--threshold", "--prune-threshold", type=int, default=3,
                       help="own-class patches among them a prototype needs to stay (default 3)")
    prune.add_argument("--output", help="checkpoint file name in the run's checkpoints folder (default pruned.pt; for a "
                                         "checkpoint kept outside a run folder, checkpoints/ beside it)")
    prune.add_argument("--device", choices=["auto", "cpu", "cuda"],
                       help="auto (CUDA when there is a GPU, else the CPU), cpu or cuda (default: the run's --device)")
    add_progress_options(prune)
    prune.set_defaults(handler=cmd_prune)

    worker = commands.add_parser("worker", help="take training jobs from a jobs folder, one at a time, and publish "
                                                "their bundles (docs/TRAINING_JOBS.md)")
    worker.add_argument("--jobs", required=True, help="the jobs folder (shared with the service's Training:JobsRoot)")
    worker.add_argument("--models", required=True, help="model repository root the bundles are published into")
    worker.add_argument("--runs", help="run folders, <runs>/<job id> (default: the job's own folder, <jobs>/<id>/run)")
    worker.add_argument("--data-root", help="the only folder a job's data may come from (its `data` is relative to "
                                            "it); without it jobs use their data set's default folder only")
    worker.add_argument("--poll", type=float, default=2.0, metavar="SECONDS", help="look for jobs this often (2)")
    worker.add_argument("--heartbeat", type=float, default=5.0, metavar="SECONDS",
                        help="renew the running job's lease this often (5)")
    worker.add_argument("--stale-after", type=float, default=60.0, metavar="SECONDS",
                        help="take over a running job whose lease was not renewed for this long (60)")
    worker.add_argument("--max-takeovers", type=int, default=3, metavar="N",
                        help="end a job failed when its workers died more than N times over it (taken over), rather "
                             "than let a job that kills its worker be retried for good (3)")
    worker.add_argument("--once", action="store_true", help="exit when no job is left to take")
    worker.add_argument("--alive-file", metavar="PATH", default=os.environ.get(ALIVE_FILE_VARIABLE) or None,
                        help="touch this file from the loop and the job's heartbeat, for a health check "
                             "(python3 -m protopnet_trainer.alive; default $PROTOPNET_WORKER_ALIVE_FILE, which the "
                             "trainer images set)")
    add_progress_options(worker)
    worker.set_defaults(handler=cmd_worker)

    options = commands.add_parser("options", help="the options a training job may set, with their ranges")
    options.add_argument("--json", action="store_true",
                         help="as the JSON the service validates jobs with (src/ProtoPNet.Service/Training/"
                              "trainer-options.json)")
    options.set_defaults(handler=cmd_options)

    benchmark = commands.add_parser("benchmark", help="images per second of each training stage")
    add_config_options(benchmark)
    benchmark.add_argument("--batches", type=int, default=20, help="training batches timed per stage (default 20)")
    add_progress_options(benchmark)
    benchmark.set_defaults(handler=cmd_benchmark)
    return parser


def _raise_terminated(number: int, frame: Any) -> None:
    raise Terminated()


# What torchrun sets in every process it starts (distributed.ENVIRONMENT; repeated here to keep this module torch-free).
TORCHRUN_ENVIRONMENT = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def check_distributed_launch(command: str, baseline_only: bool) -> None:
    """Refuses what would run once per process, each alone, under a launcher of several processes."""
    text = os.environ.get("WORLD_SIZE", "") or "1"
    try:
        world_size = int(text)
    except ValueError:
        raise TrainerError(f"WORLD_SIZE is {text[:40]!r}, not a number of processes") from None
    if world_size <= 1:
        return
    # Only `train` is distributed; any other command would run, and publish, once per process.
    if command != "train":
        raise TrainerError(f"only `train` runs under torchrun: run `{command}` as one process")
    if baseline_only:
        raise TrainerError("`train --baseline-only` runs as one process: run it without torchrun")
    missing = [name for name in TORCHRUN_ENVIRONMENT if name not in os.environ]
    if missing:
        # Without all three the trainer is not distributed: every process would train alone and publish its own bundle.
        raise TrainerError(f"WORLD_SIZE is {world_size} but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                           "not set: start a distributed run with torchrun (it sets WORLD_SIZE, RANK and LOCAL_RANK), "
                           "or unset WORLD_SIZE")


def stopped(interrupt: KeyboardInterrupt, args: argparse.Namespace) -> int:
    """Says that a Ctrl-C or SIGTERM stopped the command, and what of its work is kept; its exit status (128 + the
    signal's number)."""
    terminated = isinstance(interrupt, Terminated)
    command = "train --baseline-only" if args.command == "train" and getattr(args, "baseline_only", None) else args.command
    kept = {"train": "; nothing was published (the same command with --resume goes on from the last checkpoint, if "
                     "an epoch was saved)",
            "train --baseline-only": "; no baseline result was written", "export": "; nothing was published",
            "prune": "; no pruned checkpoint was written"}.get(command, "")
    print(f"error: {'terminated' if terminated else 'interrupted'}{kept}", file=sys.stderr, flush=True)
    return 143 if terminated else 130


def _say_where_possible(line: str) -> None:
    """Writes the line to standard error; once a broken pipe has refused it, standard output and error go nowhere, so
    that nothing more (nor Python's flush at exit) fails on them and turns the exit status into another."""
    try:
        print(line, file=sys.stderr, flush=True)
    except BrokenPipeError:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _to_nowhere(stream)


def _to_nowhere(stream) -> None:
    """Points a stream whose pipe broke at the null device: nothing more written to it fails, at exit neither."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # The worker has its own SIGTERM handling (it stops the job at its next batch and queues it again).
    handles_term = args.command != "worker" and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if handles_term else None
    try:
        check_distributed_launch(args.command, bool(getattr(args, "baseline_only", None)))
        args.handler(args)
        return 0
    except BrokenPipeError as error:
        if args.command != "options":
            # A run whose output pipe broke (`train | tee`, the tee gone) stopped unfinished: not a success, whether or
            # not the error can be said (with `2>&1 | head` standard error is the broken pipe too).
            _say_where_possible(f"error: {one_line(error)}")
            return 2
        # `options | head`: the reader has what it wanted. Nothing more can be written there, at exit neither.
        _to_nowhere(sys.stdout)
        return 0
    except (TrainerError, OSError) as error:
        # OSError: a file the run writes or reads failed under it (a full disk, a folder where a file should be); the
        # system's words say which and why.
        print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt as interrupt:
        return stopped(interrupt, args)
    except RuntimeError as error:
        # A signal while torch ran C++ code (importing it, say) comes back as a RuntimeError naming the interrupt.
        interrupt = disguised_interrupt(error)
        if interrupt is None:
            raise
        return stopped(interrupt, args)
    finally:
        if handles_term:
            signal.signal(signal.SIGTERM, previous)
