"""The trainer's jobs from start to end, each one function of plain values: train a recipe and publish its bundle,
publish a checkpoint (pushing it first when asked), prune a checkpoint. The command line only parses into these."""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader

from .baseline import SeparateBaseline, baseline_from_file
from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import TrainConfig
from .console import say
from .data import DataSource, ImageSet, make_loaders, require_same_classes
from .datasets import load_data_source
from .distributed import Group, process_group, restart_count
from .errors import TrainerError, is_out_of_memory, out_of_memory_advice
from .evaluate import evaluate_accuracy, test_metrics
from .export import example_images, has_pictures, write_bundle
from .manifest import training_block
from .model import ProtoPNet
from .product_shots import ProductShotSet
from .publish import check_writable
from .report import report_writer
from .run_folder import RunFolder
from .scorecard import scorecard_hook
from .train import Trainer, TrainResult
from .unfamiliarity import calibrate

Log = Callable[[str], None]


@dataclass
class TrainJob:
    """One training run: the recipe, its run folder, and where and how its bundle is published."""
    cfg: TrainConfig
    models: str                           # model repository root
    name: str                             # model family name
    run_dir: Optional[str] = None         # checkpoints, pictures and metrics.jsonl (default: runs/<name>)
    preset: Optional[str] = None          # recorded in the manifest
    resume: bool = False                  # continue from the run folder's latest checkpoint
    fresh: bool = False                   # start over in a run folder holding an unfinished run (else refused)
    report: bool = True
    examples: int = 10
    baseline_result: Optional[str] = None     # training.baseline from this file (see SeparateBaseline)
    baseline_wait: float = 1800.0             # seconds to wait for a baseline still training after this run
    scorecard: bool = True                    # measure the exported graph's explanations (model.json interpretability)


def train_and_publish(job: TrainJob, progress: bool = False, log: Log = say,
                      on_epoch_end: Optional[Callable[[int], None]] = None,
                      trainer_factory: Callable[..., Trainer] = Trainer,
                      before_publish: Optional[Callable[[], None]] = None) -> Optional[str]:
    """Train the job's recipe in its run folder (fresh, or resumed) and publish the bundle. Returns its folder.
    `on_epoch_end(epoch)` runs after each checkpointed epoch; raising from it stops the run (see Trainer.run).
    `trainer_factory(cfg, run_dir, progress=, log=, group=)` makes the trainer: the worker's watches each stage and batch.
    `before_publish()` runs once the bundle is written, before it is made visible; raising from it publishes nothing.

    Started by torchrun, every rank trains its share (see distributed.py) and rank 0 alone writes the run folder,
    trains the separate baseline and publishes; the other ranks return None. After a torchrun restart
    (--max-restarts) the run resumes from its latest checkpoint."""
    try:
        with process_group(job.cfg.device) as group:
            if group is None:
                return _train_and_publish(job, progress, log, on_epoch_end, None, trainer_factory, before_publish)
            if restart_count() > 0:
                job = replace(job, resume=True)
            log = log if group.is_main else _quiet
            return _train_and_publish(job, progress and group.is_main, log, on_epoch_end, group, trainer_factory,
                                      before_publish)
    except Exception as error:  # noqa: BLE001 - only running out of memory is told otherwise
        if not is_out_of_memory(error):
            raise
        cfg = job.cfg
        raise TrainerError(out_of_memory_advice(error, cfg.image_size, {
            "--batch-size": cfg.batch_size, "--test-batch-size": cfg.test_batch_size,
            "--push-batch-size": cfg.push_batch_size})) from error


def recipe_warnings(cfg: TrainConfig) -> List[str]:
    """What the recipe as asked for will not do, said at the start (where a job's warnings are read), not found in the
    model it publishes: a recipe cut short, a calibration that cannot be made."""
    warnings = []
    if cfg.warm_epochs and cfg.warm_epochs >= cfg.epochs:
        every = f"all {cfg.epochs} epochs are warm-up epochs" if cfg.epochs > 1 else "the one epoch is a warm-up epoch"
        warnings.append(f"{every} (--warm-epochs {cfg.warm_epochs}): only the add-on "
                        f"layers and the prototypes train, never the trunk; with fewer --epochs, lower --warm-epochs too")
    if not cfg.calibration_holdout:
        warnings.append("no training images are held out to calibrate the unfamiliarity threshold (--calibration-holdout "
                        "0): the model's answers will say unfamiliar: null; hold out a few percent of them to have one")
    elif cfg.calibration_holdout * cfg.unfamiliar_share < 1:
        warnings.append(f"--calibration-holdout {cfg.calibration_holdout} is too few images to place the unfamiliarity "
                        f"threshold at --unfamiliar-share {cfg.unfamiliar_share:g}: it can flag no fewer than 1 of them "
                        f"({1 / cfg.calibration_holdout:.0%}); hold out {math.ceil(1 / cfg.unfamiliar_share)} or more")
    return warnings


def chance_warning(accuracy: float, classes: int) -> Optional[str]:
    """A model no better than about chance is published (it is what was asked for), but not without a word."""
    chance = 1 / classes
    if accuracy >= 1.5 * chance:
        return None
    return (f"test accuracy {accuracy:.1%} is near chance ({chance:.1%} for {classes} classes): the model has not learned "
            f"to tell them apart; train longer (more --epochs, fewer --warm-epochs) or look at the data")


def refuse_unfinished_run(folder: RunFolder) -> None:
    """A run folder holding epoch checkpoints of a run that did not publish (interrupted, failed) is not cleared
    without being asked: a run of the paper's recipe is hours of work, and a command line repeated without --resume
    deleted it without a word."""
    latest = folder.latest_epoch_checkpoint()
    if latest is None or os.path.exists(folder.published_record):
        return
    epoch = os.path.basename(latest)[len("epoch-"):-len(".pt")].lstrip("0") or "0"
    raise TrainerError(f"the run folder {folder.path} holds a run that did not finish (checkpointed up to epoch {epoch}): "
                       "add --resume to go on from it, or --fresh to start over and delete it")


def _quiet(line: str) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""


def _train_and_publish(job: TrainJob, progress: bool, log: Log, on_epoch_end: Optional[Callable[[int], None]],
                       group: Optional[Group], trainer_factory: Callable[..., Trainer],
                       before_publish: Optional[Callable[[], None]] = None) -> Optional[str]:
    main = group is None or group.is_main
    cfg = job.cfg
    if job.baseline_result:
        cfg = cfg.replace(with_baseline=False)      # the baseline trains in its own process
    run_dir = job.run_dir or RunFolder.default(job.name)
    # A finished run resumed again (a job object re-created, a worker killed between publishing and `succeeded`) has
    # nothing left to do: it answers with the bundle it published rather than train the last steps and publish twice.
    done = RunFolder(run_dir).published(os.path.join(job.models, job.name), cfg.epochs) if job.resume else None
    if done is not None:
        log(f"the run in {run_dir} finished and published {done}: nothing to resume")
        return done if main else None
    if main:
        check_writable(job.models, job.name)        # fail before training, not after
        if not job.resume and not job.fresh:
            refuse_unfinished_run(RunFolder(run_dir))
        # A resume with no epoch checkpoint to go on from starts afresh: the folder's older lines and pictures go too.
        if not job.resume or RunFolder(run_dir).latest_epoch_checkpoint() is None:
            finished = RunFolder(run_dir).published_bundle()
            if finished is not None:
                log(f"starting over in {run_dir}: the run that finished there keeps its bundle {finished[0]}, "
                    "its checkpoints and pictures are removed (--resume with more --epochs trains it on instead)")
            RunFolder(run_dir).clear()
    if group is not None:
        group.barrier()                             # no rank reads the run folder while rank 0 clears it
    started = time.time()
    separate = SeparateBaseline(job.baseline_result, cfg, log) if job.baseline_result and main \
        else contextlib.nullcontext()
    with separate:
        trainer = trainer_factory(cfg, run_dir, progress=progress, log=log, group=group)
        trainer.preset = job.preset
        # Said once the data is read and checked, so that a refused data set is not preceded by a recipe's warning.
        if main:
            for warning in recipe_warnings(cfg):
                log(f"warning: {warning}")
        if job.resume and not trainer.resume():
            log(f"no checkpoint in {run_dir}: starting from epoch 1")
        result = trainer.run(on_epoch_end)
        if job.baseline_result and main:
            result.baseline = separate.result(job.baseline_wait) or result.baseline
    if not main:
        return None
    source = trainer.source
    near_chance = chance_warning(result.test_accuracy, len(source.classes))
    if near_chance:
        log(f"warning: {near_chance}")
    training = training_block(cfg, result, len(source.train), len(source.test), job.preset)
    unfamiliarity = measure_beyond_the_test_set(result.model, cfg, source, trainer.loaders.test_set, training, progress,
                                                log)
    bundle = write_bundle(job.models, job.name, result.model, classes=source.classes, channels=source.channels,
                          image_size=cfg.image_size, interpolation=cfg.interpolation, contrast=cfg.contrast,
                          jpeg_draft=cfg.decodes_jpeg_draft, records=result.records,
                          training=training,
                          report=report_writer(result, source.classes) if job.report else None,
                          examples=example_images(trainer.loaders.test_set, job.examples),
                          scorecard=scorecard_hook(trainer.loaders.test_set, source.train, job.report, log,
                                                   progress=progress)
                          if job.scorecard else None,
                          unfamiliarity=unfamiliarity, before_publish=before_publish)
    RunFolder(run_dir).record_published(bundle, cfg.epochs)
    baseline = f", baseline {result.baseline.test_accuracy:.4f}" if result.baseline is not None else ""
    log(f"published {bundle} (test accuracy {result.test_accuracy:.4f}{baseline}, {time.time() - started:.1f}s)")
    return bundle


def measure_beyond_the_test_set(model: ProtoPNet, cfg: TrainConfig, source: DataSource, test_set: ImageSet,
                                training: dict, progress: bool, log: Log) -> Optional[dict]:
    """The published model on photos and on the unknown: its product-shot accuracy (into `training.metrics`; grey data
    sets only) and its unfamiliarity calibration (returned; None without held-out images). The time counts in
    `training.seconds`."""
    started = time.time()
    # A product shot paints a grey image's light parts dark on a light ground (Fashion-MNIST's garments as shops
    # photograph them); a colour photo turned into such a silhouette says nothing about the model.
    if source.channels == 1:
        training["metrics"]["productShotAccuracy"] = product_shot_accuracy(model, test_set, cfg, progress)
        log(f"product-shot accuracy {training['metrics']['productShotAccuracy']:.4f} on {len(test_set)} test images")
    unfamiliarity = calibrate_unfamiliarity(cfg, source, model, log)
    training["seconds"] = round(training["seconds"] + time.time() - started, 3)
    return unfamiliarity


def product_shot_accuracy(model: ProtoPNet, test_set: ImageSet, cfg: TrainConfig, progress: bool) -> float:
    """Accuracy on the test images rendered as product shots (dark on light, enlarged, tinted, JPEG): what
    scripts/check_product_shots.py measures through the service."""
    shots = DataLoader(ProductShotSet(test_set, cfg.decodes_jpeg_draft), batch_size=cfg.test_batch_size, shuffle=False)
    return evaluate_accuracy(model, shots, next(model.parameters()).device, desc="product shots", progress=progress)


def calibrate_unfamiliarity(cfg: TrainConfig, source: DataSource, model: ProtoPNet, log: Log) -> Optional[dict]:
    """The bundle's unfamiliarity threshold, from the training images held out of training; None without any."""
    if source.holdout is None:
        return None
    block = calibrate(model, source.holdout, cfg.image_size, cfg.interpolation, cfg.contrast, cfg.unfamiliar_share,
                      next(model.parameters()).device, cfg.test_batch_size)
    log(f"unfamiliarity: threshold {block['threshold']:.4f} flags {block['calibration']['flaggedShare']:.4f} of "
        f"{len(source.holdout)} held-out training images")
    return block


def with_data_folder(checkpoint: Dict[str, Any], data: Optional[str]) -> Dict[str, Any]:
    """The checkpoint with its data set read from `data` (its folder moved since the run), or as it is."""
    if data is not None:
        checkpoint["config"] = {**checkpoint["config"], "data": data}
    return checkpoint


def publish_checkpoint(checkpoint_path: str, models: str, name: Optional[str], push: bool = False,
                       baseline_result: Optional[str] = None, report: bool = True, examples: int = 10,
                       progress: bool = False, log: Log = say, scorecard: bool = True, data: Optional[str] = None) -> str:
    """Publish a bundle from a checkpoint. With `push`, a checkpoint of an unfinished run is pushed and its last
    layer trained first, as its last epoch would have done. The test metrics are measured again (the checkpoint
    may have been pruned since). Returns the bundle folder."""
    # The checkpoint is read first: one that is not there, or not one, makes no model repository on its way out.
    checkpoint = with_data_folder(load_checkpoint(checkpoint_path), data)
    check_writable(models)
    cfg = TrainConfig.from_dict(checkpoint["config"])
    completed = int(checkpoint.get("epoch", cfg.epochs))
    push_seconds = 0.0
    if push:
        started = time.time()
        run_dir = os.path.join(RunFolder.of_checkpoint(checkpoint_path).path, "export-push")
        trainer = Trainer.from_checkpoint(checkpoint, run_dir, progress=progress, log=log)
        trainer.push(completed - 1)
        accuracy = trainer.train_last_layer(seed_offset=completed - 1)
        model, records = trainer.model.cpu(), trainer.records
        push_seconds = time.time() - started
        log(f"pushed the epoch-{completed} model; last-layer accuracy {accuracy:.4f}")
    else:
        model, records = model_from_checkpoint(checkpoint), relocated(checkpoint.get("records"), checkpoint_path)
        if not records:
            raise TrainerError(f"checkpoint {checkpoint_path} holds an unpushed model: pass --push to push it, "
                               f"or export a pushed checkpoint")
        require_pushed_last(checkpoint, checkpoint_path, "pass --push to push it first, or export a checkpoint saved "
                                                         "right after a push (final.pt)")
    source = load_data_source(cfg.replace(augment=False))
    classes = list(checkpoint["classes"])
    require_same_classes(classes, source.classes, "the checkpoint", cfg.dataset)
    loaders = make_loaders(cfg, source)
    test_accuracy, confusion = test_metrics(model, loaders.test, torch.device("cpu"), len(classes), progress)
    result = TrainResult.from_checkpoint(checkpoint, model, records, test_accuracy, confusion, push_seconds)
    if baseline_result:
        result.baseline = baseline_from_file(baseline_result, cfg, log) or result.baseline
    training = training_block(cfg, result, len(source.train), len(source.test), checkpoint.get("preset"))
    unfamiliarity = measure_beyond_the_test_set(model, cfg, source, loaders.test_set, training, progress, log)
    if completed < cfg.epochs:   # honest about a run cut short: its schedule was planned for cfg.epochs
        training["epochsCompleted"] = completed
    bundle = write_bundle(models, name or cfg.dataset, model, classes=classes, channels=model.mean.numel(),
                          image_size=cfg.image_size, interpolation=cfg.interpolation, contrast=cfg.contrast,
                          jpeg_draft=cfg.decodes_jpeg_draft, records=records,
                          training=training, report=report_writer(result, classes) if report else None,
                          examples=example_images(loaders.test_set, examples),
                          scorecard=scorecard_hook(loaders.test_set, source.train, report, log, progress=progress)
                          if scorecard else None,
                          unfamiliarity=unfamiliarity)
    log(f"published {bundle}")
    return bundle


def relocated(records: Optional[List[Dict[str, Any]]], checkpoint_path: str) -> Optional[List[Dict[str, Any]]]:
    """Push records whose pictures are not where the run wrote them, pointed at the same place in the run folder the
    checkpoint is in now: a run folder moved or copied elsewhere (the records hold absolute paths) still exports."""
    if not records:
        return records
    run_dir = RunFolder.of_checkpoint(checkpoint_path).path
    moved = []
    for record in records:
        pictures = record.get("pictures")
        if pictures and not has_pictures(record) and os.sep + "push" + os.sep in pictures:
            here = {**record, "pictures": os.path.join(run_dir, "push", pictures.rsplit(os.sep + "push" + os.sep, 1)[1])}
            if has_pictures(here):
                record = here
        moved.append(record)
    return moved


def require_pushed_last(checkpoint: Dict[str, Any], path: str, advice: str) -> None:
    """Refuses a checkpoint saved epochs after its last push: its prototypes have moved since, so the push's pictures
    no longer show them ("this looks like that" holds right after a push)."""
    history = checkpoint.get("history") or []
    if history and not history[-1].get("pushed"):
        pushes = [entry["epoch"] for entry in history if entry.get("pushed")]
        last = f"epoch {pushes[-1]}" if pushes else "no epoch"
        raise TrainerError(f"checkpoint {path} was saved after epoch {history[-1]['epoch']}, but its last push was "
                           f"after {last}: its prototypes have moved since, and its pictures would not show them; "
                           f"{advice}")


def prune_checkpoint(checkpoint_path: str, k: int, threshold: int, output: Optional[str] = None,
                     device: Optional[str] = None, progress: bool = False, log: Log = say, data: Optional[str] = None) -> str:
    """Prune a pushed checkpoint and train its last layer again; the result is a checkpoint in the same run's
    checkpoints folder (default pruned.pt). Returns its path."""
    checkpoint = with_data_folder(load_checkpoint(checkpoint_path), data)
    if not checkpoint.get("records"):
        raise TrainerError(f"checkpoint {checkpoint_path} holds an unpushed model: push before pruning")
    checkpoint["records"] = relocated(checkpoint["records"], checkpoint_path)
    require_pushed_last(checkpoint, checkpoint_path, "prune a checkpoint saved right after a push (final.pt), or "
                                                     "export --push it first")
    missing = [record.get("pictures") for record in checkpoint["records"] if not has_pictures(record)]
    if missing:
        raise TrainerError(f"checkpoint {checkpoint_path}: the pictures of {len(missing)} prototypes are gone "
                           f"(e.g. {missing[0]}; a later push of the run replaced them), so a pruned model could not "
                           f"be exported: prune the run's final.pt")
    cfg = TrainConfig.from_dict(checkpoint["config"]).replace(prune=True, prune_k=k, prune_threshold=threshold)
    if device:
        cfg = cfg.replace(device=device)
    trainer = Trainer.from_checkpoint(checkpoint, RunFolder.of_checkpoint(checkpoint_path).path, cfg=cfg,
                                      progress=progress, log=log)
    removed = trainer.prune()
    # What the bundle's trainAccuracy says: the pruned model's, on the training images without augmentation.
    trainer.train_accuracy = trainer.accuracy(trainer.loaders.push, desc="train")
    # The run's other checkpoints (final.pt) still need their pictures: a prune only adds a checkpoint.
    path = trainer.save_checkpoint(os.path.basename(output) if output else "pruned.pt", keep_other_pictures=True)
    accuracy = evaluate_accuracy(trainer.model, trainer.loaders.test, trainer.device, progress=progress)
    log(f"removed {removed} prototypes, {trainer.model.num_prototypes} left; test accuracy {accuracy:.4f}; "
        f"wrote {path}")
    return path
