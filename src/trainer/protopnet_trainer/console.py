"""The trainer's default log: one line on stdout, flushed at once, since runs are often followed through a log
file or a pipe."""


def say(line: str) -> None:
    print(line, flush=True)
