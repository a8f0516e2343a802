"""Helpers shared by the base scenario's tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def converge(host, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run this scenario's converge playbook against one host; return the run and its unwrapped output.

    ``args`` go to ansible-playbook as they are (``-e``, ``--tags`` ...).
    Ansible wraps long messages; the second value undoes that, so that
    phrases can be matched.
    """
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--limit",
            host.backend.get_hostname(),
            *args,
            str(scenario / "converge.yml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result, " ".join((result.stdout + result.stderr).split())
