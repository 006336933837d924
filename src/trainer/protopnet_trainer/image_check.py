"""Every image file of a run decoded once before it trains. Files are otherwise first read when an epoch reaches them:
a truncated test image stopped a run after its first epoch, and one among the calibration hold-out after the last
epoch, with nothing published, and each further bad file took another run to find. Here all of them are found at
the start and named together; `--skip-unreadable-images` trains without them instead (a warning names them).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Iterator, List, Optional, Sequence, Tuple, TypeVar

from PIL import Image
from tqdm import tqdm

from .data import DataSource, FileImages, PickedImages, ShiftedImages, Split, some_of
from .errors import TrainerError
from .image_files import UnreadableImageError
from .runtime import usable_cpus

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
    forms known to differ; None otherwise. Only TIFF and WebP files are opened again to look."""
    if not path.lower().endswith((".tif", ".tiff", ".webp")):
        return None
    with Image.open(path) as picture:
        if picture.format == "TIFF" and picture.mode == "CMYK":
            return "CMYK TIFF"
        if picture.format == "WEBP" and getattr(picture, "n_frames", 1) > 1:
            return "animated WebP"
    return None


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


def unreadable_images(split: Split, progress: bool, threads: int, on_checked: OnChecked
                      ) -> Tuple[List[Tuple[int, UnreadableImageError]], List[Tuple[str, str]]]:
    """(index, error) of each image of `split` that does not decode, in the split's order, and (path, form) of each
    that decodes but in a form the service refuses. Decoded in `threads` threads (Pillow decodes without the
    interpreter lock) and thrown away: only whether each one decodes is kept. What `on_checked` raises stops the
    check after the images being decoded (a cancelled job does not wait for the rest)."""
    def attempt(index: int) -> Tuple[Optional[UnreadableImageError], Optional[Tuple[str, str]]]:
        try:
            split.load(index)
        except UnreadableImageError as error:
            return error, None
        path = path_of(split, index)
        form = form_the_service_refuses(path)
        return None, (path, form) if form else None

    outcomes = []
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        for outcome in tqdm(in_order(pool, attempt, len(split), ahead=AHEAD_PER_THREAD * threads), total=len(split),
                            desc=f"checking {split.name} images", leave=False, disable=not progress):
            outcomes.append(outcome)
            on_checked(len(outcomes), len(split))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    unreadable = [(index, error) for index, (error, _) in enumerate(outcomes) if error is not None]
    refused = [refusal for _, refusal in outcomes if refusal is not None]
    return unreadable, refused


def check_image_files(source: DataSource, skip: bool, root: Optional[str], progress: bool,
                      log: Callable[[str], None], parts: Sequence[str] = EVERY_SPLIT, threads: int = 0,
                      on_checked: Optional[OnChecked] = None) -> DataSource:
    """`source` when every image file of its `parts` (of EVERY_SPLIT) decodes. Otherwise a TrainerError naming the
    files that do not, or, with `skip`, the source without them (a warning names them; `source.left_out` counts
    them). Paths are said relative to `root` (the --data folder). `threads`: 0 for one per usable CPU."""
    by_part = {"train": source.train, "holdout": source.holdout, "test": source.test}
    splits = [by_part[part] for part in parts if by_part[part] is not None and is_read_from_files(by_part[part])]
    threads = threads or usable_cpus()
    checked = sum(len(split) for split in splits)
    before = 0

    def counted(done: int, _: int) -> None:
        if on_checked is not None:
            on_checked(before + done, checked)

    found = {}
    for split in splits:
        found[split.name] = unreadable_images(split, progress, threads, counted)
        before += len(split)
    failures = {name: unreadable for name, (unreadable, _) in found.items()}
    refused = [entry for _, forms in found.values() for entry in forms]
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
                           f"them, or train with --skip-unreadable-images to leave them out")
    log(f"warning: leaving out {len(bad)} of {checked} image files that cannot be read ({listed})")

    def without(split: Optional[Split]) -> Optional[Split]:
        if split is None or not failures.get(split.name):
            return split
        return split.without([index for index, _ in failures[split.name]])

    source.train, source.test, source.holdout = without(source.train), without(source.test), without(source.holdout)
    source.left_out = len(bad)
    return source
