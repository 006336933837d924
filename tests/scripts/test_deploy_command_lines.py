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


def test_the_pytorchjob_forms_only_groups_its_recipe_can_split_its_batch_among() -> None:
    from protopnet_trainer.config import preset_config
    text = (REPOSITORY / "deploy" / "kubernetes" / "training" / "pytorchjob.yaml").read_text(encoding="utf-8")

    def value(key: str) -> int:
        return int(re.search(rf'^\s*{key}: "?(\d+)"?', text, flags=re.MULTILINE).group(1))

    # A range of pods would let a group of another size form after a pod is lost (3 of 4: 80 does not divide by 3).
    assert value("minReplicas") == value("maxReplicas") == value("replicas")
    args = build_parser().parse_args(pytorchjob_args())
    processes = value("replicas") * value("nprocPerNode")
    assert preset_config(args.preset).batch_size % processes == 0


def test_the_workers_liveness_probe_finds_python_in_either_trainer_image() -> None:
    # The GPU overlay swaps in an image whose Python is /opt/conda's (pytorch/pytorch), not /usr/bin/python3: the probe
    # names the interpreter as both images' PATH has it.
    command = flow_list(REPOSITORY / "deploy" / "kubernetes" / "base" / "worker-deployment.yaml", "command")
    assert command[:3] == ["python3", "-m", "protopnet_trainer.alive"], command
    gpu = (REPOSITORY / "docker" / "trainer-gpu.Dockerfile").read_text(encoding="utf-8")
    assert "FROM pytorch/pytorch" in gpu and "/usr/bin/python3" not in gpu
