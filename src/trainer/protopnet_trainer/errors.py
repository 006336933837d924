"""The one exception type the CLI turns into a one-line error and a non-zero exit, and the faults told as one."""
import re
from typing import Dict


class TrainerError(Exception):
    """A problem with the user's input or environment (not a bug): reported as one line."""


def one_line(error: BaseException) -> str:
    """The error's own message. A DataLoader worker process (--workers N) raises its error again in the parent with the
    worker's whole traceback in the message ("Caught TrainerError in DataLoader worker process 1. Original Traceback
    ... TrainerError: <message>"): the message is its last line's."""
    text = str(error).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    marker = f"{type(error).__name__}: "
    return last.split(marker, 1)[1] if marker in last else last


# What the allocators say when memory runs out: torch on the CPU ("DefaultCPUAllocator: not enough memory: you tried to
# allocate N bytes", or "can't allocate memory"), CUDA and MPS ("... out of memory. Tried to allocate 2.00 GiB"),
# NumPy ("Unable to allocate 6.00 GiB for an array ...").
_OUT_OF_MEMORY_WORDS = ("out of memory", "not enough memory", "can't allocate memory", "unable to allocate")
_ALLOCATION_IN_BYTES = re.compile(r"allocate (\d+) bytes")
_ALLOCATION_IN_UNITS = re.compile(r"allocate (\d+(?:\.\d*)? ?[KMGT]i?B)")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed for want of memory (torch.cuda.OutOfMemoryError is matched by its
    name, so that this module does not import torch)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(words in text for words in _OUT_OF_MEMORY_WORDS)


def out_of_memory_advice(error: BaseException, image_size: int, batch_sizes: Dict[str, int]) -> str:
    """One line for a run that ran out of memory: where, how much it asked for when it did, and the options that size
    what it holds at once (`batch_sizes`: option -> its value now)."""
    text = str(error)
    device = "GPU" if "CUDA" in text or type(error).__name__ == "OutOfMemoryError" else "GPU (MPS)" if "MPS" in text else "CPU"
    in_bytes = _ALLOCATION_IN_BYTES.search(text)
    in_units = _ALLOCATION_IN_UNITS.search(text)
    asked = (f" (it asked for {_size(int(in_bytes.group(1)))} more)" if in_bytes
             else f" (it asked for {in_units.group(1)} more)" if in_units else "")
    batches = ", ".join(f"{option} (now {value})" for option, value in batch_sizes.items())
    return (f"ran out of memory on the {device}{asked}: lower a batch size, {batches}, or the input size, "
            f"--image-size (now {image_size})")


def _size(count: int) -> str:
    for unit, power in (("TiB", 40), ("GiB", 30)):
        if count >= 2 ** power:
            return f"{count / 2 ** power:.2f} {unit}"
    return f"{count / 2 ** 20:.1f} MiB"
