"""Each scenario's verify step runs the test of the converged state first, whatever the path order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHECK_MODE = "molecule/shared/tests/test_check_mode.py::test_check_mode_on_converged_hosts_reports_no_changes"


def verifier_env() -> dict[str, str]:
    config = yaml.safe_load((ROOT / ".config/molecule/config.yml").read_text())
    env = config["verifier"]["env"]
    return {key: value.replace("${MOLECULE_PROJECT_DIRECTORY}", str(ROOT)) for key, value in env.items()}


def collected(*paths: str, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("scenario", ["cluster", "stack"])
def test_check_mode_runs_first_even_when_the_shared_tests_come_last(scenario):
    tests = [f"molecule/{scenario}/tests", "molecule/shared/tests"]
    # Without the ordering plugin, the scenario's own tests would come first.
    assert collected(*tests, env={})[0] != CHECK_MODE
    assert collected(*tests, env=verifier_env())[0] == CHECK_MODE
    assert collected(*reversed(tests), env=verifier_env())[0] == CHECK_MODE
