"""A bad item in a role's list argument is named by its position and value, not only described."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PLAY = """\
- name: Check the firewall rules of the controller's own host, changing nothing
  hosts: localhost
  gather_facts: true
  roles:
    - role: procurement.ops.firewall
      vars:
        firewall_rules:
          - {port: 80, comment: HTTP}
          - {port: "x", comment: Typo}
          - {port: "8000:80a0"}
"""


def test_a_firewall_rule_with_a_bad_port_is_named(tmp_path):
    playbook = tmp_path / "check.yml"
    playbook.write_text(PLAY)
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "--check",
            "--tags",
            "firewall_assert",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, said[-2000:]
    assert 'firewall_rules: item 2 (Typo) has port "x"; item 3 (8000:80a0) has port "8000:80a0".' in said, said[-2000:]
