"""The closing line of scripts/test.sh: failed stages and missing or broken result files count as failures."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
SUMMARIZE = REPOSITORY / "scripts" / "summarize_tests.py"
STAGES = REPOSITORY / "scripts" / "test_stages.sh"

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="{errors}" failures="{failures}" skipped="{skipped}" tests="{tests}" time="1.0">
</testsuite></testsuites>
"""

TRX = """<?xml version="1.0" encoding="utf-8"?>
<TestRun id="1" name="run" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010">
  <ResultSummary outcome="{outcome}">
    <Counters total="{total}" executed="{total}" passed="{passed}" failed="{failed}" error="0" timeout="0" aborted="0"
              inconclusive="0" passedButRunAborted="0" notRunnable="0" notExecuted="0" disconnected="0" warning="0"
              completed="0" inProgress="0" pending="0" />
  </ResultSummary>
</TestRun>
"""


def junit(folder: Path, name: str, tests: int, failures: int = 0, errors: int = 0, skipped: int = 0) -> None:
    (folder / name).write_text(JUNIT.format(tests=tests, failures=failures, errors=errors, skipped=skipped))


def trx(folder: Path, name: str, passed: int, failed: int = 0, outcome: str = "Completed") -> None:
    (folder / name).write_text(TRX.format(total=passed + failed, passed=passed, failed=failed, outcome=outcome))


def stages(folder: Path, *rows: str) -> None:
    """Rows as scripts/test_stages.sh writes them: 'name status glob expected', tab-separated."""
    (folder / "stages.tsv").write_text("".join(row.replace(" ", "\t") + "\n" for row in rows))


def summarize(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SUMMARIZE), str(folder)], capture_output=True, text=True, timeout=60)


def closing_line(result: subprocess.CompletedProcess) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_a_complete_green_run_reports_every_test_and_exits_0(tmp_path: Path) -> None:
    junit(tmp_path, "pytest.xml", tests=12)
    for project, passed in (("a", 30), ("b", 40), ("c", 5)):
        trx(tmp_path, f"{project}.trx", passed)
    stages(tmp_path, "debian-packages 0  0", "nuget-restore 0  0", "pytest 0 pytest.xml 1", "smoke-bundle 0  0",
           "dotnet-test 0 *.trx 3")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 87 passed, 0 failed"
    assert result.returncode == 0


def test_skipped_tests_count_as_failed_and_are_named(tmp_path: Path) -> None:
    # The project has no skipped tests: one that does not run proves nothing, so the run is not green.
    (tmp_path / "pytest.xml").write_text("""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="1" tests="3" time="1.0">
<testcase classname="test_a" name="test_ran" /><testcase classname="test_a" name="test_ran_too" />
<testcase classname="test_a" name="test_not_run"><skipped message="no GPU here" /></testcase>
</testsuite></testsuites>
""")
    (tmp_path / "a.trx").write_text(TRX.format(total=5, passed=4, failed=0, outcome="Completed")
                                    .replace('notExecuted="0"', 'notExecuted="1"')
                                    .replace("</TestRun>", '<Results><UnitTestResult testName="Tests.Skipped" outcome="NotExecuted">'
                                             '<Output><ErrorInfo><Message>Skip: later</Message></ErrorInfo></Output>'
                                             '</UnitTestResult></Results></TestRun>'))
    stages(tmp_path, "pytest 0 pytest.xml 1", "dotnet-test 0 *.trx 1")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 6 passed, 2 failed"
    assert result.returncode == 1
    assert "FAILED test_a::test_not_run (pytest.xml)\n    skipped: no GPU here" in result.stdout
    assert "FAILED Tests.Skipped (a.trx)\n    skipped: Skip: later" in result.stdout


def test_a_dotnet_test_that_died_before_writing_results_is_not_0_failed(tmp_path: Path) -> None:
    junit(tmp_path, "pytest.xml", tests=12)
    stages(tmp_path, "pytest 0 pytest.xml 1", "dotnet-test 1 *.trx 3")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 12 passed, 3 failed"   # one per missing result file
    assert result.returncode == 1
    assert "dotnet-test: 3 of 3 result files missing" in result.stderr


def test_a_dotnet_test_that_wrote_only_some_results_counts_the_missing_ones(tmp_path: Path) -> None:
    trx(tmp_path, "a.trx", 30)
    trx(tmp_path, "b.trx", 40)
    stages(tmp_path, "dotnet-test 1 *.trx 3")

    assert closing_line(summarize(tmp_path)) == "tests: 70 passed, 1 failed"


def test_a_result_file_cut_short_counts_as_a_failure(tmp_path: Path) -> None:
    trx(tmp_path, "a.trx", 30)
    (tmp_path / "b.trx").write_text(TRX.format(total=4, passed=4, failed=0, outcome="Completed")[:150])
    stages(tmp_path, "dotnet-test 1 *.trx 2")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 30 passed, 1 failed"
    assert "unreadable test results b.trx" in result.stderr


def test_a_trx_whose_run_aborted_without_a_failed_test_counts_as_a_failure(tmp_path: Path) -> None:
    trx(tmp_path, "a.trx", 30, outcome="Aborted")
    stages(tmp_path, "dotnet-test 0 *.trx 1")

    assert closing_line(summarize(tmp_path)) == "tests: 30 passed, 1 failed"


@pytest.mark.parametrize("stage", ["nuget-restore", "smoke-bundle", "debian-packages"])
def test_a_failed_stage_without_results_is_one_failure(tmp_path: Path, stage: str) -> None:
    junit(tmp_path, "pytest.xml", tests=5)
    trx(tmp_path, "a.trx", 7)
    stages(tmp_path, f"{stage} 2  0", "pytest 0 pytest.xml 1", "dotnet-test 0 *.trx 1")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 12 passed, 1 failed"
    assert result.returncode == 1
    assert f"stage {stage} failed (exit status 2)" in result.stderr


def test_failed_tests_are_counted_once_not_again_for_their_stage(tmp_path: Path) -> None:
    junit(tmp_path, "pytest.xml", tests=10, failures=2, errors=1)
    trx(tmp_path, "a.trx", 20, failed=4, outcome="Failed")
    stages(tmp_path, "pytest 1 pytest.xml 1", "dotnet-test 1 *.trx 1")

    assert closing_line(summarize(tmp_path)) == "tests: 27 passed, 7 failed"


def test_results_without_a_stage_record_still_count(tmp_path: Path) -> None:
    junit(tmp_path, "other.xml", tests=3, failures=1)
    trx(tmp_path, "a.trx", 2)

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 4 passed, 1 failed"
    assert result.returncode == 1


FAILED_TRX = """<?xml version="1.0" encoding="utf-8"?>
<TestRun id="1" name="run" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010">
  <Results>
    <UnitTestResult testName="Tests.Passes" outcome="Passed" />
    <UnitTestResult testName="Tests.StallCutsTheAnswerOff" outcome="Failed">
      <Output><ErrorInfo><Message>Assert.Equal() Failure: Values differ
Expected: 408
Actual:   200</Message><StackTrace>at Tests.StallCutsTheAnswerOff()</StackTrace></ErrorInfo></Output>
    </UnitTestResult>
  </Results>
  <ResultSummary outcome="Failed">
    <Counters total="2" executed="2" passed="1" failed="1" error="0" timeout="0" aborted="0" />
  </ResultSummary>
</TestRun>
"""

FAILED_JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="2" time="1.0">
<testcase classname="tests.trainer.test_push" name="test_passes" />
<testcase classname="tests.trainer.test_push" name="test_push_moves_prototypes">
<failure message="AssertionError: assert 3 == 4">long traceback</failure></testcase>
</testsuite></testsuites>
"""


def test_failed_tests_are_named_with_their_message_above_the_closing_line(tmp_path: Path) -> None:
    (tmp_path / "a.trx").write_text(FAILED_TRX)
    (tmp_path / "pytest.xml").write_text(FAILED_JUNIT)
    stages(tmp_path, "pytest 1 pytest.xml 1", "dotnet-test 1 *.trx 1")

    result = summarize(tmp_path)
    lines = result.stdout.splitlines()

    assert lines[-1] == "tests: 2 passed, 2 failed"
    assert "FAILED Tests.StallCutsTheAnswerOff (a.trx)" in lines
    assert "    Actual:   200" in lines
    assert "FAILED tests.trainer.test_push::test_push_moves_prototypes (pytest.xml)" in lines
    assert "    AssertionError: assert 3 == 4" in lines
    assert not any("Passes" in line or "test_passes" in line for line in lines)


def run_bash(script: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{STAGES}"; stages_begin "{folder}"; {script}'],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))


def stage_rows(folder: Path) -> List[List[str]]:
    return [line.split("\t") for line in (folder / "stages.tsv").read_text().splitlines()]


def test_run_stage_records_a_failed_command_and_the_script_goes_on_under_set_e(tmp_path: Path) -> None:
    result = run_bash('run_stage nuget-restore "" 0 false; echo "status $stage_status"; '
                      'run_stage pytest pytest.xml 1 true; echo "status $stage_status"; echo reached', tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["== nuget-restore", "== nuget-restore failed (exit status 1)", "status 1",
                                          "== pytest", "status 0", "reached"]
    assert stage_rows(tmp_path) == [["nuget-restore", "1", "", "0"], ["pytest", "0", "pytest.xml", "1"]]
    # The pytest stage wrote no pytest.xml: both stages count.
    assert closing_line(summarize(tmp_path)) == "tests: 0 passed, 2 failed"


def test_run_stage_keeps_set_e_for_the_rest_of_the_script(tmp_path: Path) -> None:
    result = run_bash('run_stage smoke-bundle "" 0 false; false; echo not-reached', tmp_path)

    assert result.returncode == 1
    assert "not-reached" not in result.stdout


def test_more_result_files_than_a_stage_expects_do_not_cancel_its_failed_tests(tmp_path: Path) -> None:
    # A stage that wrote one result file more than it was expected to (a retried test project, say) has nothing
    # missing: its extra file must not count as minus one missing file and swallow a failed test.
    trx(tmp_path, "a.trx", 10, failed=2, outcome="Failed")
    trx(tmp_path, "b.trx", 5)
    stages(tmp_path, "dotnet-test 1 *.trx 1")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 15 passed, 2 failed"
    assert "missing" not in result.stderr


def test_a_junit_file_whose_root_is_the_test_suite_counts_its_tests(tmp_path: Path) -> None:
    # Some runners (older pytest among them) write one <testsuite> as the root, without <testsuites> around it.
    (tmp_path / "other.xml").write_text('<?xml version="1.0" encoding="utf-8"?>\n'
                                        '<testsuite name="pytest" errors="1" failures="1" skipped="0" tests="9">'
                                        '</testsuite>\n')
    stages(tmp_path, "pytest 1 other.xml 1")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 7 passed, 2 failed"
    assert result.returncode == 1


def test_a_trx_without_its_result_summary_counts_as_a_failure_and_the_closing_line_is_still_written(tmp_path: Path) -> None:
    # A test host that died after writing its results but before their summary leaves a well-formed file without one.
    (tmp_path / "a.trx").write_text(FAILED_TRX.split("  <ResultSummary")[0] + "</TestRun>\n")
    trx(tmp_path, "b.trx", 3)
    stages(tmp_path, "dotnet-test 1 *.trx 2")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 3 passed, 1 failed"
    assert "unreadable test results a.trx" in result.stderr


def test_a_failed_tests_long_message_lines_are_cut_short_in_the_listing(tmp_path: Path) -> None:
    # A whole serialized object in an assertion message would otherwise flood the tail of the CI log.
    long_line = "Expected: " + "x" * 5000
    (tmp_path / "pytest.xml").write_text(FAILED_JUNIT.replace("AssertionError: assert 3 == 4", long_line))
    stages(tmp_path, "pytest 1 pytest.xml 1")

    lines = summarize(tmp_path).stdout.splitlines()

    [listed] = [line for line in lines if line.startswith("    Expected: ")]
    assert long_line.startswith(listed.strip()) and len(listed) < len(long_line) // 4


def test_blank_lines_in_the_stage_record_are_passed_over(tmp_path: Path) -> None:
    junit(tmp_path, "pytest.xml", tests=4)
    (tmp_path / "stages.tsv").write_text("pytest\t0\tpytest.xml\t1\n\n \nsmoke-bundle\t2\t\t0\n")

    result = summarize(tmp_path)

    assert closing_line(result) == "tests: 4 passed, 1 failed"
    assert "stage smoke-bundle failed (exit status 2)" in result.stderr


def test_stages_begin_starts_a_fresh_record_over_an_earlier_runs(tmp_path: Path) -> None:
    # The results folder of an earlier run: its failed stage must not be counted again in this one.
    (tmp_path / "stages.tsv").write_text("nuget-restore\t1\t\t0\n")

    result = run_bash('run_stage pytest "" 0 true', tmp_path)

    assert result.returncode == 0, result.stderr
    assert stage_rows(tmp_path) == [["pytest", "0", "", "0"]]
    assert closing_line(summarize(tmp_path)) == "tests: 0 passed, 0 failed"
