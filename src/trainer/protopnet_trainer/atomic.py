"""Writing a file so that readers see the old file or the whole new one, never a part: the one way the trainer
writes checkpoints, the baseline result and the bundle manifest."""
from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path` to write to; when the block ends without an error the file is
    flushed to disk and renamed over `path`. On an error the temporary file is removed and `path` is untouched."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # A per-process name: two processes writing the same file never share a temporary file.
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomically(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def finite(value: Any) -> Any:
    """The value with every NaN or infinity (a diverged loss, say) as None: JSON has no such numbers, and a reader
    that follows the standard (the service's) refuses the whole file for one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json_atomically(path: str, value: Any) -> None:
    write_text_atomically(path, json.dumps(finite(value), indent=2, allow_nan=False))
