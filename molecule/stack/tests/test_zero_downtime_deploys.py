"""Deploys on a live host: a new release under steady traffic, a rollback, and a broken release."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PROJECT, Poller, deploy, playbook

PORTS = {"stack-debian12": 9443, "stack-debian13": 9444}


def target_python(host) -> str:
    return host.check_output("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")


def release_tree(
    tmp_path: Path, version: str, broken: bool = False, python: str = "", files: dict[str, str] | None = None
) -> Path:
    """A copy of the app's source tree carrying another version number.

    ``files`` (path in the tree: text) are written into the copy, for
    instance a new migration.

    With ``python`` (the host's X.Y) its release artifact is built at once
    with the project's own app virtualenv, so that the deploy finds it and
    does not create a fresh virtualenv in the copy to build it.
    """
    tree = tmp_path / f"app-{version}"
    shutil.copytree(
        PROJECT / "app", tree, ignore=shutil.ignore_patterns(".venv", "dist", "build", "*.egg-info", "__pycache__")
    )
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = "[^"]+"', f'version = "{version}"', pyproject.read_text(), count=1))
    if broken:
        # A release whose readiness check can never pass.
        checker = tree / "src/procurement/health_checker.py"
        checker.write_text(
            checker.read_text() + "\n\ndef _broken(*_a, **_k):\n    raise RuntimeError('broken release')\n"
        )
        source = checker.read_text()
        source = re.sub(r"(?m)^(def ready[^\n]*:\n)", r"\1    _broken()\n", source, count=1)
        checker.write_text(source)
    for relative, text in (files or {}).items():
        (tree / relative).write_text(text)
    builder = PROJECT / "app/.venv/bin/python"
    if python and builder.exists():
        subprocess.run(
            [str(tree / "tools/build-dist.sh"), python, str(builder)],
            cwd=tree,
            check=True,
            capture_output=True,
            timeout=900,
        )
    return tree


def current_release(host) -> str:
    return host.check_output("readlink /opt/procurement/current").rsplit("/", 1)[-1]


def row_count(host) -> int:
    out = host.check_output(
        "runuser -u postgres -- psql -tA -d procurement_db -c 'select count(*) from purchase_requests'"
    )
    return int(out)


@pytest.fixture(scope="module")
def base_version(host):
    return current_release(host)


def test_new_release_under_steady_traffic_fails_no_request_and_rolls_back(
    host, secrets, tmp_path_factory, base_version
):
    name = host.backend.get_hostname()
    tree = release_tree(tmp_path_factory.mktemp("next"), base_version + ".post1", python=target_python(host))
    poller = Poller(PORTS[name], secrets["vault_app_admin_token"])
    rows_before = row_count(host)
    poller.start()
    try:
        time.sleep(2)
        # From the tree's source: no artifact folder (the scenario's inventory names the release's).
        result = deploy(playbook("deploy"), "--limit", name, "-e", f"app_source_dir={tree}", "-e", "app_artifact_dir=")
        time.sleep(2)
    finally:
        poller.stop()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert current_release(host) == base_version + ".post1"
    assert poller.ok > 20
    assert poller.failures == [], poller.failures[:5]
    assert row_count(host) == rows_before

    result = deploy(playbook("rollback"), "--limit", name)
    assert result.returncode == 0, result.stdout[-4000:]
    assert current_release(host) == base_version
    assert host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health/ready").stdout == "200"


def test_broken_release_is_switched_back_and_the_old_one_keeps_serving(host, secrets, tmp_path_factory, base_version):
    name = host.backend.get_hostname()
    tree = release_tree(
        tmp_path_factory.mktemp("broken"), base_version + ".post2", broken=True, python=target_python(host)
    )
    rows_before = row_count(host)
    result = deploy(
        playbook("deploy"),
        "--limit",
        name,
        "-e",
        f"app_source_dir={tree}",
        "-e",
        "app_artifact_dir=",
        "-e",
        "app_health_timeout=20",
    )
    assert result.returncode != 0
    # ansible-core prints task errors on stderr, folded across lines.
    assert f"Release {base_version}.post2 failed its health gate" in " ".join((result.stdout + result.stderr).split())
    assert current_release(host) == base_version
    assert host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health/ready").stdout == "200"
    assert row_count(host) == rows_before
