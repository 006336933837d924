"""The Dockerfiles' stage arguments: a FROM line may only use an ARG declared before the first FROM (a later one is the
stage's own, empty there: the build fails), and podman and buildah, which pick the stages to build from the arguments
given rather than from the ARG's default, get every such argument from the compose file."""
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOCKERFILES = sorted(f for f in os.listdir(os.path.join(ROOT, "docker")) if f.endswith(".Dockerfile"))


def stage_arguments(path):
    """The arguments the FROM lines of the Dockerfile at `path` use, and those declared before its first FROM."""
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    first_from = next(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    declared = {re.match(r"ARG\s+(\w+)", line, re.I).group(1) for line in lines[:first_from] if line.upper().startswith("ARG ")}
    used = {name for line in lines if line.upper().startswith("FROM ") for name in re.findall(r"\$\{?(\w+)", line)}
    return used, declared


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_argument_a_from_line_uses_is_declared_before_the_first_from(dockerfile):
    used, declared = stage_arguments(os.path.join(ROOT, "docker", dockerfile))
    assert used <= declared, f"{dockerfile}: {sorted(used - declared)} used in FROM but not declared before the first FROM"


def test_the_compose_file_gives_every_stage_argument_of_the_images_it_builds():
    with open(os.path.join(ROOT, "docker-compose.yml"), encoding="utf-8") as f:
        compose = f.read()
    # Each build: its dockerfile line and the argument lines after it, up to the image line.
    builds = re.findall(r"dockerfile: docker/(\S+)\n(.*?)\n\s+image:", compose, re.S)
    assert len(builds) == 4
    for dockerfile, rest in builds:
        given = set(re.findall(r"^\s+(\w+): \S+$", rest.split("args:", 1)[1], re.M)) if "args:" in rest else set()
        used, _ = stage_arguments(os.path.join(ROOT, "docker", dockerfile))
        assert used <= given, f"docker-compose.yml builds {dockerfile} without {sorted(used - given)}"


def test_the_check_sees_an_argument_declared_too_late(tmp_path):
    late = tmp_path / "late.Dockerfile"
    late.write_text("FROM debian:12-slim AS a\nARG STAGE=a\nFROM ${STAGE} AS b\n")
    assert stage_arguments(str(late)) == ({"STAGE"}, set())
