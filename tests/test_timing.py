"""make test's timing table ends with what failed, read back from Molecule's boxed and wrapped logs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BAR = "\x1b[2m\u2502\x1b[0m"


@pytest.fixture()
def timing(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("timing", ROOT / "scripts/timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RECORDS", tmp_path / "timing")
    monkeypatch.setattr(module, "LOGS", tmp_path / "logs")
    module.RECORDS.mkdir()
    module.LOGS.mkdir()
    return module


def boxed(*lines: str) -> str:
    return "".join(f"  {BAR} {line}\n" for line in lines)


def test_a_failed_tests_summary_line_is_joined_again_and_shown_at_the_end(timing):
    (timing.RECORDS / "cluster.steps").write_text("create\t0.0\nverify\t10.0\nend\t70.0\n")
    (timing.RECORDS / "stack.steps").write_text("create\t0.0\nend\t5.0\n")
    (timing.LOGS / "cluster.log").write_text(
        boxed(
            "FAILED - RETRYING: [cluster-db2]: Wait for a leader in the store (40 retries left).",
            "cluster \u279c verify: Executing",
            "=========================== short test summary info ============================",
            "FAILED ../../shared/tests/test_x.py::test_rows_reach_the_replica - AssertionError: the",
            "  row did not reach the replica within 5 s",
            "FAILED ../../shared/tests/test_x.py::test_two",
            "==================== 2 failed, 22 passed in 843.94s (0:14:03) ====================",
        )
    )
    (timing.LOGS / "cluster.failed").touch()
    (timing.LOGS / "stack.log").write_text(boxed("FAILED not from this run's failure"))
    lines = timing.table().splitlines()
    at = lines.index("scenario cluster FAILED:")
    assert lines[at + 1 :] == [
        "    FAILED ../../shared/tests/test_x.py::test_rows_reach_the_replica - AssertionError: the"
        " row did not reach the replica within 5 s",
        "    FAILED ../../shared/tests/test_x.py::test_two",
    ]


def test_without_a_failed_test_the_first_failed_tasks_are_shown(timing):
    (timing.RECORDS / "base.steps").write_text("converge\t0.0\nend\t30.0\n")
    (timing.LOGS / "base.log").write_text(
        boxed(
            "TASK [base : Check the disk] ***",
            'fatal: [base-debian12]: FAILED! => {"changed": false, "msg": "The disk is too',
            '  small"}',
            'fatal: [base-debian13]: FAILED! => {"msg": "x"}',
            "...ignoring",
        )
    )
    (timing.LOGS / "base.failed").touch()
    assert timing.table().splitlines()[-1] == (
        '    fatal: [base-debian12]: FAILED! => {"changed": false, "msg": "The disk is too small"}'
    )
