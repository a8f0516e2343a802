#!/usr/bin/env python3
"""Keep the README's role-variable tables in step with each role's argument_specs.

scripts/role_docs.py          rewrite the tables in README.md
scripts/role_docs.py --check  exit 1 when README.md is out of date (used by `make lint`)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- role-vars:start -->", "<!-- role-vars:end -->"
ROLE_ORDER = ["base", "hardening", "firewall", "postgresql", "pgbouncer", "redis", "nginx", "app"]


def cell(value) -> str:
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n..."):
        text = text[:-4]
    return text.replace("|", "\\|").replace("\n", " ")


def role_table(role: Path) -> str:
    spec = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    lines = [
        f"### `{role.name}`",
        "",
        spec.get("short_description", ""),
        "",
        "| variable | type | default | description |",
        "|---|---|---|---|",
    ]
    for name, option in spec.get("options", {}).items():
        if option.get("required"):
            default = "**required**"
        elif "default" in option:
            default = f"`{cell(option['default'])}`"
        else:
            default = "(unset)"
        description = option.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        if option.get("choices"):
            description += " One of: " + ", ".join(f"`{c}`" for c in option["choices"]) + "."
        lines.append(f"| `{name}` | {option.get('type', 'str')} | {default} | {cell(description)} |")
    return "\n".join(lines) + "\n"


def tables() -> str:
    roles = sorted(
        (p for p in (ROOT / "roles").iterdir() if (p / "meta/argument_specs.yml").exists()),
        key=lambda p: (ROLE_ORDER.index(p.name) if p.name in ROLE_ORDER else len(ROLE_ORDER), p.name),
    )
    return "\n".join(role_table(role) for role in roles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when README.md is out of date")
    args = parser.parse_args()
    text = README.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        print(f"README.md has no {START} marker", file=sys.stderr)
        return 1
    updated = f"{head}{START}\n{tables()}{END}{tail}"
    if args.check:
        if updated != text:
            print("README.md role tables are out of date: run scripts/role_docs.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
