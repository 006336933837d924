"""Command line: train, evaluate, export, prune, benchmark."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional

from .config import PRESETS, TrainConfig, preset_config
from .errors import TrainerError

# Command-line overrides: option -> (config field, type). `None` values are "not given".
OVERRIDES = [
    ("--dataset", "dataset", str), ("--data", "data", str), ("--epochs", "epochs", int),
    ("--device", "device", str), ("--seed", "seed", int), ("--image-size", "image_size", int),
    ("--backbone", "backbone", str), ("--trunk-weights", "trunk_weights", str),
    ("--prototypes-per-class", "prototypes_per_class", int), ("--prototype-dim", "prototype_dim", int),
    ("--add-on", "add_on", str), ("--similarity", "similarity", str),
    ("--warm-epochs", "warm_epochs", int), ("--push-start", "push_start", int), ("--push-every", "push_every", int),
    ("--last-layer-iterations", "last_layer_iterations", int), ("--batch-size", "batch_size", int),
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
    ("--synthetic-classes", "synthetic_classes", int), ("--synthetic-channels", "synthetic_channels", int),
    ("--synthetic-train-per-class", "synthetic_train_per_class", int),
    ("--synthetic-test-per-class", "synthetic_test_per_class", int),
]
FLAGS = [  # (option, config field, value when given)
    ("--crop-to-box", "crop_to_box", True), ("--no-augment", "augment", False), ("--augment", "augment", True),
    ("--prune", "prune", True), ("--with-baseline", "with_baseline", True), ("--no-baseline", "with_baseline", False),
    ("--last-layer-clamp", "last_layer_clamp", True), ("--no-last-layer-clamp", "last_layer_clamp", False),
]


HELP = {
    "--dataset": "fashion-mnist | cub200 | imagefolder | synthetic",
    "--data": "data set folder (fashion-mnist: default /usr/share/datasets/fashion-mnist; cub200: CUB_200_2011; "
              "imagefolder: the folder holding train/ and test/)",
    "--epochs": "total epochs (warm-up + joint)", "--device": "auto | cpu | cuda", "--seed": "random seed",
    "--image-size": "model input size in pixels (images are stretched to it)",
    "--backbone": "small-cnn | resnet18 | resnet34 | resnet50 | vgg16 | vgg19 | densenet121",
    "--trunk-weights": "pretrained trunk: a state-dict file, 'torchvision' (its local cache) or 'imagenet-onnx' "
                       "(resnet18 from the NuGet ResNet18.onnx)",
    "--add-on": "regular | bottleneck", "--similarity": "log | linear",
    "--warm-epochs": "epochs with the trunk frozen", "--push-start": "first push after this epoch (0-based)",
    "--last-layer-iterations": "last-layer passes after each push",
    "--prune-k": "pruning: nearest patches looked at", "--prune-threshold": "pruning: own-class patches needed",
    "--small-cnn-convs": "small-cnn: convolutions per stage", "--small-cnn-pools": "small-cnn: 2x2 max-pools",
    "--threads": "torch CPU threads (0: torch's default)", "--workers": "data loader worker processes",
    "--train-limit": "use only the first N training images", "--test-limit": "use only the first N test images",
    "--crop-to-box": "cub200: crop every image to its bounding box (the paper's setting)",
    "--no-augment": "no online augmentation", "--augment": "online augmentation of the training set (see --augmentation)",
    "--augmentation": "paper: rotation, skew/shear and flips | crop-flip: random crop of the image padded by "
                      "--crop-padding black pixels, and flips | none",
    "--crop-padding": "crop-flip: padding in pixels before the random crop",
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
    cfg = cfg.replace(**changes)
    cfg.validate()
    return cfg


def training_block(cfg: TrainConfig, result, train_size: int, test_size: int, preset: Optional[str]) -> Dict[str, Any]:
    block: Dict[str, Any] = {
        "dataset": cfg.dataset, "trainSize": train_size, "testSize": test_size, "backbone": cfg.backbone,
        "trunkWeights": cfg.trunk_weights, "epochs": cfg.epochs, "seconds": round(result.seconds, 3),
        "metrics": {"testAccuracy": result.test_accuracy, "trainAccuracy": result.train_accuracy},
        "preset": preset, "prototypesPerClass": cfg.prototypes_per_class, "cropToBox": cfg.crop_to_box,
        "augment": cfg.augment, "pushEpochs": [m["epoch"] for m in result.history if m.get("pushed")],
        "pruned": cfg.prune, "config": cfg.to_dict(),
    }
    if getattr(result, "baseline_block", None):   # trained by a separate --baseline-only process
        block["baseline"] = dict(result.baseline_block)
    elif result.baseline_accuracy is not None:
        block["baseline"] = {"testAccuracy": result.baseline_accuracy, "backbone": cfg.backbone,
                             "epochs": cfg.epochs, "model": "same trunk + global average pooling + linear",
                             "augment": cfg.augment, "augmentation": cfg.augmentation,
                             "jointOptimizer": cfg.joint_optimizer}
        if result.baseline_seconds:
            block["baseline"]["seconds"] = round(result.baseline_seconds, 3)
    return block


def baseline_block(cfg: TrainConfig, history: List[float], seconds: float) -> Dict[str, Any]:
    """The manifest's training.baseline, as written by --baseline-only and read back by --baseline-result."""
    return {"testAccuracy": history[-1], "history": history, "seconds": round(seconds, 3),
            "backbone": cfg.backbone, "epochs": cfg.epochs, "seed": cfg.seed,
            "model": "same trunk + global average pooling + linear", "augment": cfg.augment,
            "augmentation": cfg.augmentation, "jointOptimizer": cfg.joint_optimizer,
            "process": "separate (--baseline-only)"}


def write_json_atomically(value: Dict[str, Any], path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
    os.replace(tmp, path)


def read_baseline_result(path: str, cfg: TrainConfig, wait_seconds: float) -> Optional[Dict[str, Any]]:
    """The baseline of a parallel --baseline-only run: waits up to `wait_seconds` for its file. A missing file
    after the wait gives None (the bundle is still published, without a baseline); a file for another recipe
    is an error."""
    deadline = time.time() + wait_seconds
    announced = False
    while not os.path.isfile(path) and time.time() < deadline:
        if not announced:
            print(f"waiting up to {wait_seconds:.0f}s for the baseline result {path}", flush=True)
            announced = True
        time.sleep(5)
    if not os.path.isfile(path):
        print(f"warning: no baseline result at {path}; publishing without training.baseline", flush=True)
        return None
    try:
        with open(path, encoding="utf-8") as f:
            block = json.load(f)
        accuracy = float(block["testAccuracy"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TrainerError(f"baseline result {path} is not readable: {error}") from None
    if not 0.0 <= accuracy <= 1.0:
        raise TrainerError(f"baseline result {path} has test accuracy {accuracy}, outside [0, 1]")
    mismatched = [key for key, value in (("backbone", cfg.backbone), ("epochs", cfg.epochs), ("seed", cfg.seed),
                                         ("augmentation", cfg.augmentation), ("jointOptimizer", cfg.joint_optimizer))
                  if block.get(key) != value]
    if mismatched:
        raise TrainerError(f"baseline result {path} was trained with a different {', '.join(mismatched)} "
                           f"than this run")
    return block


# ---------------------------------------------------------------------------------------------- train

def report_writer(result, classes: List[str]):
    def write(staging: str, prototypes: List[Dict[str, Any]]) -> List[str]:
        from .report import write_report
        return write_report(staging, result.history, result.confusion, classes, prototypes,
                            result.baseline_history or None)
    return write


def example_images(test_set, count: int) -> List[Any]:
    """The first test image of each class, for up to `count` classes (the service offers them for trying)."""
    chosen: Dict[int, int] = {}
    for index, label in enumerate(test_set.split.labels):
        if len(chosen) >= count:
            break
        chosen.setdefault(label, index)
    return [(test_set.image(index), label) for label, index in sorted(chosen.items())]


def cmd_train_baseline_only(cfg: TrainConfig, output: str, progress: bool) -> int:
    """Train only the black-box baseline (same trunk, budget and augmentation) and write its result as JSON,
    for a ProtoPNet run in another process (--baseline-result) to put into its manifest."""
    import torch
    from .data import load_data_source, make_loaders
    from .train import seed_everything, select_device, train_baseline
    started = time.time()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    source = load_data_source(cfg)
    history = train_baseline(cfg, source, make_loaders(cfg, source), select_device(cfg.device), progress)
    block = baseline_block(cfg, history, time.time() - started)
    write_json_atomically(block, output)
    print(f"baseline test accuracy {block['testAccuracy']:.4f} in {block['seconds']:.1f}s; wrote {output}", flush=True)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .export import check_writable, write_bundle
    from .train import Trainer
    cfg = config_from_args(args)
    if args.baseline_only:
        return cmd_train_baseline_only(cfg, args.baseline_only, show_progress(args))
    if args.baseline_result:
        cfg = cfg.replace(with_baseline=False)      # the baseline trains in its own process
    name = args.name or args.preset or cfg.dataset
    check_writable(args.models)                     # fail before training, not after
    run_dir = args.run_dir or os.path.join("runs", name)
    if not args.resume and os.path.isdir(run_dir):  # a fresh run never mixes with an old one's checkpoints
        for part in ("checkpoints", "push", "metrics.jsonl"):
            target = os.path.join(run_dir, part)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    started = time.time()
    trainer = Trainer(cfg, run_dir, progress=show_progress(args))
    if args.resume and not trainer.resume():
        print(f"no checkpoint in {run_dir}: starting from epoch 1", flush=True)
    result = trainer.run()
    if args.baseline_result:
        result.baseline_block = read_baseline_result(args.baseline_result, cfg, args.baseline_wait)
        if result.baseline_block:
            result.baseline_accuracy = result.baseline_block["testAccuracy"]
            result.baseline_history = list(result.baseline_block.get("history") or [])
    bundle = write_bundle(args.models, name, result.model, classes=trainer.source.classes,
                          channels=trainer.source.channels, image_size=cfg.image_size,
                          interpolation=cfg.interpolation, records=result.records,
                          training=training_block(cfg, result, len(trainer.source.train), len(trainer.source.test),
                                                  args.preset),
                          report=None if args.no_report else report_writer(result, trainer.source.classes),
                          examples=example_images(trainer.loaders.test_set, args.examples))
    print(f"published {bundle} (test accuracy {result.test_accuracy:.4f}"
          + (f", baseline {result.baseline_accuracy:.4f}" if result.baseline_accuracy is not None else "")
          + f", {time.time() - started:.1f}s)", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- evaluate

def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_data_source, make_loaders
    from .train import evaluate_accuracy, load_checkpoint_file, model_from_checkpoint, select_device
    checkpoint = load_checkpoint_file(args.checkpoint)
    cfg = TrainConfig.from_dict(checkpoint["config"])
    changes = {k: v for k, v in (("dataset", args.dataset), ("data", args.data)) if v is not None}
    cfg = cfg.replace(**changes, augment=False)
    source = load_data_source(cfg)
    if len(source.classes) != len(checkpoint["classes"]):
        raise TrainerError(f"class-count mismatch: checkpoint has {len(checkpoint['classes'])} classes, "
                           f"data set {cfg.dataset} has {len(source.classes)}")
    device = select_device(args.device or "auto")
    model = model_from_checkpoint(checkpoint).to(device)
    loaders = make_loaders(cfg, source)
    split = loaders.push if args.split == "train" else loaders.test   # both un-augmented
    accuracy = evaluate_accuracy(model, split, device, desc=args.split, progress=show_progress(args))
    print(f"{args.split} accuracy {accuracy:.4f} on {len(split.dataset)} images", flush=True)
    if split.dataset.split.true_boxes:   # synthetic data knows where the class pattern is
        from .localisation import localisation
        scores = localisation(model, split.dataset, device)
        print(f"localisation: the top prototype's box holds the pattern centre in {scores['centre_hit_rate']:.4f} "
              f"of images, mean IoU {scores['mean_iou']:.4f}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- export

def cmd_export(args: argparse.Namespace) -> int:
    from .export import check_writable, write_bundle
    check_writable(args.models)
    if args.untrained:
        from .untrained import export_untrained
        bundle = export_untrained(args)
        print(f"published {bundle}", flush=True)
        return 0
    if not args.checkpoint:
        raise TrainerError("export: pass --checkpoint (or --untrained)")
    import torch
    from .data import load_data_source, make_loaders
    from .report import confusion_matrix
    from .train import TrainResult, load_checkpoint_file, model_from_checkpoint, predict
    checkpoint = load_checkpoint_file(args.checkpoint)
    cfg = TrainConfig.from_dict(checkpoint["config"])
    model = model_from_checkpoint(checkpoint)
    records = checkpoint.get("records")
    completed = int(checkpoint.get("epoch", cfg.epochs))
    push_seconds = 0.0
    if args.push:   # a checkpoint of an unfinished run: push + last layer here, as the last epoch would have
        from .train import Trainer
        started = time.time()
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
        trainer = Trainer(cfg, os.path.join(run_dir, "export-push"), progress=show_progress(args))
        trainer.model = model.to(trainer.device)
        trainer._make_optimizers()
        trainer.push(completed - 1)
        accuracy = trainer.train_last_layer(seed_offset=completed - 1)
        records, model = trainer.records, trainer.model.cpu()
        push_seconds = time.time() - started
        print(f"pushed the epoch-{completed} model; last-layer accuracy {accuracy:.4f}", flush=True)
    elif not records:
        raise TrainerError(f"checkpoint {args.checkpoint} holds an unpushed model: pass --push to push it, "
                           f"or export a pushed checkpoint")
    # The test accuracy and confusion matrix are measured again: the checkpoint may have been pruned since.
    source = load_data_source(cfg.replace(augment=False))
    if list(source.classes) != list(checkpoint["classes"]):
        raise TrainerError(f"class-count mismatch: checkpoint has {len(checkpoint['classes'])} classes, "
                           f"data set {cfg.dataset} has {len(source.classes)}")
    labels, predictions = predict(model, make_loaders(cfg, source).test, torch.device("cpu"),
                                  progress=show_progress(args))
    history = checkpoint.get("history", [])
    last = history[-1] if history else {}
    summary = TrainResult(model, records, history, seconds=float(checkpoint.get("seconds", 0.0)) + push_seconds,
                          test_accuracy=sum(int(a == b) for a, b in zip(labels, predictions)) / len(labels),
                          train_accuracy=float(checkpoint.get("train_accuracy") or last.get("train_accuracy", 0.0)),
                          confusion=confusion_matrix(labels, predictions, len(source.classes)),
                          baseline_accuracy=checkpoint.get("baseline_accuracy"),
                          baseline_history=list(checkpoint.get("baseline_history") or []),
                          baseline_seconds=checkpoint.get("baseline_seconds"))
    if args.baseline_result:
        summary.baseline_block = read_baseline_result(args.baseline_result, cfg, 0.0)
        if summary.baseline_block:
            summary.baseline_accuracy = summary.baseline_block["testAccuracy"]
            summary.baseline_history = list(summary.baseline_block.get("history") or [])
    training = training_block(cfg, summary, len(source.train), len(source.test), None)
    if completed < cfg.epochs:   # honest about a run cut short: its schedule was planned for cfg.epochs
        training["epochsCompleted"] = completed
    channels = model.mean.numel()
    name = args.name or cfg.dataset
    bundle = write_bundle(args.models, name, model, classes=list(checkpoint["classes"]), channels=channels,
                          image_size=cfg.image_size, interpolation=cfg.interpolation, records=records,
                          training=training,
                          report=None if args.no_report else report_writer(summary, list(checkpoint["classes"])),
                          examples=example_images(make_loaders(cfg, source).test_set, args.examples))
    print(f"published {bundle}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- prune

def cmd_prune(args: argparse.Namespace) -> int:
    from .train import Trainer, evaluate_accuracy, load_checkpoint_file, model_from_checkpoint
    checkpoint = load_checkpoint_file(args.checkpoint)
    if not checkpoint.get("records"):
        raise TrainerError(f"checkpoint {args.checkpoint} holds an unpushed model: push before pruning")
    cfg = TrainConfig.from_dict(checkpoint["config"]).replace(prune=True, prune_k=args.k,
                                                              prune_threshold=args.threshold)
    if args.device:
        cfg = cfg.replace(device=args.device)
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
    trainer = Trainer(cfg, run_dir, progress=show_progress(args))
    if list(checkpoint["classes"]) != list(trainer.source.classes):
        raise TrainerError("class-count mismatch between the checkpoint and its data set")
    trainer.model = model_from_checkpoint(checkpoint).to(trainer.device)
    trainer.records = list(checkpoint["records"])
    trainer.history = list(checkpoint.get("history", []))
    trainer.seconds = float(checkpoint.get("seconds", 0.0))
    trainer.baseline_accuracy = checkpoint.get("baseline_accuracy")
    trainer.epoch = int(checkpoint["epoch"])
    trainer._make_optimizers()
    removed = trainer.prune()
    path = trainer.save_checkpoint(os.path.basename(args.output) if args.output else "pruned.pt")
    accuracy = evaluate_accuracy(trainer.model, trainer.loaders.test, trainer.device, progress=show_progress(args))
    print(f"removed {removed} prototypes, {trainer.model.num_prototypes} left; test accuracy {accuracy:.4f}; "
          f"wrote {path}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- benchmark

def cmd_benchmark(args: argparse.Namespace) -> int:
    from .benchmark import run_benchmark
    cfg = config_from_args(args)
    for line in run_benchmark(cfg, args.batches, progress=show_progress(args)):
        print(line, flush=True)
    return 0


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars on a terminal (or with --progress); logs and CI get the per-epoch metrics lines only."""
    if args.no_progress:
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protopnet_trainer", description="Train ProtoPNet models and publish bundles.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and publish a bundle")
    add_config_options(train)
    train.add_argument("--models", default="models", help="model repository root (default: models)")
    train.add_argument("--name", help="model family name (default: the preset or data set name)")
    train.add_argument("--run-dir", help="checkpoints and metrics.jsonl (default: runs/<name>)")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    train.add_argument("--no-report", action="store_true", help="no report/ (curves, confusion matrix, gallery)")
    train.add_argument("--examples", type=int, default=10,
                       help="store the first test image of up to N classes in the bundle (examples/, default 10)")
    train.add_argument("--baseline-only", metavar="FILE",
                       help="train only the black-box baseline and write its result to FILE (JSON), for a "
                            "ProtoPNet run in a parallel process to read with --baseline-result")
    train.add_argument("--baseline-result", metavar="FILE",
                       help="take training.baseline from FILE, written by a parallel --baseline-only run with the "
                            "same recipe, instead of training the baseline after ProtoPNet in this process")
    train.add_argument("--baseline-wait", type=float, default=1800.0, metavar="SECONDS",
                       help="with --baseline-result: how long to wait for FILE after training (default 1800)")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="accuracy of a checkpoint on a data set")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--dataset")
    evaluate.add_argument("--data")
    evaluate.add_argument("--split", choices=["train", "test"], default="test")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"])
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    evaluate.set_defaults(handler=cmd_evaluate)

    export = commands.add_parser("export", help="publish a bundle from a checkpoint, or an untrained bundle")
    export.add_argument("--checkpoint")
    export.add_argument("--models", default="models")
    export.add_argument("--name")
    export.add_argument("--push", action="store_true",
                        help="the checkpoint is from an unfinished run (not pushed yet): push its prototypes and "
                             "train the last layer before publishing")
    export.add_argument("--baseline-result", metavar="FILE",
                        help="training.baseline from FILE, written by a --baseline-only run of the same recipe")
    export.add_argument("--untrained", action="store_true",
                        help="random-weight model, pushed on a few synthetic images per class (service benchmarks)")
    export.add_argument("--backbone", default="resnet18")
    export.add_argument("--num-classes", type=int, default=200)
    export.add_argument("--prototypes-per-class", type=int, default=10)
    export.add_argument("--image-size", type=int, default=224)
    export.add_argument("--channels", type=int, choices=[1, 3], default=3)
    export.add_argument("--seed", type=int, default=1)
    export.add_argument("--no-progress", action="store_true")
    export.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    export.add_argument("--no-report", action="store_true", help="no report/ (curves, gallery)")
    export.add_argument("--examples", type=int, default=10,
                        help="store the first test image of up to N classes in the bundle (examples/, default 10)")
    export.set_defaults(handler=cmd_export)

    prune = commands.add_parser("prune", help="prune a pushed checkpoint and retrain its last layer")
    prune.add_argument("--checkpoint", required=True)
    prune.add_argument("--k", type=int, default=6)
    prune.add_argument("--threshold", type=int, default=3)
    prune.add_argument("--output", help="checkpoint file name in the run's checkpoints folder (default pruned.pt)")
    prune.add_argument("--device", choices=["auto", "cpu", "cuda"])
    prune.add_argument("--no-progress", action="store_true")
    prune.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    prune.set_defaults(handler=cmd_prune)

    benchmark = commands.add_parser("benchmark", help="images per second of each training stage")
    add_config_options(benchmark)
    benchmark.add_argument("--batches", type=int, default=20)
    benchmark.add_argument("--no-progress", action="store_true")
    benchmark.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    benchmark.set_defaults(handler=cmd_benchmark)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TrainerError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was published", file=sys.stderr, flush=True)
        return 130
