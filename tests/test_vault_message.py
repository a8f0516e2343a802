"""A run without the Vault password names the encrypted file and the two ways to give the password."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SANDBOX_PASSWORD = ROOT / "inventory/sandbox/vault-password.txt"


def run(*command: str, password_file: Path | None = None) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_VAULT")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FACT_CACHING="memory")
    if password_file:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password_file)
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def said_how_to_fix(output: str, path: str) -> bool:
    return (
        f"{path} is encrypted with Ansible Vault and this run has no Vault password" in output
        and "--ask-vault-pass" in output
        and "--vault-password-file FILE" in output
        and "ANSIBLE_VAULT_PASSWORD_FILE" in output
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ansible-playbook", "-i", "inventory/sandbox", "playbooks/site.yml"),
        ("ansible-playbook", "-i", "inventory/sandbox", "playbooks/backup.yml", "--check"),
        ("ansible-inventory", "-i", "inventory/sandbox", "--list"),
    ],
)
def test_no_vault_password_names_the_file_and_the_fix(command):
    rc, output = run(*command)
    assert rc != 0, output[-2000:]
    assert said_how_to_fix(output, "inventory/sandbox/group_vars/all/vault.yml"), output[-2000:]
    assert "Attempting to decrypt" not in output, output[-2000:]


def test_an_operators_own_encrypted_inventory_is_named_too(tmp_path):
    inventory = tmp_path / "production"
    shutil.copytree(ROOT / "inventory/production.example", inventory, symlinks=True)
    (inventory / "group_vars/all/00_shared").unlink()
    (inventory / "group_vars/all/00_shared").symlink_to(ROOT / "group_vars")
    vault = inventory / "group_vars/all/vault.yml"
    shutil.copy(inventory / "group_vars/all/vault.yml.example", vault)
    password = tmp_path / "password"
    password.write_text("a test password\n")
    rc, output = run("ansible-vault", "encrypt", str(vault), password_file=password)
    assert rc == 0, output
    rc, output = run("ansible-inventory", "-i", str(inventory), "--list")
    assert rc != 0 and said_how_to_fix(output, os.path.relpath(vault, ROOT)), output[-2000:]
    # With the password the inventory reads as before.
    rc, output = run("ansible-inventory", "-i", str(inventory), "--list", password_file=password)
    assert rc == 0 and '"procurement_environment": "production"' in output.replace(" ", " "), output[-2000:]


def test_with_the_password_the_sandbox_inventory_reads():
    rc, output = run("ansible-inventory", "-i", "inventory/sandbox", "--list", password_file=SANDBOX_PASSWORD)
    assert rc == 0 and "sandbox-aio" in output, output[-2000:]
