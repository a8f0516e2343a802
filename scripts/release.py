"""One version for the collection procurement.ops and the procurement app, and its release.

scripts/release.py --check      print the version; fail when galaxy.yml and app/pyproject.toml disagree
scripts/release.py VERSION      bump both to VERSION and release the changelog fragments under it
                                (antsibull-changelog: changelogs/changelog.yaml and CHANGELOG.md)

A release is then built with `make dist` (the collection tarball, the app's artifacts, SHA256SUMS).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "ansible_collections/procurement/ops"
GALAXY = COLLECTION / "galaxy.yml"
PYPROJECT = ROOT / "app/pyproject.toml"
# The line each file keeps its version on (the first such line).
PATTERNS = {GALAXY: re.compile(r'(?m)^version: *"?([^"\s]+)"?$'), PYPROJECT: re.compile(r'(?m)^version = "([^"]+)"$')}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def versions() -> dict[Path, str]:
    found = {}
    for path, pattern in PATTERNS.items():
        match = pattern.search(path.read_text())
        if not match:
            raise SystemExit(f"release: no version line in {path.relative_to(ROOT)}")
        found[path] = match[1]
    return found


def current() -> str:
    found = versions()
    if len(set(found.values())) != 1:
        listed = ", ".join(f"{path.relative_to(ROOT)} has {version}" for path, version in found.items())
        raise SystemExit(f"release: the collection and the app must carry one version: {listed}")
    return found[GALAXY]


def bump(version: str) -> None:
    if not SEMVER.match(version):
        raise SystemExit(f"release: {version!r} is not a version like 1.2.3")
    old = current()
    if tuple(map(int, version.split("."))) <= tuple(map(int, old.split("."))):
        raise SystemExit(f"release: {version} is not after the current {old}")
    tool = shutil.which("antsibull-changelog")
    if not tool:
        raise SystemExit("release: antsibull-changelog is not installed (make venv)")
    for path, pattern in PATTERNS.items():
        text = path.read_text()
        start, end = pattern.search(text).span(1)
        path.write_text(text[:start] + version + text[end:])
    subprocess.run(
        [tool, "release", "--version", version, "--date", dt.date.today().isoformat()], cwd=COLLECTION, check=True
    )
    print(f"release: {old} -> {version}; CHANGELOG.md has the fragments released. Build it with: make dist")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="print the version; fail when the two disagree")
    group.add_argument("version", nargs="?", help="the release's version, e.g. 1.1.0")
    args = parser.parse_args(argv)
    if args.check:
        print(current())
    else:
        bump(args.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
