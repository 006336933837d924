"""Ctrl-C and SIGTERM, also where torch's C++ code has turned them into a RuntimeError."""
from typing import Optional


class Terminated(KeyboardInterrupt):
    """SIGTERM (a container stopped, `kill`), handled as Ctrl-C is: whatever was being published is removed."""


def disguised_interrupt(error: BaseException) -> Optional[KeyboardInterrupt]:
    """The interrupt a RuntimeError stands for, or None. A signal whose handler raises while torch runs C++ code (the
    ONNX exporter, importing torch) comes back as RuntimeError("KeyboardInterrupt: <EMPTY MESSAGE>"), or "Terminated:
    ..." for ours; caught as an ordinary error, the stop would be lost."""
    if not isinstance(error, RuntimeError):
        return None
    first = str(error).strip().split("\n", 1)[0]
    if first.startswith("Terminated:") or first == "Terminated":
        return Terminated()
    if first.startswith("KeyboardInterrupt:") or first == "KeyboardInterrupt":
        return KeyboardInterrupt()
    return None


def raise_if_interrupt(error: BaseException) -> None:
    """Raises the interrupt `error` stands for (see disguised_interrupt); returns otherwise."""
    interrupt = disguised_interrupt(error)
    if interrupt is not None:
        raise interrupt from error
