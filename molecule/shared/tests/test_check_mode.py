"""Checks every scenario shares: a converged host is left alone by check mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(PROJECT / "scripts"))

import vault_values  # noqa: E402 - scripts/vault_values.py, importable once its folder is on the path

RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)


@pytest.mark.converged_state
def test_check_mode_on_converged_hosts_reports_no_changes():
    """`ansible-playbook --check --diff` of the converge playbook must predict no change, and show no secret.

    Idempotence proves a second real run changes nothing; this proves that an
    operator's dry run against a converged host does not cry wolf either.
    """
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    playbook = scenario / "converge.yml"
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    result = subprocess.run(
        ["ansible-playbook", "--check", "--diff", "-i", inventory, str(playbook)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    recaps = list(RECAP.finditer(result.stdout))
    assert recaps, output[-4000:]
    changed = {m["host"]: int(m["changed"]) for m in recaps}
    assert all(count == 0 for count in changed.values()), f"check mode predicts changes {changed}:\n{output[-6000:]}"
    shown = [name for name, value in scenario_secrets(scenario).items() if value in output]
    assert shown == [], f"the dry run printed {shown}"


def scenario_secrets(scenario: Path) -> dict[str, str]:
    """The scenario's Vault values long enough to search for, when it has a Vault."""
    vault = scenario / "group_vars/all/vault.yml"
    return vault_values.searchable(vault_values.read(vault)) if vault.exists() else {}
