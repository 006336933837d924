"""Prints one closing line, 'tests: N passed, N failed', over every result file of a test run."""
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def count_junit(path: Path) -> tuple[int, int]:
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = sum(int(suite.get("tests", 0)) for suite in suites)
    failed = sum(int(suite.get("failures", 0)) + int(suite.get("errors", 0)) for suite in suites)
    skipped = sum(int(suite.get("skipped", 0)) for suite in suites)
    return total - failed - skipped, failed


def count_trx(path: Path) -> tuple[int, int]:
    root = ElementTree.parse(path).getroot()
    counters = next(element for element in root.iter() if element.tag.endswith("Counters"))
    return int(counters.get("passed", 0)), int(counters.get("failed", 0)) + int(counters.get("error", 0))


def main(results_dir: Path) -> None:
    passed = failed = 0
    for path in sorted(results_dir.glob("*.xml")):
        p, f = count_junit(path)
        passed, failed = passed + p, failed + f
    for path in sorted(results_dir.glob("*.trx")):
        p, f = count_trx(path)
        passed, failed = passed + p, failed + f
    print(f"tests: {passed} passed, {failed} failed")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
