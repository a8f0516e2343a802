"""The compliance suite (compliance/) covers every control of the four dev-sec baselines and scores honestly."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "compliance"
spec = importlib.util.spec_from_file_location("compliance_conftest", SUITE / "conftest.py")
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)

TODAY = dt.date(2026, 12, 5)


def test_every_control_of_the_four_baselines_has_a_test(tmp_path):
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", str(SUITE)]
        + [f"--compliance-report={report}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=SUITE.parent,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert json.loads(report.read_text())["collected"] == suite.BASELINES


def test_the_waivers_file_is_reviewed_and_within_the_budget():
    waivers = suite.load_waivers()
    assert len(waivers) <= 15
    assert all(len(w["reason"]) >= 20 for w in waivers.values()), "a waiver's reason says why, concretely"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "waivers.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        "- {control: os-05, reviewed: 2026-11-01}\n",
        "- {control: os-05, reason: '', reviewed: 2026-11-01}\n",
        "- {control: os-05, reason: not in a container}\n",
        "- {control: os-05, reason: not in a container, reviewed: 'last week'}\n",
        "- {control: os-05, reason: not in a container, reviewed: 2025-11-01}\n",
        "- {control: os-05, reason: a, reviewed: 2026-11-01}\n- {control: os-05, reason: b, reviewed: 2026-11-01}\n",
    ],
    ids=["no-reason", "empty-reason", "no-date", "not-a-date", "stale", "twice"],
)
def test_a_waiver_without_reason_or_fresh_review_is_refused(tmp_path, text):
    with pytest.raises(pytest.UsageError):
        suite.load_waivers(write(tmp_path, text), today=TODAY)


def test_a_control_scores_by_its_worst_test():
    controls = dict.fromkeys(("os-01", "os-02", "os-03", "os-04", "os-05", "os-06"), "linux-baseline")
    waivers = {"os-04": {"reason": "r"}, "os-05": {"reason": "r"}}
    outcomes = {
        "os-01": ["passed", "passed"],
        "os-02": ["passed", "failed"],
        "os-03": ["skipped"],
        "os-04": ["waived", "waived_passing"],
        "os-05": ["waived_passing"],
        "os-06": ["skipped", "passed"],
    }
    summary = suite.summarise(outcomes, waivers, controls)
    assert summary["failed"] == ["os-02"]
    assert summary["not_applicable"] == ["os-03"]
    assert summary["waived_passing"] == ["os-05"]
    assert (summary["total"], summary["passed"], summary["waived"]) == (5, 2, 2)
    assert summary["collected"] == {"linux-baseline": 6}
