#!/usr/bin/env python3
"""Fail when the docs or a code comment name a file of the repository that is not there.

scripts/check_doc_paths.py [PATH...]   (default: every tracked file; used by `make lint`)

Checked:
- every repository path named in Markdown prose (outside code blocks) and in
  the comments of code and configuration (`#` lines, `{# #}` in templates);
  a path counts when its first part is a top-level entry of the repository,
  and it may be written from the root or from the naming file's folder;
- every section named as `FILE.md, "Heading"` (or `README, "Heading"`):
  FILE must have that heading.

Not checked: CHANGELOG.md (it names files as they were), paths with placeholders (`<env>`, `*`, `{{ }}`, `$VAR`), paths
on the managed hosts (absolute ones) and the files the bundle or its user
creates (GENERATED below).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Made by a run, not kept in the repository.
GENERATED = (
    ".cache/",
    ".venv/",
    "app/.venv/",
    "app/dist/",
    "dist/",
    "artifacts/",
    "collections/",
    "inventory/sandbox/.generated/",
    "inventory/sandbox-cluster/.generated/",
    # What the README's quick start has the operator create from the example.
    "inventory/production/",
)
COMMENTED = {".py", ".yml", ".yaml", ".sh", ".cfg", ".toml", ".ini", ".j2", ".txt", ".in"}
PATH = re.compile(r"(?<![\w/.$~:-])((?:\.?[A-Za-z0-9_][\w.-]*/)+[\w.-]*)")
SECTION = re.compile(r"\b(README|[\w./-]+\.md),?\s+\"([^\"]+)\"")
PLACEHOLDER = re.compile(r"[<>*{}$…]")
FENCE = re.compile(r"^\s*(```|~~~)")


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in out.split("\0") if name]


def top_level() -> set[str]:
    return {path.relative_to(ROOT).parts[0] for path in tracked()}


def prose(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of what is checked in the file."""
    if path.name == "CHANGELOG.md":
        return []
    lines = path.read_text(errors="replace").splitlines()
    if path.suffix == ".md":
        kept, fenced = [], False
        for number, line in enumerate(lines, 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                kept.append((number, line))
        return kept
    if path.suffix in COMMENTED or path.name == "Makefile":
        kept = []
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("#") and not stripped.startswith("#!"):
                kept.append((number, stripped))
            elif "{#" in line:
                kept.append((number, line[line.index("{#") :]))
        return kept
    return []


def exists(name: str, source: Path) -> bool:
    name = name.rstrip("/.")
    for base in source.parents:
        if (base / name).exists():
            return True
        if base == ROOT:
            return False
    return (ROOT / name).exists()


def headings(path: Path) -> set[str]:
    return {
        line.lstrip("#").strip().strip("`").lower()
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith("#")
    }


def problems(files: list[Path]) -> list[str]:
    roots = top_level()
    found = []
    for source in files:
        where = source.relative_to(ROOT)
        for number, line in prose(source):
            for match in PATH.finditer(line):
                name = match.group(1).rstrip(".,:;")
                if PLACEHOLDER.search(line[match.start() : match.end() + 1]) or name.split("/")[0] not in roots:
                    continue
                if name.startswith(GENERATED) or name.rstrip("/.") + "/" in GENERATED:
                    continue
                if not exists(name, source):
                    found.append(f"{where}:{number}: {name} does not exist")
            for match in SECTION.finditer(line):
                target = "README.md" if match.group(1) == "README" else match.group(1)
                candidates = [ROOT / target, source.parent / target]
                doc = next((c for c in candidates if c.exists()), None)
                if doc is None:
                    found.append(f"{where}:{number}: {target} does not exist")
                elif match.group(2).lower() not in headings(doc):
                    found.append(f'{where}:{number}: {target} has no section "{match.group(2)}"')
    return found


def main(argv: list[str]) -> int:
    files = [Path(arg).resolve() for arg in argv] or [p for p in tracked() if p.is_file()]
    found = problems(files)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
