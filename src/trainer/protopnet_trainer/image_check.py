"""Every image file of a run decoded once before it trains. Files are otherwise first read when an epoch reaches them:
a truncated test image stopped a run after its first epoch, and one among the calibration hold-out after the last
epoch, with nothing published, and each further bad file took another run to find. Here all of them are found at
the start and named together; `--skip-unreadable-images` trains without them instead (a warning names them).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

from tqdm import tqdm

from .data import DataSource, FileImages, PickedImages, ShiftedImages, Split
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


def unreadable_images(split: Split, progress: bool, threads: int) -> List[Tuple[int, UnreadableImageError]]:
    """(index, error) of each image of `split` that does not decode, in the split's order. Decoded in `threads`
    threads (Pillow decodes without the interpreter lock) and thrown away: only whether each one decodes is kept."""
    def attempt(index: int) -> Optional[UnreadableImageError]:
        try:
            split.load(index)
        except UnreadableImageError as error:
            return error
        return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(tqdm(pool.map(attempt, range(len(split))), total=len(split), desc=f"checking {split.name} images",
                             leave=False, disable=not progress))
    return [(index, error) for index, error in enumerate(outcomes) if error is not None]


def check_image_files(source: DataSource, skip: bool, root: Optional[str], progress: bool,
                      log: Callable[[str], None], parts: Sequence[str] = EVERY_SPLIT, threads: int = 0) -> DataSource:
    """`source` when every image file of its `parts` (of EVERY_SPLIT) decodes. Otherwise a TrainerError naming the
    files that do not, or, with `skip`, the source without them (a warning names them). Paths are said relative to
    `root` (the --data folder). `threads`: 0 for one per usable CPU."""
    by_part = {"train": source.train, "holdout": source.holdout, "test": source.test}
    splits = [by_part[part] for part in parts if by_part[part] is not None and is_read_from_files(by_part[part])]
    threads = threads or usable_cpus()
    failures = {split.name: unreadable_images(split, progress, threads) for split in splits}
    bad = [(split_name, error) for split_name, found in failures.items() for _, error in found]
    if not bad:
        return source
    checked = sum(len(split) for split in splits)

    def where(path: object) -> str:
        text = str(path)
        return os.path.relpath(text, root) if root and os.path.isabs(text) else text

    listed = "; ".join(f"{where(error.path)}: {error.reason}" for _, error in bad[:LISTED])
    more = f"; and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
    if not skip:
        raise TrainerError(f"{len(bad)} of {checked} image files cannot be read ({listed}{more}): replace or remove "
                           f"them, or train with --skip-unreadable-images (a training job's option "
                           f"skipUnreadableImages) to leave them out")
    log(f"warning: leaving out {len(bad)} of {checked} image files that cannot be read ({listed}{more})")

    def without(split: Optional[Split]) -> Optional[Split]:
        if split is None or not failures.get(split.name):
            return split
        return split.without([index for index, _ in failures[split.name]])

    source.train, source.test, source.holdout = without(source.train), without(source.test), without(source.holdout)
    return source
