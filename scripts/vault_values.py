"""An inventory's Vault values, read one way for every check that searches for them.

`make audit`'s leak gate, the repository's secret test, the scenarios' dry
runs and the stack's leak gate all ask the same question (where does a
secret appear?), so they read the Vault here and agree on which values are
long enough to search for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# A shorter value could match by chance; every real secret is far longer.
MIN_SECRET_LENGTH = 12


def read(vault: Path, password_file: Path | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Every variable of the Vault file, decrypted by ansible-vault.

    Without ``password_file`` ansible-vault finds the password as Ansible does
    (ANSIBLE_VAULT_PASSWORD_FILE, ansible.cfg). A Vault that cannot be read
    raises, naming the file: a search over no values would pass vacuously.
    """
    ansible_vault = shutil.which("ansible-vault") or str(Path(sys.executable).parent / "ansible-vault")
    argv = [ansible_vault, "view", str(vault)]
    if password_file:
        argv += ["--vault-password-file", str(password_file)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    if run.returncode != 0:
        raise RuntimeError(f"cannot read the Vault {vault}: {run.stderr[-500:]}")
    return yaml.safe_load(run.stdout) or {}


def searchable(values: dict[str, Any]) -> dict[str, str]:
    """The string values long enough to search for, by variable name."""
    return {name: value for name, value in values.items() if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH}
