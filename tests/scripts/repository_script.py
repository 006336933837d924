"""The repository's scripts (scripts/, benchmarks/) are files, not an installed package: their tests load one as a
module by its path."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPOSITORY = Path(__file__).resolve().parents[2]


def load_script(relative_path: str) -> ModuleType:
    """The script at `relative_path` from the repository root, run as a module named after its file (and registered
    under that name: a dataclass looks its module up in sys.modules)."""
    path = REPOSITORY / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
