"""The trainer command lines the deployment files run are ones the trainer accepts, with the options they need."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import List

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "src" / "trainer"))

from protopnet_trainer.cli import build_parser  # noqa: E402


def pytorchjob_args() -> List[str]:
    """The PyTorchJob container's args after torchrun's "-m protopnet_trainer" (a YAML list of quoted strings)."""
    text = (REPOSITORY / "deploy" / "kubernetes" / "training" / "pytorchjob.yaml").read_text(encoding="utf-8")
    block = text.split("args:", 1)[1].split("env:", 1)[0]
    args = re.findall(r'^\s*- "([^"]*)"', block, flags=re.MULTILINE)
    assert args[:2] == ["-m", "protopnet_trainer"], args
    return args[2:]


def flow_list(path: Path, key: str) -> List[str]:
    """A one-line YAML flow list ('key: ["a", "b"]'), which is JSON."""
    line = next(line for line in path.read_text(encoding="utf-8").splitlines() if line.strip().startswith(f"{key}: ["))
    return json.loads(line.split(":", 1)[1])


def test_the_pytorchjob_resumes_a_run_a_new_pod_takes_over() -> None:
    args = build_parser().parse_args(pytorchjob_args())

    assert args.command == "train"
    # A pod started anew is not a torchrun restart: without --resume it would clear the run folder.
    assert args.resume
    assert args.run_dir and str(args.run_dir).startswith("/runs/")
    assert str(args.models) == "/models"


def test_the_worker_command_lines_are_the_trainers() -> None:
    for path, key in ((REPOSITORY / "deploy" / "kubernetes" / "base" / "worker-deployment.yaml", "args"),
                      (REPOSITORY / "docker-compose.yml", "command")):
        args = build_parser().parse_args(flow_list(path, key))
        assert args.command == "worker", path
        assert (str(args.jobs), str(args.models), str(args.runs)) == ("/jobs", "/models", "/runs"), path
