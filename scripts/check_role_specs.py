#!/usr/bin/env python3
"""Check that every role's defaults/main.yml and meta/argument_specs.yml agree.

ansible-core validates role arguments against argument_specs.yml, but nothing
keeps that file in step with defaults/main.yml; left alone the two drift, and
the documentation generated from the spec lies. For each role this checks:

- every default has an option in the ``main`` entry point;
- an option's ``default`` equals the value in defaults/main.yml (compared as
  parsed YAML), and an option with ``required: true`` has no default at all;
- every option has a ``type`` and a ``description``;
- ``choices``, when given, include the default;
- every public variable (defaults and options) starts with ``<role>_``.

Usage: check_role_specs.py [ROLES_DIR]   (default: roles/ next to scripts/)
Exits 1 listing every problem as "role: variable: problem".
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ENTRY_POINT = "main"


class _Loader(yaml.SafeLoader):
    """Safe loader that also reads Ansible's !vault and !unsafe tags as text."""


def _tagged_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)


_Loader.add_constructor("!vault", _tagged_text)
_Loader.add_constructor("!unsafe", _tagged_text)


def load_yaml(path: Path) -> object:
    with path.open(encoding="utf-8") as stream:
        return yaml.load(stream, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def same(left: object, right: object) -> bool:
    """Equality that, unlike ==, tells true from 1 and "1" from 1 at any depth."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right))
    return left == right


def check_role(role: Path) -> list[str]:
    """Return the problems found in one role, each prefixed by role and variable."""
    name = role.name
    problems: list[str] = []

    def report(variable: str, problem: str) -> None:
        problems.append(f"{name}: {variable}: {problem}")

    defaults_file = role / "defaults" / "main.yml"
    spec_file = role / "meta" / "argument_specs.yml"
    try:
        defaults = load_yaml(defaults_file) if defaults_file.is_file() else {}
        spec = load_yaml(spec_file) if spec_file.is_file() else None
    except yaml.YAMLError as error:
        return [f"{name}: -: cannot parse YAML: {error}"]
    defaults = defaults or {}
    if not isinstance(defaults, dict):
        return [f"{name}: -: {defaults_file.relative_to(role.parent)} is not a mapping"]

    if spec is None:
        if defaults:
            report("-", "defaults/main.yml has variables but meta/argument_specs.yml is missing")
        return problems
    entry = ((spec or {}).get("argument_specs") or {}).get(ENTRY_POINT)
    if not isinstance(entry, dict):
        report("-", f"meta/argument_specs.yml has no '{ENTRY_POINT}' entry point")
        return problems
    options = entry.get("options") or {}

    prefix = f"{name}_"
    for variable in sorted(set(defaults) | set(options)):
        if not str(variable).startswith(prefix):
            report(variable, f"public variable does not start with '{prefix}'")

    for variable in defaults:
        if variable not in options:
            report(variable, "has a default in defaults/main.yml but no option in argument_specs.yml")

    for variable, option in options.items():
        if not isinstance(option, dict):
            report(variable, "option is not a mapping")
            continue
        if not option.get("type"):
            report(variable, "option has no type")
        if not option.get("description"):
            report(variable, "option has no description")
        required = bool(option.get("required", False))
        if required:
            if "default" in option:
                report(variable, "is required: true but has a default in argument_specs.yml")
            if variable in defaults:
                report(variable, "is required: true but has a default in defaults/main.yml")
        elif "default" in option:
            if variable not in defaults:
                report(variable, "has a default in argument_specs.yml but none in defaults/main.yml")
            elif not same(option["default"], defaults[variable]):
                report(
                    variable,
                    f"default differs: argument_specs.yml has {option['default']!r}, "
                    f"defaults/main.yml has {defaults[variable]!r}",
                )
        elif variable in defaults:
            report(variable, f"argument_specs.yml gives no default; defaults/main.yml has {defaults[variable]!r}")
        choices = option.get("choices")
        if (
            choices is not None
            and variable in defaults
            and not any(same(defaults[variable], choice) for choice in choices)
        ):
            report(variable, f"default {defaults[variable]!r} is not one of the choices {choices!r}")
    return problems


def main(argv: list[str]) -> int:
    roles_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "roles"
    roles = sorted(path for path in roles_dir.iterdir() if path.is_dir()) if roles_dir.is_dir() else []
    problems = [problem for role in roles for problem in check_role(role)]
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_role_specs: {len(problems)} problem(s) in {roles_dir}", file=sys.stderr)
        return 1
    print(f"check_role_specs: {len(roles)} role(s) agree with their argument specs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
