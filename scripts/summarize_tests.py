"""Prints the closing line of a test run, 'tests: N passed, N failed', and exits 1 when N failed is not 0.

It counts the JUnit XML (pytest) and TRX (dotnet test) files in the results folder. scripts/test.sh also records every
stage there (stages.tsv: name, exit status, the result files the stage should write, how many): a stage that failed
without a failed test in its results (a NuGet restore, the smoke training, a `dotnet test` whose build broke or whose
test host died) counts as one failure, and so does every result file a stage should have written but did not, or
that cannot be read. A run that never got to its tests therefore never reads as '0 failed'. A skipped test (pytest's
skip or xfail, xUnit's Skip) counts as failed too: the project has none, and a test that does not run proves nothing.

Above the closing line it names every failed test with the first lines of its message, so that the tail of a CI log
(often all that is kept of it) says which test failed and why.
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Set, Tuple

STAGES_FILE = "stages.tsv"
RESULT_PATTERNS = ("*.xml", "*.trx")
# TRX run outcomes that mean the run went wrong even when no test is counted as failed.
BROKEN_TRX_OUTCOMES = {"Failed", "Error", "Aborted", "Timeout"}
FAILED_TRX_OUTCOMES = {"Failed", "Error", "Timeout", "Aborted", "NotExecuted"}
MESSAGE_LINES = 6        # of each failed test's message, in the listing above the closing line
MESSAGE_LINE_CHARS = 300


@dataclass(frozen=True)
class Counts:
    passed: int = 0
    failed: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.passed + other.passed, self.failed + other.failed)


@dataclass(frozen=True)
class Stage:
    name: str
    status: int
    results: str          # glob of the result files it writes in the results folder; empty: none
    expected_files: int   # how many such files a complete run writes


def count_junit(path: Path) -> Counts:
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = sum(int(suite.get("tests", 0)) for suite in suites)
    failed = sum(int(suite.get("failures", 0)) + int(suite.get("errors", 0)) for suite in suites)
    skipped = sum(int(suite.get("skipped", 0)) for suite in suites)
    return Counts(total - failed - skipped, failed + skipped)


def count_trx(path: Path) -> Counts:
    root = ElementTree.parse(path).getroot()
    summary = next(element for element in root.iter() if element.tag.endswith("ResultSummary"))
    counters = next(element for element in summary.iter() if element.tag.endswith("Counters"))
    failed = sum(int(counters.get(name, 0)) for name in ("failed", "error", "timeout", "aborted", "notExecuted"))
    if failed == 0 and summary.get("outcome") in BROKEN_TRX_OUTCOMES:
        failed = 1
    return Counts(int(counters.get("passed", 0)), failed)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def failed_in_junit(path: Path) -> List[Tuple[str, str]]:
    failed = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        for problem in case:
            if problem.tag in ("failure", "error", "skipped"):
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                message = problem.get("message") or problem.text or ""
                failed.append((name, f"skipped: {message}" if problem.tag == "skipped" else message))
                break
    return failed


def failed_in_trx(path: Path) -> List[Tuple[str, str]]:
    failed = []
    for result in ElementTree.parse(path).getroot().iter():
        if _local(result.tag) != "UnitTestResult" or result.get("outcome") not in FAILED_TRX_OUTCOMES:
            continue
        message = next((element.text or "" for element in result.iter() if _local(element.tag) == "Message"), "")
        if result.get("outcome") == "NotExecuted":
            message = f"skipped: {message}"
        failed.append((result.get("testName", "?"), message))
    return failed


def list_failed_tests(paths: Iterable[Path]) -> None:
    """Names each failed test of readable result files with the first lines of its message (stdout, before the total)."""
    for path in sorted(paths):
        try:
            failed = failed_in_trx(path) if path.suffix == ".trx" else failed_in_junit(path)
        except (ElementTree.ParseError, OSError):
            continue   # counted, and said, as unreadable
        for name, message in failed:
            print(f"FAILED {name} ({path.name})")
            for line in message.strip().splitlines()[:MESSAGE_LINES]:
                print(f"    {line[:MESSAGE_LINE_CHARS]}")


def count_file(path: Path) -> Counts:
    """A result file's counts; one that cannot be read (e.g. cut short when its runner died) is one failure."""
    try:
        return count_trx(path) if path.suffix == ".trx" else count_junit(path)
    except (ElementTree.ParseError, OSError, StopIteration, ValueError) as error:
        print(f"unreadable test results {path.name}: {error}", file=sys.stderr)
        return Counts(0, 1)


def read_stages(path: Path) -> List[Stage]:
    if not path.is_file():
        return []
    stages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        name, status, results, expected = line.split("\t")
        stages.append(Stage(name, int(status), results, int(expected or 0)))
    return stages


def stage_counts(stage: Stage, files: List[Path]) -> Counts:
    counts = sum((count_file(path) for path in files), Counts())
    missing = max(0, stage.expected_files - len(files))
    if missing:
        print(f"stage {stage.name}: {missing} of {stage.expected_files} result files missing", file=sys.stderr)
    failed = counts.failed + missing
    if stage.status != 0 and failed == 0:
        print(f"stage {stage.name} failed (exit status {stage.status})", file=sys.stderr)
        failed = 1
    return Counts(counts.passed, failed)


def summarize(results_dir: Path) -> Counts:
    total = Counts()
    counted: Set[Path] = set()
    for stage in read_stages(results_dir / STAGES_FILE):
        files = sorted(results_dir.glob(stage.results)) if stage.results else []
        total += stage_counts(stage, files)
        counted.update(files)
    for path in sorted(_result_files(results_dir)):   # results that no stage claims still count
        if path not in counted:
            total += count_file(path)
    return total


def _result_files(results_dir: Path) -> Iterable[Path]:
    for pattern in RESULT_PATTERNS:
        yield from results_dir.glob(pattern)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="folder with the result files and stages.tsv")
    args = parser.parse_args(argv)
    list_failed_tests(_result_files(args.results_dir))
    counts = summarize(args.results_dir)
    print(f"tests: {counts.passed} passed, {counts.failed} failed", flush=True)
    return 1 if counts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
