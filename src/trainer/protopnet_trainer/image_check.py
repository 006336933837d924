"""Every image file of a run decoded once before it trains. Files are otherwise first read when an epoch reaches them:
a truncated test image stopped a run after its first epoch, and one among the calibration hold-out after the last
epoch, with nothing published, and each further bad file took another run to find. Here all of them are found at
the start and named together; `--skip-unreadable-images` trains without them instead (a warning names them).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

from PIL import Image
from tqdm import tqdm

from .data import DataSource, FileImages, PickedImages, ShiftedImages, Split, some_of
from .errors import TrainerError
from .image_files import UnreadableImageError
from .runtime import usable_cpus

if TYPE_CHECKING:   # distributed.py imports torch.distributed; a check without a group needs none of it
    from .distributed import Group

# The parts of a data source a command reads: train reads them all, evaluate one split, the scorecard the test split.
EVERY_SPLIT = ("train", "holdout", "test")

# Named in an error or a warning, at most; the count says how many more.
LISTED = 10


def is_read_from_files(split: Split) -> bool:
    """Whether the split's images are files (ImageFolder, CUB-200), not arrays or drawn ones."""
    load = split.load
    while isinstance(load, (ShiftedImages, PickedImages)):
        load = load.load
    return isinstance(load, FileImages)


def path_of(split: Split, index: int) -> str:
    """The file of image `index` of a split read from files."""
    load = split.load
    while not isinstance(load, FileImages):
        index = index + load.offset if isinstance(load, ShiftedImages) else load.indices[index]
        load = load.load
    return load.paths[index]


def form_the_service_refuses(path: str) -> Optional[str]:
    """The name of a form of image file that the trainer reads (Pillow) but the service's decoder refuses, for the
    forms known to differ; None otherwise. Only TIFF files are opened again to look."""
    if not path.lower().endswith((".tif", ".tiff")):
        return None
    with Image.open(path) as picture:
        if picture.format != "TIFF":
            return None
        if picture.mode in TIFF_MODES_THE_SERVICE_REFUSES:
            return TIFF_MODES_THE_SERVICE_REFUSES[picture.mode]
        sample_format = picture.tag_v2.get(TIFF_SAMPLE_FORMAT, ())
        if TIFF_SIGNED_INTEGER in (sample_format if isinstance(sample_format, tuple) else (sample_format,)):
            return "signed-integer TIFF"
        if picture.mode == "I" and max(picture.tag_v2.get(TIFF_BITS_PER_SAMPLE, (1,))) == 32:
            return "32-bit integer TIFF"   # the service would scale what open_image clips to 16 bits: another picture
        if picture.mode.startswith("I;16") and picture.tag_v2.get(TIFF_BITS_PER_SAMPLE) == (12,):
            return "12-bit greyscale TIFF"   # open_image scales its levels as 16-bit ones (nearly black), the service 12 bits
        if (picture.tag_v2.get(TIFF_PLANAR_CONFIGURATION) == 2 and picture.tag_v2.get(TIFF_COMPRESSION, 1) == 1
                and 16 in picture.tag_v2.get(TIFF_BITS_PER_SAMPLE, ())):
            return "uncompressed planar 16-bit TIFF"   # Pillow reads its planes byte by byte as 8-bit samples
        if TIFF_TILE_OFFSETS in picture.tag_v2:
            return "tiled TIFF"
        if len(picture.tag_v2.get(TIFF_EXTRA_SAMPLES, ())) > 1:
            return "TIFF of several extra samples"
    return None


# Pillow's modes of TIFF files whose samples the service's decoder (ImageSharp) does not take.
TIFF_MODES_THE_SERVICE_REFUSES = {"CMYK": "CMYK TIFF", "LA": "grey-and-alpha TIFF", "PA": "palette-and-alpha TIFF",
                                  "RGBX": "RGBX TIFF", "LAB": "CIELab TIFF"}

TIFF_SAMPLE_FORMAT, TIFF_SIGNED_INTEGER = 339, 2   # samples as signed integers, which the service's decoder does not take
TIFF_BITS_PER_SAMPLE, TIFF_COMPRESSION, TIFF_PLANAR_CONFIGURATION = 258, 259, 284
TIFF_EXTRA_SAMPLES = 338   # the service's decoder takes one extra sample (alpha) at most

# Where a tiled TIFF's tiles lie: the service's decoder refuses a file that has them, and reads one in strips whatever
# tile sizes it also names.
TIFF_TILE_OFFSETS = 324


# Told how far the check got: (images checked, images to check), after each image. It may raise to stop the check.
OnChecked = Callable[[int, int], None]

# Images handed to the threads ahead of the one waited for, per thread: enough to keep them busy. (Executor.map hands
# out every one at once: a future per image of an ImageNet-sized set held in memory, and all of it to cancel.)
AHEAD_PER_THREAD = 4

T = TypeVar("T")


def in_order(pool: ThreadPoolExecutor, work: Callable[[int], T], count: int, ahead: int) -> Iterator[T]:
    """work(0), ..., work(count - 1), done in `pool`, in that order, with at most `ahead` of them handed out at once."""
    pending: Deque[Future] = deque()
    for index in range(count):
        pending.append(pool.submit(work, index))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


# What the check of one split found: (index, error) of each image that does not decode, and (index, path, form) of
# each that decodes in a form the service refuses, both in the split's order.
Found = Tuple[List[Tuple[int, UnreadableImageError]], List[Tuple[int, str, str]]]


def unreadable_images(split: Split, progress: bool, threads: int, on_checked: OnChecked, rank: int = 0,
                      ranks: int = 1) -> Found:
    """What the images of `split` that fall to `rank` of `ranks` (every `ranks`-th, from the `rank`-th) hold: those that
    do not decode and those in a form the service refuses. Decoded in `threads` threads (Pillow decodes without the
    interpreter lock) and thrown away: only whether each one decodes is kept. What `on_checked` raises stops the
    check after the images being decoded (a cancelled job does not wait for the rest)."""
    indices = range(rank, len(split), ranks)

    def attempt(position: int) -> Tuple[Optional[UnreadableImageError], Optional[Tuple[int, str, str]]]:
        index = indices[position]
        try:
            split.load(index)
        except UnreadableImageError as error:
            return error, None
        path = path_of(split, index)
        form = form_the_service_refuses(path)
        return None, (index, path, form) if form else None

    outcomes = []
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        for outcome in tqdm(in_order(pool, attempt, len(indices), ahead=AHEAD_PER_THREAD * threads),
                            total=len(indices), desc=f"checking {split.name} images", leave=False, disable=not progress):
            outcomes.append(outcome)
            on_checked(len(outcomes), len(indices))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    unreadable = [(indices[position], error) for position, (error, _) in enumerate(outcomes) if error is not None]
    refused = [refusal for _, refusal in outcomes if refusal is not None]
    return unreadable, refused


def found_by_every_rank(found: Dict[str, Found], group: "Group") -> Dict[str, Found]:
    """The findings of every rank's share of each split, merged in the split's order (on every rank). An error goes
    as its parts: what a rank raised is made again here."""
    def portable(unreadable: List[Tuple[int, UnreadableImageError]]) -> List[Tuple[int, str, str, str]]:
        return [(index, str(error), str(error.path), error.reason) for index, error in unreadable]

    shares = group.gather_objects({name: (portable(unreadable), refused) for name, (unreadable, refused) in found.items()})
    merged: Dict[str, Found] = {}
    for name in found:
        unreadable = sorted((entry for share in shares for entry in share[name][0]), key=lambda entry: entry[0])
        refused = sorted((entry for share in shares for entry in share[name][1]), key=lambda entry: entry[0])
        merged[name] = ([(index, UnreadableImageError(message, path, reason)) for index, message, path, reason in unreadable],
                        refused)
    return merged


def check_image_files(source: DataSource, skip: bool, root: Optional[str], progress: bool,
                      log: Callable[[str], None], parts: Sequence[str] = EVERY_SPLIT, threads: int = 0,
                      on_checked: Optional[OnChecked] = None, group: Optional["Group"] = None) -> DataSource:
    """`source` when every image file of its `parts` (of EVERY_SPLIT) decodes. Otherwise a TrainerError naming the
    files that do not, or, with `skip`, the source without them (a warning names them; `source.left_out` counts
    them). Paths are said relative to `root` (the --data folder). `threads`: 0 for one per usable CPU. In a
    distributed run (`group`) each rank decodes its share of the files and all of them learn what every rank found:
    one check shared out, not one whole check per rank."""
    by_part = {"train": source.train, "holdout": source.holdout, "test": source.test}
    splits = [by_part[part] for part in parts if by_part[part] is not None and is_read_from_files(by_part[part])]
    threads = threads or usable_cpus()
    checked = sum(len(split) for split in splits)
    rank, ranks = (group.rank, group.world_size) if group is not None else (0, 1)
    before = 0

    def counted(done: int, _: int) -> None:
        # This rank's share, counted as the whole: the ranks go at about one pace. What on_checked raises must be
        # raised on every rank alike (a cancel), or the others wait at the gather for this one: in a distributed run
        # it is the trainer's, which raises nothing; the worker's, which stops a cancelled job, runs one process.
        if on_checked is not None:
            on_checked(min(checked, before + done * ranks), checked)

    found: Dict[str, Found] = {}
    for split in splits:
        found[split.name] = unreadable_images(split, progress, threads, counted, rank, ranks)
        before += len(split)
    if group is not None:
        found = found_by_every_rank(found, group)
    failures = {name: unreadable for name, (unreadable, _) in found.items()}
    refused = [(path, form) for _, forms in found.values() for _, path, form in forms]
    bad = [error for errors in failures.values() for _, error in errors]

    def where(path: object) -> str:
        text = str(path)
        return os.path.relpath(text, root) if root and os.path.isabs(text) else text

    if refused:
        listed = some_of([f"{where(path)}: {form}" for path, form in refused], LISTED, "; ")
        log(f"warning: {len(refused)} of {checked} image files are in forms the service does not decode ({listed}): "
            f"the model learns from them, but a client cannot send such a file to it; converted to JPEG or PNG (here "
            f"too, so that training and serving see the same pixels) they can be")
    if not bad:
        return source

    listed = some_of([f"{where(error.path)}: {error.reason}" for error in bad], LISTED, "; ")
    if not skip:
        raise TrainerError(f"{len(bad)} of {checked} image files cannot be read ({listed}): replace or remove "
                           f"them, or pass --skip-unreadable-images to leave them out")
    log(f"warning: leaving out {len(bad)} of {checked} image files that cannot be read ({listed})")

    def without(split: Optional[Split]) -> Optional[Split]:
        if split is None or not failures.get(split.name):
            return split
        return split.without([index for index, _ in failures[split.name]])

    source.train, source.test, source.holdout = without(source.train), without(source.test), without(source.holdout)
    source.left_out = len(bad)
    return source
