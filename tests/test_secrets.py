"""No secret of the sandbox's Vault appears anywhere else in the repository, now or in its history.

The sandbox's Vault (inventory/sandbox/group_vars/all/vault.yml) is
throwaway and encrypted; its values are what the tests and the sandbox
deploy with, so they are the secrets most likely to leak into a fixture, a
log pasted into the docs, or a rendered file committed by mistake.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import vault_values  # noqa: E402 - scripts/vault_values.py, importable once its folder is on the path

VAULT = ROOT / "inventory/sandbox/group_vars/all/vault.yml"
VAULT_PASSWORD = ROOT / "inventory/sandbox/vault-password.txt"


def vault_secrets() -> dict[str, str]:
    return vault_values.searchable(vault_values.read(VAULT, VAULT_PASSWORD, cwd=ROOT))


def repository_files(root: Path) -> list[Path]:
    """Tracked files and new files not ignored: what a commit could carry."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    files = [root / name for name in listed if name]
    return [path for path in files if path.is_file() and not path.is_symlink()]


def files_containing(root: Path, secrets: dict[str, str]) -> list[str]:
    found = []
    for path in repository_files(root):
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        found += [f"{path.relative_to(root)}: {name}" for name, value in secrets.items() if value in text]
    return found


@pytest.fixture(scope="module")
def secrets():
    values = vault_secrets()
    # The Vault must hold the secrets the roles read; an empty answer would
    # make every search below pass vacuously.
    assert {"vault_db_password", "vault_redis_password", "vault_app_secret_key"} <= values.keys()
    return values


def test_vault_file_is_encrypted():
    assert VAULT.read_text().startswith("$ANSIBLE_VAULT;")


def test_no_vault_secret_in_any_repository_file(secrets):
    found = files_containing(ROOT, secrets)
    assert found == [], "Vault secrets in plain text:\n" + "\n".join(found)


def test_no_vault_secret_in_the_history(secrets):
    leaks = []
    for name, value in secrets.items():
        commits = subprocess.run(
            ["git", "log", "--all", "--format=%h %s", "-S", value],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if commits:
            leaks.append(f"{name}: {commits}")
    assert leaks == [], "Vault secrets in committed history:\n" + "\n".join(leaks)


def test_the_search_finds_a_planted_secret(tmp_path, secrets):
    """The search is not blind: a copy of a secret in a new file is reported."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    name, value = next(iter(secrets.items()))
    (tmp_path / "notes.txt").write_text(f"password was {value}\n")
    (tmp_path / "clean.txt").write_text("nothing here\n")
    assert files_containing(tmp_path, secrets) == [f"notes.txt: {name}"]
