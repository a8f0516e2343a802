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
COLLECTION = Path("ansible_collections/procurement/ops")
GALAXY = COLLECTION / "galaxy.yml"
PYPROJECT = Path("app/pyproject.toml")
# The line each file keeps its version on (the first such line).
PATTERNS = {GALAXY: re.compile(r'(?m)^version: *"?([^"\s]+)"?$'), PYPROJECT: re.compile(r'(?m)^version = "([^"]+)"$')}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class ReleaseError(Exception):
    pass


def versions(root: Path) -> dict[Path, str]:
    found = {}
    for path, pattern in PATTERNS.items():
        match = pattern.search((root / path).read_text())
        if not match:
            raise ReleaseError(f"no version line in {path}")
        found[path] = match[1]
    return found


def current(root: Path = ROOT) -> str:
    found = versions(root)
    if len(set(found.values())) != 1:
        listed = ", ".join(f"{path} has {version}" for path, version in found.items())
        raise ReleaseError(f"the collection and the app must carry one version: {listed}")
    return found[GALAXY]


def bump(version: str, root: Path = ROOT, today: dt.date | None = None) -> str:
    """Set both versions to ``version`` and release the fragments under it; return the old version."""
    if not SEMVER.match(version):
        raise ReleaseError(f"{version!r} is not a version like 1.2.3")
    old = current(root)
    if tuple(map(int, version.split("."))) <= tuple(map(int, old.split("."))):
        raise ReleaseError(f"{version} is not after the current {old}")
    tool = shutil.which("antsibull-changelog")
    if not tool:
        raise ReleaseError("antsibull-changelog is not installed (make venv)")
    for path, pattern in PATTERNS.items():
        text = (root / path).read_text()
        start, end = pattern.search(text).span(1)
        (root / path).write_text(text[:start] + version + text[end:])
    day = (today or dt.date.today()).isoformat()
    subprocess.run([tool, "release", "--version", version, "--date", day], cwd=root / COLLECTION, check=True)
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="print the version; fail when the two disagree")
    group.add_argument("version", nargs="?", help="the release's version, e.g. 1.1.0")
    args = parser.parse_args(argv)
    try:
        if args.check:
            print(current())
        else:
            old = bump(args.version)
            print(f"release: {old} -> {args.version}; CHANGELOG.md lists the released fragments. Build it: make dist")
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
