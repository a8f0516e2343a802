"""Check every role's arguments, as each host's inventory and the extra vars set them, before any role runs.

Ansible checks a role's argument_specs only when that role starts, so a bad
value for the fifth role of a run fails after the first four have changed the
host, and then prints the whole specification. This action reads the main
entry point of every role's meta/argument_specs.yml, checks the values the
hosts have for those options (inventory, group_vars and extra vars; role
defaults are the roles' own business) and returns each problem. It runs once,
on the controller, and reads the other hosts through hostvars, which templates
each value in its own host's context.

A value that cannot be worked out before facts are gathered (it names a fact
or another role's default) is left to the role's own check at its start.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase


def _optional(options):
    """The options as given: without `required` or `default` at the top, which the role's defaults settle."""
    spec = copy.deepcopy(options or {})
    for option in spec.values():
        option.pop("required", None)
        option.pop("default", None)
    return spec


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        hostvars = (task_vars or {}).get("hostvars") or {}
        specs = _specs(Path(self._task.args["roles_dir"]))
        problems = []
        for host in self._task.args["hosts"]:
            problems += _check(host, hostvars[host], specs)
        result.update(changed=False, problems=problems)
        return result


def _specs(roles_dir):
    """The main entry point's options of every role, by role name."""
    specs = {}
    for specs_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        entry = (yaml.safe_load(specs_file.read_text()) or {}).get("argument_specs", {}).get("main", {})
        specs[specs_file.parent.parent.name] = _optional(entry.get("options"))
    return specs


def _check(host, host_vars, specs):
    """The problems with one host's values; host_vars templates each value in that host's context."""
    problems = []
    for role, spec in specs.items():
        provided = {}
        for name in spec:
            if name not in host_vars:
                continue
            try:
                provided[name] = host_vars[name]
            except AnsibleUndefinedVariable:
                continue  # needs facts or role defaults: the role checks it when it starts
            except AnsibleError as error:
                problems.append(
                    {"host": host, "role": role, "variable": name, "error": f"cannot be worked out: {error.message}"}
                )
        if not provided:
            continue
        checked = ArgumentSpecValidator(spec).validate(provided, validate_role_argument_spec=True)
        for error in checked.errors:
            problems.append(
                {"host": host, "role": role, "variable": _variable(error, spec), "error": error.error_message}
            )
    return problems


def _variable(error, spec):
    """The top-level option an error is about (the validator names it only in its message)."""
    named = [name for name in spec if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", error.error_message)]
    return named[0] if named else "?"
