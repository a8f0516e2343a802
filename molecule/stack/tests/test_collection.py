"""The collection as a user installs it: the release's tarball, installed into an empty folder, is what this
scenario converged from (prepare.yml, molecule.yml), and the release's files are what they say they are."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from release import current as released_version  # scripts/release.py (conftest.py puts scripts/ on the path)

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
INSTALLED = EPHEMERAL / "collections"
DIST = EPHEMERAL / "dist"

pytestmark = pytest.mark.skipif(
    "MOLECULE_EPHEMERAL_DIRECTORY" not in os.environ, reason="reads the stack scenario's own install"
)


def galaxy(*args: str) -> subprocess.CompletedProcess:
    """ansible-galaxy with the scenario's configuration (its collection path is the install's folder)."""
    return subprocess.run(["ansible-galaxy", *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_only_procurement_ops_on_the_path_is_the_one_installed_from_the_tarball():
    # The collection path of every playbook of the scenario (converge included): the install's folder only.
    shown = subprocess.run(
        ["ansible-config", "dump", "--only-changed", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    settings = {item["name"]: item["value"] for item in json.loads(shown.stdout) if "name" in item}
    assert settings["COLLECTIONS_PATHS"] == [str(INSTALLED)]
    listed = galaxy("collection", "list", "procurement.ops", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    found = {path: collections["procurement.ops"]["version"] for path, collections in json.loads(listed.stdout).items()}
    assert found == {str(INSTALLED / "ansible_collections"): released_version()}
    manifest = json.loads((INSTALLED / "ansible_collections/procurement/ops/MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == released_version()
    assert not (INSTALLED / "ansible_collections/procurement/ops/galaxy.yml").exists(), "a copy, not a build"


def test_the_installed_files_match_the_tarballs_manifest():
    verified = galaxy("collection", "verify", "--offline", "procurement.ops")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Successfully verified that checksums for 'procurement.ops" in verified.stdout


def test_the_release_lists_its_files_with_their_sha256():
    listed = dict(reversed(line.split("  ", 1)) for line in (DIST / "SHA256SUMS").read_text().splitlines())
    version = released_version()
    assert set(listed) == {
        f"procurement-ops-{version}.tar.gz",
        f"procurement-{version}-py311.tar.gz",
        f"procurement-{version}-py313.tar.gz",
    }
    for name, digest in listed.items():
        assert hashlib.sha256((DIST / name).read_bytes()).hexdigest() == digest, name


def test_each_host_has_the_released_version(host):
    # The install has no app source beside it: this release came from the dist folder's artifacts.
    assert host.file(f"/opt/procurement/releases/{released_version()}/venv/bin/gunicorn").exists
