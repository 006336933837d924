"""Data sets: Fashion-MNIST (idx .gz), CUB-200-2011, ImageFolder and two synthetic generators.

Every data set is loaded as two `Split`s (train, test). An `ImageSet` view turns a split into tensors
in [0, 1] at the model's input size (stretch resize), with or without online augmentation. The push set
is the training split viewed without augmentation.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from .config import TrainConfig
from .contrast import apply_contrast
from .errors import TrainerError
from .image_files import open_image
from .product_shots import PolarityAugment
from .runtime import at_most_usable

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

Box = Tuple[int, int, int, int]  # x, y, width, height in pixels of the model input


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

    @property
    def classes(self) -> List[str]:
        return self.train.classes

    @property
    def channels(self) -> int:
        return self.train.channels


def interpolation_mode(name: str) -> InterpolationMode:
    return {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
            "nearest": InterpolationMode.NEAREST}[name]


class ImageSet(Dataset):
    """A split as tensors: (image [C, H, W] float in [0, 1], label, index)."""

    def __init__(self, split: Split, image_size: int, interpolation: str = "bilinear",
                 augmentation: Optional[Callable] = None, contrast: str = "none"):
        self.split = split
        self.contrast = contrast    # contrast.py: applied last, after augmentation, as the service applies it
        self.image_size = image_size
        self.resize = transforms.Resize((image_size, image_size), interpolation=interpolation_mode(interpolation))
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
                and split.cached.shape[-1] == self.image_size and split.cached.shape[-2] == self.image_size):
            return split.cached[index].float().div_(255.0)
        picture = split.load(index)
        picture = picture.convert("L" if split.channels == 1 else "RGB")
        if picture.size != (self.image_size, self.image_size):
            picture = self.resize(picture)
        if self.augmentation is not None:
            picture = self.augmentation(picture)
        return self.to_tensor(picture)

    def __getitem__(self, index: int):
        return self.image(index), self.split.labels[index], index


def make_augmentation(cfg: TrainConfig) -> Optional[Callable]:
    """The training set's online augmentation (the push and test sets are never augmented).

    paper: the online equivalent of the reference's offline augmentation, whose 30 copies of an image each had one of
    rotation (up to 15 degrees), skew (perspective, 0.2) or shear (up to 10 degrees), then a left-right flip half the
    time: here each draw takes one of the three, then the flip. Unlike the reference's Augmentor, which zooms the
    rotated or sheared image to cut off the corners it uncovers, those corners are black here.
    crop-flip: a random crop of the image padded with `crop_padding` black pixels, and a left-right flip (small
    centred images such as Fashion-MNIST, where rotation and shear move garments off their usual pose).
    """
    if not cfg.augment:
        return None
    steps = _shape_augmentation(cfg)
    if cfg.polarity_augment > 0:   # after the crop: its black padding becomes the product shot's light ground
        steps.append(PolarityAugment(cfg.polarity_augment))
    return transforms.Compose(steps) if steps else None


def add_training_noise(images: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """A batch [N, C, H, W] in [0, 1] with Gaussian noise of a sigma drawn per image from [0, max_sigma], clipped
    to [0, 1] (torch's global generator, which the trainer seeds per epoch). Applied to the training batches, so a
    model learns to read through the sensor noise the scorecard's stability measure adds."""
    if max_sigma <= 0:
        return images
    sigma = torch.rand(images.shape[0], 1, 1, 1, device=images.device) * max_sigma
    return (images + sigma * torch.randn_like(images)).clamp_(0.0, 1.0)


def _shape_augmentation(cfg: TrainConfig) -> List[Callable]:
    steps: List[Callable] = []
    if cfg.augmentation == "none":
        return steps
    if cfg.augmentation == "crop-flip":
        if cfg.crop_padding > 0:
            steps.append(transforms.RandomCrop(cfg.image_size, padding=cfg.crop_padding, fill=0))
        if cfg.flip:
            steps.append(transforms.RandomHorizontalFlip())
        return steps
    one_of: List[Callable] = []
    if cfg.rotation_degrees > 0:
        one_of.append(transforms.RandomRotation(cfg.rotation_degrees))
    if cfg.skew > 0:
        one_of.append(transforms.RandomPerspective(distortion_scale=cfg.skew, p=1.0))
    if cfg.shear_degrees > 0:
        one_of.append(transforms.RandomAffine(degrees=0, shear=(-cfg.shear_degrees, cfg.shear_degrees)))
    if one_of:
        steps.append(transforms.RandomChoice(one_of))
    if cfg.flip:
        steps.append(transforms.RandomHorizontalFlip())
    return steps


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


# ---------------------------------------------------------------------------------------------- ImageFolder

def load_imagefolder(folder: Optional[str], jpeg_draft_size: Optional[Tuple[int, int]] = None) -> DataSource:
    if not folder:
        raise TrainerError("imagefolder: pass the folder holding train/ and test/ with --data")
    splits = {}
    for name in ("train", "test"):
        root = os.path.join(folder, name)
        if not os.path.isdir(root):
            raise TrainerError(f"imagefolder: missing folder {root}")
        # Hidden folders and the one macOS adds to a zip (__MACOSX) are not classes.
        classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                         and not d.startswith(".") and d != "__MACOSX")
        if not classes:
            raise TrainerError(f"imagefolder: {root} has no class folders")
        per_class = [[f"{cls}/{file}" for file in sorted(os.listdir(os.path.join(root, cls)))
                      if file.lower().endswith(IMAGE_EXTENSIONS)] for cls in classes]
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
        raise TrainerError(f"imagefolder: train has {len(splits['train'][1])} classes, test has "
                           f"{len(splits['test'][1])} (the class folders must match; only in train: "
                           f"{', '.join(only_train) or 'none'}; only in test: {', '.join(only_test) or 'none'})")
    if len(splits["train"][1]) < 2:
        raise TrainerError(f"imagefolder: {splits['train'][0]} has one class folder; a classifier needs two or more")

    def make(name: str) -> Split:
        root, classes, ids, labels = splits[name]
        return Split(name, classes, 3, ids, labels, FileImages([os.path.join(root, i) for i in ids], jpeg_draft_size))

    return DataSource("imagefolder", make("train"), make("test"), mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))


# ---------------------------------------------------------------------------------------------- synthetic

SYNTHETIC_COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 240], [240, 200, 30], [200, 50, 220],
                              [30, 210, 220], [250, 130, 20], [140, 90, 40], [250, 250, 250], [120, 120, 255]],
                             dtype=np.float32)


MAX_SYNTHETIC_CLASSES = 256  # 3x3 shapes with at least 5 cells on
MAX_SYNTHETIC_BYTES = 1 << 30  # one split's RGB images; held twice while training (as drawn, and as a tensor)


def check_synthetic_size(split_name: str, count: int, image_size: int) -> None:
    """Refuses a generated split too large to hold, before any of it is drawn."""
    needed = count * image_size * image_size * 3
    if needed > MAX_SYNTHETIC_BYTES:
        raise TrainerError(f"synthetic: the {split_name} split's {count} images of {image_size}x{image_size} would take "
                           f"{needed / 2 ** 30:.1f} GiB (limit {MAX_SYNTHETIC_BYTES / 2 ** 30:.0f} GiB): use fewer images "
                           f"per class or a smaller --image-size")


def _class_patterns(num_classes: int, seed: int) -> List[np.ndarray]:
    """A distinct 3x3 binary shape per class (at least 5 cells on), fixed by the seed."""
    rng = np.random.RandomState(10007 + seed)
    shapes: List[np.ndarray] = []
    seen = set()
    while len(shapes) < num_classes:
        shape = rng.rand(3, 3) < 0.6
        key = shape.tobytes()
        if shape.sum() < 5 or key in seen:
            continue
        seen.add(key)
        shapes.append(shape)
    return shapes


def generate_synthetic(num_classes: int, per_class: int, image_size: int, channels: int, seed: int,
                       split_name: str, noise: float = 25.0) -> Split:
    """Small images whose class is decided by one local pattern at a random position among distractors.

    The pattern is a class-specific 3x3 shape in a class colour; distractors are solid squares of random
    colours (never a class shape). The pattern's true box is recorded at model resolution.
    """
    if num_classes < 2 or num_classes > MAX_SYNTHETIC_CLASSES:
        raise TrainerError(f"synthetic: number of classes must be between 2 and {MAX_SYNTHETIC_CLASSES}")
    cell = max(1, image_size // 16)
    size = 3 * cell
    shapes = _class_patterns(num_classes, seed)
    rng = np.random.RandomState((seed * 7919 + (0 if split_name == "train" else 104729)) % (2 ** 31))
    count = num_classes * per_class
    check_synthetic_size(split_name, count, image_size)
    images = np.zeros((count, image_size, image_size, 3), dtype=np.uint8)
    labels: List[int] = []
    boxes: List[Box] = []
    for n in range(count):
        label = n % num_classes
        canvas = np.zeros((image_size, image_size, 3), dtype=np.float32)   # drawn in float, kept as 8 bits
        canvas += rng.uniform(0, 40, size=(1, 1, 3)) + rng.uniform(0, noise, size=canvas.shape)
        for _ in range(3):  # distractors
            side = rng.randint(max(2, size // 2), size + 2)
            y, x = rng.randint(0, image_size - side + 1, size=2)
            canvas[y:y + side, x:x + side] = rng.uniform(60, 255, size=3)
        colour = SYNTHETIC_COLOURS[label % len(SYNTHETIC_COLOURS)]
        mask = np.kron(shapes[label], np.ones((cell, cell), dtype=bool))
        y, x = rng.randint(0, image_size - size + 1, size=2)
        patch = canvas[y:y + size, x:x + size]
        patch[mask] = colour
        patch[~mask] = 0.0
        images[n] = np.clip(canvas, 0, 255).astype(np.uint8)
        labels.append(label)
        boxes.append((int(x), int(y), size, size))
    if channels == 1:
        grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        images = np.clip(grey, 0, 255).astype(np.uint8)[..., None]
    cached = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    classes = [f"pattern-{k}" for k in range(num_classes)]
    parts = PartAnnotations(list(classes), [[k] for k in range(num_classes)],
                            [[(label, box)] for label, box in zip(labels, boxes)])   # one part: the pattern
    return Split(split_name, classes, channels, [f"{split_name}-{n}" for n in range(count)], labels,
                 ArrayImages(images), true_boxes=boxes, cached=cached, parts=parts)


def load_synthetic(cfg: TrainConfig) -> DataSource:
    if cfg.synthetic_channels not in (1, 3):
        raise TrainerError("synthetic: channels must be 1 or 3")
    train = generate_synthetic(cfg.synthetic_classes, cfg.synthetic_train_per_class, cfg.image_size,
                               cfg.synthetic_channels, cfg.seed, "train")
    test = generate_synthetic(cfg.synthetic_classes, cfg.synthetic_test_per_class, cfg.image_size,
                              cfg.synthetic_channels, cfg.seed, "test")
    mean, std = ([0.2], [0.3]) if cfg.synthetic_channels == 1 else ([0.2, 0.2, 0.2], [0.3, 0.3, 0.3])
    return DataSource("synthetic", train, test, mean=mean, std=std)


def load_synthetic_parts(cfg: TrainConfig) -> DataSource:
    """RGB images whose classes are combinations of parts, with every part's box (synthetic_parts.py)."""
    from . import synthetic_parts

    def make(name: str, per_class: int) -> Split:
        check_synthetic_size(name, cfg.synthetic_classes * per_class, cfg.image_size)
        generated = synthetic_parts.generate_parts(cfg.synthetic_classes, per_class, cfg.image_size, cfg.seed, name)
        images = generated.images
        cached = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        names = synthetic_parts.PART_NAMES
        classes = ["+".join(names[p] for p in parts) for parts in synthetic_parts.class_parts(cfg.synthetic_classes)]
        annotations = PartAnnotations(list(names), synthetic_parts.class_parts(cfg.synthetic_classes),
                                      generated.parts)
        return Split(name, classes, 3, [f"{name}-{n}" for n in range(len(images))], generated.labels,
                     ArrayImages(images), cached=cached, parts=annotations)

    train = make("train", cfg.synthetic_train_per_class)
    test = make("test", cfg.synthetic_test_per_class)
    mean = (train.cached.float().mean(dim=(0, 2, 3)) / 255.0).tolist()
    std = (train.cached.float().std(dim=(0, 2, 3)) / 255.0).tolist()
    return DataSource("synthetic-parts", train, test, mean=[round(v, 3) for v in mean], std=[round(v, 3) for v in std])


# ---------------------------------------------------------------------------------------------- entry points

DATASETS = ("fashion-mnist", "cub200", "imagefolder", "synthetic", "synthetic-parts")


def name_list(classes: List[str]) -> str:
    """Class names in a message: the first four, and '...' for more."""
    return ", ".join(classes[:4]) + (", ..." if len(classes) > 4 else "")


def describe_classes(classes: List[str]) -> str:
    """A class list in an error: its count and its first names."""
    return f"{len(classes)} ({name_list(classes)})"


def load_data_source(cfg: TrainConfig) -> DataSource:
    if cfg.dataset == "fashion-mnist":
        source = load_fashion_mnist(cfg.data)
    elif cfg.dataset == "cub200":
        source = load_cub200(cfg.data, cfg.crop_to_box, cfg.jpeg_draft_size)
    elif cfg.dataset == "imagefolder":
        source = load_imagefolder(cfg.data, cfg.jpeg_draft_size)
    elif cfg.dataset == "synthetic":
        source = load_synthetic(cfg)
    elif cfg.dataset == "synthetic-parts":
        source = load_synthetic_parts(cfg)
    else:
        raise TrainerError(f"unknown dataset '{cfg.dataset}' (choose from {', '.join(DATASETS)})")
    source.train = source.train.subset(cfg.train_limit)
    source.test = source.test.subset(cfg.test_limit)
    if cfg.calibration_holdout:
        if cfg.calibration_holdout >= len(source.train):
            raise TrainerError(f"--calibration-holdout {cfg.calibration_holdout} leaves no training images "
                               f"(the training split has {len(source.train)}): hold out fewer, or 0 for a bundle "
                               f"without an unfamiliarity calibration")
        source.train, source.holdout = source.train.hold_out(cfg.calibration_holdout)
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
        raise TrainerError(f"{cfg.dataset}: {len(untrained)} of {len(source.classes)} classes have no training images"
                           f"{' left after ' + ' and '.join(cut) if cut else ''} ({name_list(untrained)}); every class "
                           f"needs some")
    return source


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


def make_loaders(cfg: TrainConfig, source: DataSource, generator: Optional[torch.Generator] = None) -> Loaders:
    train_set = ImageSet(source.train, cfg.image_size, cfg.interpolation, make_augmentation(cfg), cfg.contrast)
    push_set = ImageSet(source.train, cfg.image_size, cfg.interpolation, None, cfg.contrast)
    test_set = ImageSet(source.test, cfg.image_size, cfg.interpolation, None, cfg.contrast)
    workers = at_most_usable(cfg.num_workers, "--workers")
    train = DataLoader(epoch_set(train_set, cfg), batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                       generator=generator)
    push = DataLoader(push_set, batch_size=cfg.push_batch_size, shuffle=False, num_workers=workers)
    test = DataLoader(test_set, batch_size=cfg.test_batch_size, shuffle=False, num_workers=workers)
    return Loaders(train, push, test, train_set, push_set, test_set)


def class_counts(labels: Sequence[int], num_classes: int) -> List[int]:
    counts = [0] * num_classes
    for label in labels:
        counts[label] += 1
    return counts
