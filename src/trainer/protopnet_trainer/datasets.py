"""The data sets a run can read, by name (`--dataset`), each as a `DataSource` of two splits: Fashion-MNIST (idx .gz),
CUB-200-2011, ImageFolder (train/ and test/ of class folders) and the two generated ones (synthetic.py, synthetic_parts.py); then the
limits, the calibration hold-out and the checks every data set gets (`load_data_source`).
"""
from __future__ import annotations

import gzip
import os
import struct
import unicodedata
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .config import IMAGE_EXTENSIONS, TrainConfig
from .console import say
from .data import ArrayImages, DataSource, FileImages, Split, classes_without_images, name_list, some_of
from .errors import TrainerError
from .image_check import EVERY_SPLIT, OnChecked, check_image_files
from .synthetic import load_synthetic
from .synthetic_parts import load_synthetic_parts
from .trunks import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from .distributed import Group

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
# What an image folder's reader passes over, by kind (said at the start of a run).
SUBFOLDERS = "subfolders (their images are not read)"
HIDDEN_FILES = "hidden files"
NOT_IMAGES = f"files not named as images ({', '.join(IMAGE_EXTENSIONS)})"
LOOSE_FILES = "files beside the class folders"


# ---------------------------------------------------------------------------------------------- Fashion-MNIST

def _read_idx(path: str, magic: int, dims: int) -> np.ndarray:
    if not os.path.isfile(path):
        raise TrainerError(f"fashion-mnist: missing file {path}")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise TrainerError(f"fashion-mnist: {path} is not a readable gzip file ({error})") from None
    if len(raw) < 4 + 4 * dims:
        raise TrainerError(f"fashion-mnist: {path} is truncated")
    found_magic = struct.unpack(">I", raw[:4])[0]
    if found_magic != magic:
        raise TrainerError(f"fashion-mnist: {path} has magic number {found_magic}, expected {magic}")
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise TrainerError(f"fashion-mnist: {path} holds {body.size} bytes of data, header says {shape}")
    return body.reshape(shape)


def _fashion_split(folder: str, prefix: str, name: str) -> Split:
    images = _read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), 2051, 3)
    labels = _read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), 2049, 1)
    if len(images) != len(labels):
        raise TrainerError(f"fashion-mnist: {prefix} has {len(images)} images but {len(labels)} labels")
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise TrainerError(f"fashion-mnist: {prefix} labels go up to {int(labels.max())}, expected 0..9")
    cached = torch.from_numpy(images.copy()).unsqueeze(1)
    return Split(name, list(FASHION_MNIST_CLASSES), 1, [str(i) for i in range(len(labels))],
                 [int(v) for v in labels], ArrayImages(images), cached=cached)


def load_fashion_mnist(folder: Optional[str]) -> DataSource:
    folder = folder or FASHION_MNIST_DEFAULT_DIR
    if not os.path.isdir(folder):
        raise TrainerError(f"fashion-mnist: data folder {folder} does not exist")
    return DataSource("fashion-mnist", _fashion_split(folder, "train", "train"), _fashion_split(folder, "t10k", "test"),
                      mean=[0.286], std=[0.353])


# ---------------------------------------------------------------------------------------------- CUB-200-2011

def _read_table(folder: str, name: str, columns: int) -> Dict[int, List[str]]:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise TrainerError(f"cub200: missing file {path}")
    table: Dict[int, List[str]] = {}
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < columns + 1:
                raise TrainerError(f"cub200: {path} line {number} has {len(parts)} fields, expected {columns + 1}")
            try:
                key = int(parts[0])
            except ValueError:
                raise TrainerError(f"cub200: {path} line {number} does not start with a number") from None
            table[key] = parts[1:1 + columns] if columns > 1 else [" ".join(parts[1:])]
    return table


def load_cub200(folder: Optional[str], crop_to_box: bool, jpeg_draft_size: Optional[Tuple[int, int]] = None) -> DataSource:
    if not folder:
        raise TrainerError("cub200: pass the CUB_200_2011 folder with --data")
    if not os.path.isdir(folder):
        raise TrainerError(f"cub200: data folder {folder} does not exist")
    images = _read_table(folder, "images.txt", 1)
    labels = _read_table(folder, "image_class_labels.txt", 1)
    split = _read_table(folder, "train_test_split.txt", 1)
    boxes = _read_table(folder, "bounding_boxes.txt", 4)
    class_rows = _read_table(folder, "classes.txt", 1)
    classes = [class_rows[k][0] for k in sorted(class_rows)]
    if sorted(class_rows) != list(range(1, len(classes) + 1)):
        raise TrainerError("cub200: classes.txt must number classes 1..K")
    per_split: Dict[str, Tuple[List[str], List[int], List[str], List[Tuple[float, float, float, float]]]] = {
        "train": ([], [], [], []), "test": ([], [], [], [])}
    for image_id in sorted(images):
        for table, file in ((labels, "image_class_labels.txt"), (split, "train_test_split.txt"),
                            (boxes, "bounding_boxes.txt")):
            if image_id not in table:
                raise TrainerError(f"cub200: image {image_id} has no row in {file}")
        try:
            label = int(labels[image_id][0]) - 1
            is_train = int(split[image_id][0]) == 1
            box = tuple(float(v) for v in boxes[image_id])
        except ValueError:
            raise TrainerError(f"cub200: image {image_id} has a malformed label, split or box") from None
        if not 0 <= label < len(classes):
            raise TrainerError(f"cub200: image {image_id} has class {label + 1}, classes.txt has {len(classes)}")
        relative = images[image_id][0]
        if not stays_below(relative):
            raise TrainerError(f"cub200: images.txt names '{relative}' for image {image_id}: a file outside images/ "
                               "(a path inside images/, without '..', is expected)")
        path = os.path.join(folder, "images", relative)
        if not os.path.isfile(path):
            raise TrainerError(f"cub200: missing image file {path}")
        ids, labs, paths, bxs = per_split["train" if is_train else "test"]
        ids.append(relative)
        labs.append(label)
        paths.append(path)
        bxs.append(box)  # type: ignore[arg-type]

    def make(name: str) -> Split:
        ids, labs, paths, bxs = per_split[name]
        if not ids:
            raise TrainerError(f"cub200: the {name} split is empty")

        return Split(name, classes, 3, ids, labs, FileImages(paths, jpeg_draft_size, bxs if crop_to_box else None))

    return DataSource("cub200", make("train"), make("test"), mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))


def stays_below(relative: str) -> bool:
    """Whether a path names something below the folder it is read against: relative, and never up a level (a job's
    data folder; an images.txt entry, which is text, so that a data set unpacked from an archive cannot make a job
    read, and publish, any image on the machine)."""
    return not os.path.isabs(relative) and ".." not in relative.replace("\\", "/").split("/")


# ---------------------------------------------------------------------------------------------- ImageFolder

def check_class_folders(root: str, classes: List[str]) -> None:
    """Two class folders that are one class: names equal once Unicode-normalised (café typed on two systems, shown
    alike everywhere), or one folder linked under two names (both would be trained as different classes)."""
    by_name: Dict[str, str] = {}
    by_target: Dict[str, str] = {}
    for cls in classes:
        normal = unicodedata.normalize("NFC", cls)
        if normal in by_name:
            raise TrainerError(f"imagefolder: the class folders {by_name[normal]!r} and {cls!r} in {root} have the same "
                               f"name written in two Unicode forms; merge them into one folder")
        by_name[normal] = cls
        target = os.path.realpath(os.path.join(root, cls))
        if target in by_target:
            raise TrainerError(f"imagefolder: the class folders {by_target[target]!r} and {cls!r} in {root} are the same "
                               f"folder ({target}); a class needs a folder of its own")
        by_target[target] = cls


def class_files(root: str, cls: str, passed_over: Dict[str, List[str]]) -> List[str]:
    """The image files of a class folder, as `cls/file`; what else it holds goes into `passed_over` by kind."""
    files = []
    for entry in sorted(os.listdir(os.path.join(root, cls))):
        path = os.path.join(root, cls, entry)
        if os.path.isdir(path):
            passed_over[SUBFOLDERS].append(f"{cls}/{entry}")
        elif entry.startswith("."):
            # Hidden files: ._name.jpg beside each image copied from a Mac to an exFAT or network drive, .DS_Store.
            passed_over[HIDDEN_FILES].append(f"{cls}/{entry}")
        elif not entry.lower().endswith(IMAGE_EXTENSIONS):
            passed_over[NOT_IMAGES].append(f"{cls}/{entry}")
        else:
            files.append(f"{cls}/{entry}")
    return files


def load_imagefolder(folder: Optional[str], jpeg_draft_size: Optional[Tuple[int, int]] = None) -> DataSource:
    if not folder:
        raise TrainerError("imagefolder: pass the folder holding train/ and test/ with --data")
    splits = {}
    notes: List[str] = []
    for name in ("train", "test"):
        root = os.path.join(folder, name)
        if not os.path.isdir(root):
            where = ("does not exist" if not os.path.exists(folder) else
                     "is not a folder" if not os.path.isdir(folder) else f"has no {name}/ folder")
            # The commonest slip: the train/ (or test/) folder itself named, not the folder holding both.
            parent, leaf = os.path.split(os.path.normpath(folder))
            if leaf in ("train", "test") and os.path.isdir(os.path.join(parent or ".", "train")):
                where += f" (it is a {leaf}/ folder: pass {parent or '.'}, the folder holding it)"
            # A run's folder that has gone may have moved (export, prune, evaluate, a resume); one that is there has not.
            moved = " (one that moved since its run: pass --data with its new place)" if not os.path.exists(folder) else ""
            raise TrainerError(f"imagefolder: {folder} {where}; --data names the folder holding train/ and test/{moved}")
        # Hidden folders and the one macOS adds to a zip (__MACOSX) are not classes.
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                         and not d.startswith(".") and d != "__MACOSX")
        if not classes:
            raise TrainerError(f"imagefolder: {root} has no class folders")
        check_class_folders(root, classes)
        passed_over: Dict[str, List[str]] = {SUBFOLDERS: [], HIDDEN_FILES: [], NOT_IMAGES: [], LOOSE_FILES: sorted(
            f for f in os.listdir(root) if not os.path.isdir(os.path.join(root, f)) and not f.startswith("."))}
        per_class = [class_files(root, cls, passed_over) for cls in classes]
        for kind, entries in passed_over.items():
            if entries:
                notes.append(f"warning: imagefolder: {name}/ holds what is not read: {len(entries)} {kind}: {some_of(entries, 5)}")
        # The classes in turn (round robin), not one after another, so that the first or last N images
        # (--train-limit, --test-limit, --calibration-holdout) come from every class, as in Fashion-MNIST's order.
        ids: List[str] = []
        labels: List[int] = []
        for rank in range(max(len(files) for files in per_class)):
            for label, files in enumerate(per_class):
                if rank < len(files):
                    ids.append(files[rank])
                    labels.append(label)
        if not ids:
            raise TrainerError(f"imagefolder: {root} holds no images")
        # A class without training images would only be noticed at the first push, epochs later.
        empty = classes_without_images(classes, labels)
        if name == "train" and empty:
            raise TrainerError(f"imagefolder: {', '.join(os.path.join(root, cls) for cls in empty)} holds no images "
                               f"(images in subfolders of a class folder are not read)")
        splits[name] = (root, classes, ids, labels)
    if splits["train"][1] != splits["test"][1]:
        only_train = sorted(set(splits["train"][1]) - set(splits["test"][1]))
        only_test = sorted(set(splits["test"][1]) - set(splits["train"][1]))
        # Named by what differs: two splits of 2 classes each read "train has 2 classes, test has 2".
        raise TrainerError(f"imagefolder: the class folders of train/ and test/ differ (train has "
                           f"{len(splits['train'][1])}, test has {len(splits['test'][1])}; they must match; only in train: "
                           f"{', '.join(only_train) or 'none'}; only in test: {', '.join(only_test) or 'none'}; "
                           f"a class without test images needs an empty folder in test/)")
    if len(splits["train"][1]) < 2:
        raise TrainerError(f"imagefolder: {splits['train'][0]} has one class folder; a classifier needs two or more")

    def make(name: str) -> Split:
        root, classes, ids, labels = splits[name]
        return Split(name, classes, 3, ids, labels, FileImages([os.path.join(root, i) for i in ids], jpeg_draft_size))

    return DataSource("imagefolder", make("train"), make("test"), mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD),
                      passed_over=notes)


# ---------------------------------------------------------------------------------------------- by name

READERS: Dict[str, Callable[[TrainConfig], DataSource]] = {
    "fashion-mnist": lambda cfg: load_fashion_mnist(cfg.data),
    "cub200": lambda cfg: load_cub200(cfg.data, cfg.crop_to_box, cfg.jpeg_draft_size),
    "imagefolder": lambda cfg: load_imagefolder(cfg.data, cfg.jpeg_draft_size),
    "synthetic": load_synthetic,
    "synthetic-parts": load_synthetic_parts,
}
DATASETS = tuple(READERS)


def load_data_source(cfg: TrainConfig, progress: bool = False, log: Callable[[str], None] = say,
                     read: Sequence[str] = EVERY_SPLIT, on_checked: Optional[OnChecked] = None,
                     group: Optional["Group"] = None) -> DataSource:
    """The data set `cfg.dataset` names, cut to the run's limits, with its calibration hold-out taken, checked (the
    image files of the parts the command `read`s decoded once, `on_checked` told how far, shared out among the ranks
    of a distributed run's `group`: image_check.py)."""
    if cfg.dataset not in READERS:
        raise TrainerError(f"unknown dataset '{cfg.dataset}' (choose from {', '.join(DATASETS)})")
    source = READERS[cfg.dataset](cfg)
    for note in source.passed_over:
        log(note)
    source.train = source.train.subset(cfg.train_limit)
    source.test = source.test.subset(cfg.test_limit)
    if cfg.calibration_holdout:
        if cfg.calibration_holdout >= len(source.train):
            raise TrainerError(f"--calibration-holdout {cfg.calibration_holdout} leaves no training images "
                               f"(the training split has {len(source.train)}): hold out fewer, or 0 for a bundle "
                               f"without an unfamiliarity calibration")
        source.train, source.holdout = source.train.hold_out(cfg.calibration_holdout)
    source = check_image_files(source, cfg.skip_unreadable_images, cfg.data, progress, log, read, cfg.threads, on_checked,
                               group)
    if source.holdout is not None and len(source.holdout) == 0:
        raise TrainerError(f"--calibration-holdout {cfg.calibration_holdout}: none of the held-out images can be read; "
                           f"hold out more, or 0 for a bundle without an unfamiliarity calibration")
    for split in (source.train, source.test):
        if len(split) == 0:
            raise TrainerError(f"{cfg.dataset}: the {split.name} split is empty")
    # Every class needs training images: the push gives each prototype a patch of an image of its class.
    untrained = source.train.classes_without_images()
    if untrained:
        cut = []
        if cfg.train_limit is not None:
            cut.append(f"--train-limit {cfg.train_limit}")
        if cfg.calibration_holdout:
            cut.append(f"--calibration-holdout {cfg.calibration_holdout}")
        if source.left_out:
            cut.append(f"leaving out the {source.left_out} image files that cannot be read")
        raise TrainerError(f"{cfg.dataset}: {len(untrained)} of {len(source.classes)} classes have no training images"
                           f"{' left after ' + ' and '.join(cut) if cut else ''} ({name_list(untrained)}); every class "
                           f"needs some")
    return source
