"""One version for the collection and the app (scripts/release.py), and the files a release is built from."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = ROOT / "ansible_collections/procurement/ops"
_spec = importlib.util.spec_from_file_location("release", ROOT / "scripts/release.py")
release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release)


def copy_tree(tmp_path: Path) -> Path:
    """The files a release touches, in a scratch tree laid out as the repository."""
    shutil.copytree(COLLECTION / "changelogs", tmp_path / "ansible_collections/procurement/ops/changelogs")
    shutil.copy(COLLECTION / "galaxy.yml", tmp_path / "ansible_collections/procurement/ops/galaxy.yml")
    (tmp_path / "app").mkdir()
    shutil.copy(ROOT / "app/pyproject.toml", tmp_path / "app/pyproject.toml")
    return tmp_path


def test_the_collection_and_the_app_carry_one_version():
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    app = re.search(r'(?m)^version = "([^"]+)"$', (ROOT / "app/pyproject.toml").read_text())[1]
    assert galaxy["version"] == app == release.current()


def test_two_versions_are_refused_with_both_named(tmp_path):
    root = copy_tree(tmp_path)
    pyproject = root / "app/pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = "[^"]+"$', 'version = "9.9.9"', pyproject.read_text(), count=1))
    with pytest.raises(release.ReleaseError, match=r"galaxy.yml has .*pyproject.toml has 9\.9\.9"):
        release.current(root)


def test_a_release_bumps_both_and_turns_the_fragments_into_the_changelog(tmp_path):
    root = copy_tree(tmp_path)
    fragments = root / "ansible_collections/procurement/ops/changelogs/fragments"
    (fragments / "999-test.yml").write_text("---\nbugfixes:\n  - A change made for this test.\n")
    old = release.current(root)
    major, minor, _ = map(int, old.split("."))
    new = f"{major}.{minor + 1}.0"

    assert release.bump(new, root, today=dt.date(2026, 12, 6)) == old

    assert release.current(root) == new
    assert not list(fragments.glob("*.yml")), "the fragments are released, not kept"
    changelog = (root / "ansible_collections/procurement/ops/CHANGELOG.md").read_text()
    assert f"v{new}".replace(".", "\\.") in changelog
    assert "A change made for this test\\." in changelog
    releases = yaml.safe_load((fragments.parent / "changelog.yaml").read_text())["releases"]
    assert releases[new]["release_date"] == "2026-12-06"
    assert "A change made for this test." in releases[new]["changes"]["bugfixes"]


@pytest.mark.parametrize("version", ["1.0", "v2.0.0", "the current one"])
def test_a_version_that_is_not_newer_or_not_semver_is_refused(tmp_path, version):
    root = copy_tree(tmp_path)
    before = (root / "ansible_collections/procurement/ops/galaxy.yml").read_text()
    with pytest.raises(release.ReleaseError):
        release.bump(release.current(root) if version == "the current one" else version, root)
    assert (root / "ansible_collections/procurement/ops/galaxy.yml").read_text() == before


def test_the_execution_environment_pins_the_controllers_versions():
    pins = {}
    for line in (ROOT / "requirements/controller.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    ee = [line for line in (ROOT / "requirements/ee.txt").read_text().splitlines() if "==" in line]
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    ee += [definition["dependencies"][key]["package_pip"] for key in ("ansible_core", "ansible_runner")]
    for pin in ee:
        name, version = pin.split("==")
        assert pins.get(name.lower()) == version, f"{pin}: the controller has {pins.get(name.lower())}"


def test_the_execution_environment_definition_is_valid():
    from ansible_builder.user_definition import UserDefinition  # noqa: PLC0415 - the controller's ansible-builder

    definition = UserDefinition(str(ROOT / "execution-environment.yml"))
    definition.validate()  # the schema, and the requirement files it names exist
    assert definition.build_arg_defaults["EE_BASE_IMAGE"] == "procurement-ee-base:debian12"
    galaxy = yaml.safe_load((ROOT / "requirements/ee-galaxy.yml").read_text())
    assert galaxy["collections"] == [{"name": "/build/procurement-ops.tar.gz", "type": "file"}]
