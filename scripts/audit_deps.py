#!/usr/bin/env python3
"""Audit the app's locked dependencies with pip-audit; fail on a vulnerability that has a fix.

pip-audit reads the pins of app/requirements.lock that apply to this Python
(the release artifact is built for it) and asks PyPI's vulnerability data
about each exact version. Where that per-version answer cannot be had (some
mirrors and proxies serve only a project's JSON page), the project page is
used instead when the pinned version is the project's latest release: PyPI
lists the known vulnerabilities of that release there. A pin that neither
source can answer for is "unaudited", and counts as a failure unless
--allow-unaudited is given: a check that audited nothing must not pass.

Prints RESULT lines and exits 1 when a goal is missed:
  RESULT pip_audit_dependencies=N      pins audited for this Python
  RESULT pip_audit_fixable=N           known vulnerabilities with a fixed version (goal 0)
  RESULT pip_audit_unfixed=N           known vulnerabilities without a fix yet (reported)
  RESULT pip_audit_unaudited=N         pins no source could answer for (goal 0)

Usage: audit_deps.py [--lock app/requirements.lock] [--allow-unaudited]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKIPPED = re.compile(r"could not be audited: (?P<name>\S+) \((?P<version>[^)]+)\)")
PYPI_PROJECT = "https://pypi.org/pypi/{name}/json"


def pip_audit(lock: Path) -> dict:
    """pip-audit's JSON report for the lock's pins that apply to this Python."""
    binary = shutil.which("pip-audit") or str(Path(sys.executable).parent / "pip-audit")
    result = subprocess.run(
        [binary, "-r", str(lock), "--disable-pip", "--no-deps", "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise SystemExit(
            f"audit_deps: pip-audit gave no report (rc {result.returncode}):\n{result.stderr[-2000:]}"
        ) from exc


def project_page_vulns(name: str, version: str) -> list[dict] | None:
    """Vulnerabilities of name==version from the project's JSON page, or None if it cannot tell."""
    try:
        with urllib.request.urlopen(PYPI_PROJECT.format(name=name), timeout=30) as response:  # noqa: S310 - fixed https URL
            page = json.load(response)
    except (OSError, ValueError):
        return None
    if page.get("info", {}).get("version") != version or "vulnerabilities" not in page:
        return None
    return [
        {"id": vuln.get("id", "?"), "fix_versions": vuln.get("fixed_in") or [], "aliases": vuln.get("aliases") or []}
        for vuln in page["vulnerabilities"] or []
        if not vuln.get("withdrawn")
    ]


def audit(lock: Path) -> dict:
    """Every pin's findings: {'audited': [...], 'unaudited': [...], 'fixable': [...], 'unfixed': [...]}."""
    report = pip_audit(lock)
    summary: dict[str, list] = {"audited": [], "unaudited": [], "fixable": [], "unfixed": []}
    for dep in report.get("dependencies", []):
        name, version, vulns = dep.get("name"), dep.get("version"), dep.get("vulns")
        if "skip_reason" in dep:
            match = SKIPPED.search(dep["skip_reason"])
            version = match["version"] if match else None
            vulns = project_page_vulns(name, version) if version else None
            if vulns is None:
                summary["unaudited"].append(f"{name}=={version or '?'}: {dep['skip_reason']}")
                continue
        summary["audited"].append(f"{name}=={version}")
        for vuln in vulns or []:
            entry = f"{name}=={version} {vuln['id']} fixed in {', '.join(vuln['fix_versions']) or 'no release yet'}"
            summary["fixable" if vuln["fix_versions"] else "unfixed"].append(entry)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lock", type=Path, default=REPO / "app" / "requirements.lock")
    parser.add_argument("--allow-unaudited", action="store_true", help="do not fail on pins no source answered for")
    args = parser.parse_args(argv)
    summary = audit(args.lock)
    for line in summary["fixable"] + summary["unfixed"]:
        print(f"audit_deps: {line}")
    for line in summary["unaudited"]:
        print(f"audit_deps: unaudited {line}")
    print(f"RESULT pip_audit_dependencies={len(summary['audited'])}")
    print(f"RESULT pip_audit_fixable={len(summary['fixable'])}")
    print(f"RESULT pip_audit_unfixed={len(summary['unfixed'])}")
    print(f"RESULT pip_audit_unaudited={len(summary['unaudited'])}")
    failed = bool(summary["fixable"]) or (bool(summary["unaudited"]) and not args.allow_unaudited)
    if not summary["audited"] and not summary["unaudited"]:
        print("audit_deps: the lock gave pip-audit no dependency to audit", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
