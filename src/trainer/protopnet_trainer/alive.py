"""The worker's liveness file, and the container health check that reads it.

A worker started with --alive-file (or PROTOPNET_WORKER_ALIVE_FILE, which the trainer images set) touches the file
from its main loop (between looks at the queue, every --poll seconds) and from its job's
heartbeat (every --heartbeat seconds), the same beat other workers judge its lease by. The check passes while the file
is younger than --max-age; a worker whose loop hangs (a jobs volume that stopped answering) or whose heartbeat died
goes unhealthy, and Kubernetes' liveness probe restarts it. Without the file, the container runs another command
(train, evaluate): there is no worker to judge, and the check passes.

    python3 -m protopnet_trainer.alive [--file PATH] [--max-age SECONDS]

Imports nothing heavy (no torch): the check runs every minute in every trainer container.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Tuple

ENVIRONMENT_VARIABLE = "PROTOPNET_WORKER_ALIVE_FILE"
DEFAULT_FILE = "/tmp/protopnet-worker.alive"
# Many beats at the worker's defaults (--poll 2, --heartbeat 5); a worker beating less often needs a larger one.
DEFAULT_MAX_AGE = 180.0


def touch(path: Optional[str]) -> Optional[str]:
    """Marks the worker alive now; a file that cannot be written is left alone: returns why (None when touched), for
    the worker to say once at its start, since the check cannot tell a file never made from a container without a worker."""
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8"):
            pass
        os.utime(path)
    except OSError as error:
        return error.strerror or str(error)
    return None


def check(path: str, max_age: float, now: Optional[float] = None) -> Tuple[bool, str]:
    """(healthy, one line saying why)."""
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except FileNotFoundError:
        return True, f"no worker in this container ({path} is absent)"
    except OSError as error:
        return False, f"{path} cannot be read: {error.strerror}"
    if age > max_age:
        return False, f"the worker has not beaten for {age:.0f} s (more than {max_age:.0f} s): its loop or heartbeat hangs"
    return True, f"the worker beat {age:.0f} s ago"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m protopnet_trainer.alive",
                                     description="Health check of a trainer container: is its worker alive?")
    parser.add_argument("--file", default=os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_FILE,
                        help=f"the worker's liveness file (${ENVIRONMENT_VARIABLE}, else {DEFAULT_FILE})")
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE, metavar="SECONDS",
                        help=f"unhealthy when the file is older than this ({DEFAULT_MAX_AGE:.0f})")
    args = parser.parse_args(argv)
    healthy, why = check(args.file, args.max_age)
    print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
