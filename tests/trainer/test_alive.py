"""The worker's liveness file and the trainer images' health check that reads it (alive.py)."""
import os
import subprocess
import sys
import threading
import time

import pytest

from protopnet_trainer import alive
from protopnet_trainer.cli import build_parser
from protopnet_trainer.job_options import JobOptions

from test_worker import make_worker, queue_job

TRAINER = os.path.join(os.path.dirname(__file__), "..", "..", "src", "trainer")


@pytest.fixture(scope="module")
def options():
    return JobOptions.from_parser(build_parser())


def test_the_check_passes_while_the_file_is_young_and_fails_once_it_is_old(tmp_path):
    path = str(tmp_path / "alive")
    alive.touch(path)
    assert alive.check(path, max_age=180)[0]
    old = time.time() - 600
    os.utime(path, (old, old))
    healthy, why = alive.check(path, max_age=180)
    assert not healthy and "has not beaten for 600 s" in why


def test_without_the_file_there_is_no_worker_to_judge(tmp_path):
    healthy, why = alive.check(str(tmp_path / "absent"), max_age=180)
    assert healthy and "no worker in this container" in why


def test_the_health_check_command_exits_by_the_file_named_in_the_environment(tmp_path):
    path = tmp_path / "alive"
    environment = {**os.environ, "PYTHONPATH": TRAINER, alive.ENVIRONMENT_VARIABLE: str(path)}

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "protopnet_trainer.alive", *argv], env=environment,
                              capture_output=True, text=True, timeout=60)

    alive.touch(str(path))
    assert run().returncode == 0
    os.utime(path, (time.time() - 200, time.time() - 200))
    failed = run()
    assert failed.returncode == 1 and "has not beaten" in failed.stdout
    assert run("--max-age", "300").returncode == 0
    # Cheap enough to run every minute: it does not import torch.
    imports = subprocess.run([sys.executable, "-c", "import sys, protopnet_trainer.alive; print('torch' in sys.modules)"],
                             env=environment, capture_output=True, text=True, timeout=60)
    assert imports.stdout.strip() == "False"


def test_the_worker_takes_its_alive_file_from_the_environment(monkeypatch):
    monkeypatch.setenv(alive.ENVIRONMENT_VARIABLE, "/tmp/somewhere.alive")
    args = build_parser().parse_args(["worker", "--jobs", "j", "--models", "m"])
    assert args.alive_file == "/tmp/somewhere.alive"


def test_the_workers_loop_and_its_jobs_heartbeat_keep_the_file_fresh(tmp_path, options, monkeypatch):
    path = str(tmp_path / "alive")
    touched_by = []
    touch = alive.touch

    def recording_touch(target):
        if target == path:
            touched_by.append(threading.current_thread().name)
        touch(target)

    monkeypatch.setattr(alive, "touch", recording_touch)
    queue_job(str(tmp_path / "jobs"), "job-1")
    make_worker(tmp_path, options, alive_file=path).run()
    assert "MainThread" in touched_by
    assert any(name.startswith("heartbeat-job-1") for name in touched_by), touched_by
    assert alive.check(path, max_age=180)[0]


def test_a_worker_whose_alive_file_cannot_be_written_says_so_at_its_start(tmp_path, options):
    # The check passes while the file is absent (no worker to judge): a worker that can never make it would pass for
    # good, hung or not, and nothing said why.
    lines = []
    path = str(tmp_path / "no-such-folder" / "alive")
    make_worker(tmp_path, options, log=lines.append, alive_file=path).run()
    warned = [line for line in lines if line.startswith(f"warning: --alive-file {path} cannot be written (")]
    assert len(warned) == 1, lines
    assert "finds no file and passes, whether this worker beats or hangs" in warned[0]
    lines.clear()
    make_worker(tmp_path, options, log=lines.append, alive_file=str(tmp_path / "alive")).run()
    assert not any("--alive-file" in line for line in lines), lines
