"""The data a training run reads, as the trainer holds it: a `DataSource` of two `Split`s (train, test), each a list
of ids, labels and a way to load every raw image; an `ImageSet` view turns a split into tensors in [0, 1] at the model's
input size (stretch resize), with or without online augmentation; `make_loaders` makes the three loaders of a run (the
push set is the training split viewed without augmentation). Which data sets there are and how each is read from disk:
datasets.py; the generated ones: synthetic.py; the augmentation: augmentation.py.
"""
from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from .augmentation import make_augmentation
from .boxes import Box
from .config import TrainConfig
from .contrast import apply_contrast
from .errors import TrainerError
from .image_files import open_image
from .runtime import at_most_usable



# A split's image loaders are small classes, not closures: DataLoader workers started with spawn or forkserver (the
# default on macOS and Windows, and on Linux from Python 3.14) receive the data set pickled, and a closure cannot be.
# (eq=False: they compare and hash as the objects they are, not by their arrays and lists.)

@dataclass(frozen=True, eq=False)
class ArrayImages:
    """Image i of an in-memory uint8 array: [N, H, W] or [N, H, W, 1] gives mode L, [N, H, W, 3] RGB."""
    images: np.ndarray

    def __call__(self, index: int) -> Image.Image:
        array = self.images[index]
        return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)


@dataclass(frozen=True, eq=False)
class FileImages:
    """Image i of a list of files, optionally cropped to its box (x, y, width, height in the file's pixels)."""
    paths: List[str]
    jpeg_draft_size: Optional[Tuple[int, int]] = None
    crop_boxes: Optional[List[Tuple[float, float, float, float]]] = None

    def __call__(self, index: int) -> Image.Image:
        picture = open_image(self.paths[index], self.jpeg_draft_size)
        if self.crop_boxes is not None:
            x, y, w, h = self.crop_boxes[index]
            left, top = max(0, int(x)), max(0, int(y))
            right, bottom = min(picture.width, int(x + w)), min(picture.height, int(y + h))
            if right > left and bottom > top:
                picture = picture.crop((left, top, right, bottom))
        return picture


@dataclass(frozen=True, eq=False)
class ShiftedImages:
    """Image i + offset of another loader (the tail of a split)."""
    load: Callable[[int], Image.Image]
    offset: int

    def __call__(self, index: int) -> Image.Image:
        return self.load(index + self.offset)


@dataclass(frozen=True, eq=False)
class PickedImages:
    """Image i of another loader's `indices` (a split without some of its images)."""
    load: Callable[[int], Image.Image]
    indices: List[int]

    def __call__(self, index: int) -> Image.Image:
        return self.load(self.indices[index])


def classes_without_images(classes: List[str], labels: List[int]) -> List[str]:
    """The classes of `classes` that no label names."""
    present = set(labels)
    return [cls for label, cls in enumerate(classes) if label not in present]


@dataclass
class Split:
    """One split of a data set: ids, labels and a way to load each raw image (any size)."""
    name: str                               # "train" or "test"
    classes: List[str]
    channels: int
    ids: List[str]
    labels: List[int]
    load: Callable[[int], Image.Image]
    true_boxes: Optional[List[Box]] = None   # synthetic only: the class pattern's box at model resolution
    cached: Optional[torch.Tensor] = None    # optional [N, C, H, W] uint8 at native size (fast path)
    parts: Optional["PartAnnotations"] = None   # synthetic sets: every part's box per image (interpretability)

    def __len__(self) -> int:
        return len(self.ids)

    def classes_without_images(self) -> List[str]:
        """The classes no image of this split is labelled with."""
        return classes_without_images(self.classes, self.labels)

    def hold_out(self, count: int) -> Tuple["Split", "Split"]:
        """(the split without its last `count` items, those items): a held-out part of the training data."""
        keep = len(self.ids) - count

        def part(name: str, items: slice) -> "Split":
            return Split(name, self.classes, self.channels, self.ids[items], self.labels[items],
                         ShiftedImages(self.load, keep) if items.start else self.load,
                         self.true_boxes[items] if self.true_boxes else None,
                         self.cached[items] if self.cached is not None else None,
                         self.parts.select(items) if self.parts is not None else None)

        return part(self.name, slice(0, keep)), part(f"{self.name}-holdout", slice(keep, None))

    def without(self, left_out: Sequence[int]) -> "Split":
        """The split without the images at `left_out` (image files that cannot be read). Only for splits read from
        files, which have no cached tensors, true boxes or part annotations to select along."""
        if self.cached is not None or self.true_boxes or self.parts is not None:
            raise ValueError(f"the {self.name} split is not read from files")
        dropped = set(left_out)
        kept = [i for i in range(len(self.ids)) if i not in dropped]
        return Split(self.name, self.classes, self.channels, [self.ids[i] for i in kept],
                     [self.labels[i] for i in kept], PickedImages(self.load, kept))

    def subset(self, limit: Optional[int]) -> "Split":
        if limit is None or limit >= len(self.ids):
            return self
        return Split(self.name, self.classes, self.channels, self.ids[:limit], self.labels[:limit], self.load,
                     self.true_boxes[:limit] if self.true_boxes else None,
                     self.cached[:limit] if self.cached is not None else None,
                     self.parts.select(slice(0, limit)) if self.parts is not None else None)


@dataclass
class PartAnnotations:
    """Where the parts are: the parts' names, the parts that define each class, and per image every part's box
    (part index, (x, y, width, height) at model resolution)."""
    names: List[str]
    class_parts: List[List[int]]
    boxes: List[List[Tuple[int, Box]]]

    def select(self, items: slice) -> "PartAnnotations":
        """The annotations of the images `items` selects, as Split.subset and Split.hold_out select them."""
        return PartAnnotations(self.names, self.class_parts, self.boxes[items])


@dataclass
class DataSource:
    name: str
    train: Split
    test: Split
    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)
    holdout: Optional[Split] = None          # training images kept out of training (--calibration-holdout)
    passed_over: List[str] = field(default_factory=list)   # files in the data folder the reader did not take, said at the start
    left_out: int = 0                        # image files that do not decode, left out (--skip-unreadable-images)

    @property
    def classes(self) -> List[str]:
        return self.train.classes

    @property
    def channels(self) -> int:
        return self.train.channels


def interpolation_mode(name: str) -> InterpolationMode:
    return {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
            "nearest": InterpolationMode.NEAREST}[name]


ImageSize = Union[int, Tuple[int, int]]   # a square's side in pixels, or (height, width)


def height_and_width(size: ImageSize) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class ImageSet(Dataset):
    """A split as tensors: (image [C, H, W] float in [0, 1], label, index). Training is square (one --image-size);
    `export --untrained` may ask for (height, width)."""

    def __init__(self, split: Split, image_size: ImageSize, interpolation: str = "bilinear",
                 augmentation: Optional[Callable] = None, contrast: str = "none"):
        self.split = split
        self.contrast = contrast    # contrast.py: applied last, after augmentation, as the service applies it
        self.height, self.width = height_and_width(image_size)
        self.resize = transforms.Resize((self.height, self.width), interpolation=interpolation_mode(interpolation))
        self.augmentation = augmentation
        self.to_tensor = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.split)

    def image(self, index: int) -> torch.Tensor:
        return apply_contrast(self.image_before_contrast(index), self.contrast)

    def image_before_contrast(self, index: int) -> torch.Tensor:
        """The image as the file gives it, resized (and augmented): what a renderer of new pictures starts from."""
        split = self.split
        if (split.cached is not None and self.augmentation is None
                and split.cached.shape[-2] == self.height and split.cached.shape[-1] == self.width):
            return split.cached[index].float().div_(255.0)
        picture = split.load(index)
        picture = picture.convert("L" if split.channels == 1 else "RGB")
        if picture.size != (self.width, self.height):
            picture = self.resize(picture)
        if self.augmentation is not None:
            picture = self.augmentation(picture)
        return self.to_tensor(picture)

    def __getitem__(self, index: int):
        return self.image(index), self.split.labels[index], index


def some_of(items: Sequence[str], shown: int, separator: str = ", ") -> str:
    """Items in a message: the first `shown`, and how many more."""
    more = f"{separator}and {len(items) - shown} more" if len(items) > shown else ""
    return separator.join(items[:shown]) + more


def name_list(classes: List[str]) -> str:
    """Class names in a message: the first four, and '...' for more."""
    return ", ".join(classes[:4]) + (", ..." if len(classes) > 4 else "")


def describe_classes(classes: List[str]) -> str:
    """A class list in an error: its count and its first names."""
    return f"{len(classes)} ({name_list(classes)})"


def require_same_classes(expected: Sequence[str], found: Sequence[str], owner: str, dataset: str) -> None:
    """Refuses a data set whose classes are not those of `owner` (a checkpoint, a bundle): in count, then in names and
    order, since a model's class k is the data set's class k."""
    if len(expected) != len(found):
        raise TrainerError(f"class-count mismatch: {owner} has {len(expected)} classes, data set {dataset} has {len(found)}")
    if list(expected) != list(found):
        raise TrainerError(f"class mismatch: {owner}'s classes are {describe_classes(list(expected))}, data set "
                           f"{dataset}'s are {describe_classes(list(found))}")



@dataclass
class Loaders:
    train: DataLoader
    push: DataLoader
    test: DataLoader
    train_set: ImageSet
    push_set: ImageSet
    test_set: ImageSet


class EpochCopies(Dataset):
    """One epoch of `copies` passes over a data set (`--epoch-copies`): item i is the set's item i mod its size, drawn
    (and augmented) afresh each time. Shuffled as a whole, every image comes `copies` times an epoch, as in the
    reference's epoch over 30 offline-augmented copies of each image."""

    def __init__(self, dataset: Dataset, copies: int):
        self.dataset = dataset
        self.copies = copies
        self.size = len(dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.size * self.copies

    def __getitem__(self, index: int):
        return self.dataset[index % self.size]


def epoch_set(train_set: Dataset, cfg: TrainConfig) -> Dataset:
    """What one training epoch draws from: the training set, `cfg.epoch_copies` times."""
    return EpochCopies(train_set, cfg.epoch_copies) if cfg.epoch_copies > 1 else train_set


def leave_interrupts_to_the_main_process(_worker_id: int) -> None:
    """A loader process ignores Ctrl-C: a terminal sends it to the whole process group, and a loader interrupted
    mid-batch printed tracebacks after the run had stopped cleanly. The main process stops the run and ends its loaders."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loaders(cfg: TrainConfig, source: DataSource) -> Loaders:
    train_set = ImageSet(source.train, cfg.image_size, cfg.interpolation, make_augmentation(cfg), cfg.contrast)
    push_set = ImageSet(source.train, cfg.image_size, cfg.interpolation, None, cfg.contrast)
    test_set = ImageSet(source.test, cfg.image_size, cfg.interpolation, None, cfg.contrast)
    workers = at_most_usable(cfg.num_workers, "--workers")
    quiet = leave_interrupts_to_the_main_process
    train = DataLoader(epoch_set(train_set, cfg), batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                       worker_init_fn=quiet)
    push = DataLoader(push_set, batch_size=cfg.push_batch_size, shuffle=False, num_workers=workers, worker_init_fn=quiet)
    test = DataLoader(test_set, batch_size=cfg.test_batch_size, shuffle=False, num_workers=workers, worker_init_fn=quiet)
    return Loaders(train, push, test, train_set, push_set, test_set)
