#!/usr/bin/env python3
"""Where a running process's CPU goes, by thread, sampled from /proc (Linux; no profiler needed).

    benchmarks/threads.py <pid> [--interval 1] [--seconds 60]

Prints one line per interval until the process ends or --seconds pass: the process's thread count, its CPU in that
interval (100 % = one core) and its threads grouped by name (as the kernel keeps it: 15 characters, e.g. ".NET TP Worker",
".NET Sockets", "onnxruntime"), busiest first, each as name x count: CPU %. A thread pool that grows by a thread or two
a second while the CPU stays low is starved (threads blocked); one group near 100 % per thread is spinning or busy.
"""
import argparse
import os
import time


def thread_times(pid: int) -> dict[int, tuple[str, int]]:
    """Each thread's name and CPU ticks (user + system) so far."""
    threads = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return threads
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                text = stat.read()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        # The name is in parentheses and may hold spaces: the fields after it are split on spaces.
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        threads[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return threads


def describe(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]], seconds: float, ticks: int) -> str:
    groups: dict[str, list[float]] = {}
    for tid, (name, used) in after.items():
        previous = before[tid][1] if tid in before else 0   # a thread born in the interval: all its CPU
        groups.setdefault(name, []).append((used - previous) / ticks / seconds * 100)
    total = sum(sum(values) for values in groups.values())
    busiest = sorted(groups.items(), key=lambda item: -sum(item[1]))
    parts = [f"{name} x{len(values)}: {sum(values):.0f} %" for name, values in busiest[:8]]
    return f"threads {len(after)}, CPU {total:.0f} %; " + ", ".join(parts)


def main(args: argparse.Namespace) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    before = thread_times(args.pid)
    while before and time.monotonic() - started < args.seconds:
        time.sleep(args.interval)
        after = thread_times(args.pid)
        if not after:
            break
        print(f"+{time.monotonic() - started:6.1f} s {describe(before, after, args.interval, ticks)}", flush=True)
        before = after


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
