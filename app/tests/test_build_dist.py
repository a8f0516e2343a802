"""The release artifact builder (tools/build-dist.sh) when several builds meet.

Scenarios and deploys run side by side and build the same artifact into the
same folder. Each build here is real: the app's wheel, the pinned wheelhouse
and the offline install check with the target Python.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1]
PYTHON_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
TAG = PYTHON_VERSION.replace(".", "")

pytestmark = pytest.mark.slow


def copy_tree(source: Path, target: Path, keep_dist: bool = False) -> Path:
    skip = [".venv", "build", "*.egg-info", "__pycache__", ".*cache"] + (
        [] if keep_dist else ["dist"]
    )
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*skip))
    return target


def version_of(tree: Path) -> str:
    for line in (tree / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in pyproject.toml")


def start_build(tree: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(tree / "tools/build-dist.sh"), PYTHON_VERSION, sys.executable],
        cwd=tree,
        env={**os.environ, "PROCUREMENT_REQUIRE_INSTALL_CHECK": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(build: subprocess.Popen) -> tuple[str, str]:
    out, err = build.communicate(timeout=900)
    assert build.returncode == 0, err[-3000:]
    return out, err


def verified(tree: Path, name: str) -> str:
    """The artifact's SHA-256, after checking it against its recorded sum and reading it whole."""
    dist = tree / "dist"
    tarball = dist / f"{name}.tar.gz"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    recorded = (dist / f"{name}.tar.gz.sha256").read_text().split()
    assert recorded == [digest, f"{name}.tar.gz"]
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        for member in archive:
            if member.isfile():
                archive.extractfile(member).read()
    assert any(n.startswith(f"{name}/wheels/procurement-") and n.endswith(".whl") for n in names), (
        names
    )
    assert f"{name}/requirements.lock" in names
    return digest


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory):
    """Two builds of one version in one tree, started at once, with a shared cache.

    Built once for the module: each test below reads it or works on a copy.
    """
    base = tmp_path_factory.mktemp("concurrent")
    tree = copy_tree(APP, base / "app")
    cache = base / "cache"
    first, second = (
        start_build(tree, PROCUREMENT_ARTIFACT_CACHE=str(cache)),
        start_build(tree, PROCUREMENT_ARTIFACT_CACHE=str(cache)),
    )
    return {"tree": tree, "cache": cache, "results": [finish(first), finish(second)]}


def test_two_builds_of_one_version_started_at_once_both_succeed(concurrent):
    tree = concurrent["tree"]
    name = f"procurement-{version_of(tree)}-py{TAG}"
    (out1, err1), (out2, err2) = concurrent["results"]

    assert out1.strip() == out2.strip() == f"dist/{name}.tar.gz"
    digest = verified(tree, name)
    # One built it; the other waited for the lock and took that result.
    logs = err1 + err2
    assert logs.count(f"built dist/{name}.tar.gz") == 1, logs
    assert "waiting for it" in logs and "is current" in logs, logs
    # Nothing half-built is left beside the artifact.
    assert sorted(
        p.name for p in (tree / "dist").iterdir() if not p.name.startswith(".")
    ) == sorted([f"{name}.tar.gz", f"{name}.tar.gz.sha256", f"{name}.source"])
    assert not list((tree / "dist").glob(".build-*"))
    # Built again from the same source, it is the same file, untouched.
    _, err = finish(start_build(tree))
    assert "is current" in err, err
    assert verified(tree, name) == digest


def test_a_rebuild_never_pulls_the_artifact_from_under_a_reader(concurrent, tmp_path):
    tree = copy_tree(concurrent["tree"], tmp_path / "app", keep_dist=True)
    name = f"procurement-{version_of(tree)}-py{TAG}"
    old = verified(tree, name)
    tarball = tree / "dist" / f"{name}.tar.gz"
    size = tarball.stat().st_size

    # A reader (a deploy unpacking it) holds the old artifact open while the
    # source changes and a rebuild replaces it.
    with tarball.open("rb") as reader:
        head = reader.read(size // 2)
        module = tree / "src/procurement/health_checker.py"
        module.write_text(module.read_text() + "\n# changed after the first build\n")
        rebuild = start_build(tree)
        seen_during_build = []
        while rebuild.poll() is None:
            seen_during_build.append(tarball.exists())
            time.sleep(0.2)
        _, err = finish(rebuild)
        rest = reader.read()
    assert f"built dist/{name}.tar.gz" in err, err
    assert all(seen_during_build), "the artifact disappeared while its rebuild ran"
    assert hashlib.sha256(head + rest).hexdigest() == old
    assert verified(tree, name) != old


def test_a_shared_cache_serves_a_second_tree_with_the_same_source(concurrent, tmp_path):
    tree = concurrent["tree"]
    name = f"procurement-{version_of(tree)}-py{TAG}"
    twin = copy_tree(tree, tmp_path / "twin")
    _, err = finish(start_build(twin, PROCUREMENT_ARTIFACT_CACHE=str(concurrent["cache"])))
    assert "taken from" in err, err
    assert verified(twin, name) == verified(tree, name)


def test_a_required_install_check_without_the_target_python_stops_the_build(tmp_path):
    tree = copy_tree(APP, tmp_path / "app")
    build = subprocess.run(
        [str(tree / "tools/build-dist.sh"), "3.99", sys.executable],
        cwd=tree,
        env={**os.environ, "PROCUREMENT_REQUIRE_INSTALL_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 1
    assert "python3.99 is not installed here" in build.stderr
    assert not list((tree / "dist").glob("*.tar.gz"))


def test_a_release_whose_version_command_fails_is_not_published(tmp_path):
    """`procurement --version` failing in the offline install check fails the build."""
    tree = copy_tree(APP, tmp_path / "app")
    cli = tree / "src/procurement/cli.py"
    failing = 'import sys\n\nif "--version" in sys.argv:\n    sys.exit(3)\n'
    source = cli.read_text()
    future = "from __future__ import annotations\n"
    assert future in source
    cli.write_text(source.replace(future, future + failing, 1))
    build = start_build(tree)
    out, err = build.communicate(timeout=900)
    assert build.returncode == 3, out[-2000:] + err[-2000:]
    assert not list((tree / "dist").glob("*.tar.gz"))
