"""The raw bootstrap that gives EL 8 hosts a Python ansible-core can manage (playbooks/plays/files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "playbooks" / "plays" / "files" / "bootstrap-python.sh"
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
PYTHON36 = sorted(PYENV.glob("versions/3.6.*/bin/python3.6"))
FAKE_DNF = """#!/bin/sh
echo "$@" >> "{log}"
/bin/ln -s "{python}" "{bin}/python3.11"
"""


def host_bin(tmp_path: Path, python3: str | None, dnf: bool) -> Path:
    """A PATH holding only what the host would have: its python3 and, on EL, dnf."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if python3:
        (bin_dir / "python3").symlink_to(python3)
    if dnf:
        fake = bin_dir / "dnf"
        fake.write_text(FAKE_DNF.format(log=tmp_path / "dnf.log", python=sys.executable, bin=bin_dir))
        fake.chmod(0o755)
    return bin_dir


def bootstrap(bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/sh", str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True, check=False
    )


@pytest.fixture()
def python36():
    assert PYTHON36, "CPython 3.6 (EL 8's platform Python) is not installed under pyenv"
    return str(PYTHON36[-1])


def test_el8_gets_python311_once_then_finds_it(tmp_path, python36):
    bin_dir = host_bin(tmp_path, python36, dnf=True)
    first = bootstrap(bin_dir)
    assert (first.returncode, first.stdout) == (0, f"python: installed {bin_dir}/python3.11\n"), first.stderr
    assert (tmp_path / "dnf.log").read_text() == "-y -q install python3.11\n"
    again = bootstrap(bin_dir)
    assert (again.returncode, again.stdout) == (0, f"python: {bin_dir}/python3.11\n"), again.stderr
    assert (tmp_path / "dnf.log").read_text().count("install") == 1


def test_a_new_enough_python3_is_used_as_it_is(tmp_path):
    bin_dir = host_bin(tmp_path, sys.executable, dnf=True)
    ran = bootstrap(bin_dir)
    assert (ran.returncode, ran.stdout) == (0, f"python: {bin_dir}/python3\n"), ran.stderr
    assert not (tmp_path / "dnf.log").exists()


def test_a_host_with_neither_says_so(tmp_path, python36):
    ran = bootstrap(host_bin(tmp_path, python36, dnf=False))
    assert ran.returncode == 1
    assert "no Python 3.8 or newer" in ran.stderr
