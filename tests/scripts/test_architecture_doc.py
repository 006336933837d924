"""docs/ARCHITECTURE.md names the file of each stage: every file it names exists, so a move or rename updates the doc."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

REPOSITORY = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPOSITORY / "docs" / "ARCHITECTURE.md"
SERVICE = REPOSITORY / "src" / "ProtoPNet.Service"
INFERENCE = REPOSITORY / "src" / "ProtoPNet.Inference"
TRAINER = REPOSITORY / "src" / "trainer" / "protopnet_trainer"

# A path as the document writes it: folders, then a file name with the extension of a source file.
NAMED_FILE = re.compile(r"(?<![\w/.])((?:[\w.]+/)*[\w]+\.(?:cs|py|md|html|js|css))\b")


def resolve(named: str) -> Path:
    """The document's conventions: `Inference/...` is in ProtoPNet.Inference, other C# paths in ProtoPNet.Service,
    bare Python modules in the trainer package, `tests/...` and `docs/`-relative names from their own roots."""
    if named.startswith(("src/", "tests/")):
        return REPOSITORY / named
    if named.startswith("Inference/"):
        return INFERENCE / named[len("Inference/"):]
    if named.endswith(".py"):
        return TRAINER / named
    if named.endswith(".md"):
        return ARCHITECTURE.parent / named
    if "/" not in named and named.endswith((".html", ".js", ".css")):
        return SERVICE / "wwwroot" / named
    return SERVICE / named


def named_files() -> List[str]:
    return sorted(set(NAMED_FILE.findall(ARCHITECTURE.read_text(encoding="utf-8"))))


def test_the_document_names_the_stages_files() -> None:
    names = named_files()
    # Every stage from upload to JSON and from data to bundle: far more than a handful of files.
    assert len(names) >= 40, names
    for stage in ("ClassificationService.cs", "ImageDecoder.cs", "InferenceBatcher.cs", "Explainer.cs", "push.py",
                  "export.py", "publish.py"):
        assert any(name.endswith(stage) for name in names), f"{stage} is not named in docs/ARCHITECTURE.md"


def test_every_named_file_exists() -> None:
    missing = [name for name in named_files() if not resolve(name).is_file()]
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {missing}"
