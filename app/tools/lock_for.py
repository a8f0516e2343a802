"""Narrow the universal lock to one target Python on manylinux x86_64.

``requirements.lock`` holds every pin for Python 3.9-3.13 with environment
markers; a wheelhouse is built for one interpreter, so we keep the entries
whose markers hold for that target and drop the markers. Hashes are kept.
"""

from __future__ import annotations

import sys

from packaging.markers import Marker


def target_environment(version: str) -> dict:
    return {
        "python_version": version,
        "python_full_version": version + ".0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
        "implementation_version": version + ".0",
        "extra": "",
    }


def narrow(lines, version: str):
    env = target_environment(version)
    keep = False
    for raw in lines:
        line = raw.rstrip("\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line.startswith(" "):
            requirement = stripped.rstrip("\\").strip()
            spec, _, marker = requirement.partition(";")
            keep = not marker.strip() or Marker(marker.strip()).evaluate(env)
            if keep:
                yield spec.strip() + " \\"
        elif keep:
            yield line


def main() -> None:
    source, version, dest = sys.argv[1:4]
    with open(source, encoding="utf-8") as handle:
        out = list(narrow(handle, version))
    # The last hash line of each block must not end with a continuation.
    cleaned = []
    for i, line in enumerate(out):
        nxt = out[i + 1] if i + 1 < len(out) else ""
        if line.endswith("\\") and not nxt.startswith(" "):
            line = line.rstrip("\\").rstrip()
        cleaned.append(line)
    with open(dest, "w", encoding="utf-8") as handle:
        handle.write(f"# Pinned dependencies for CPython {version} on manylinux x86_64.\n")
        handle.write("\n".join(cleaned) + "\n")


if __name__ == "__main__":
    main()
