# SPDX-License-Identifier: MIT
# The documentation of the action plugin plugins/action/role_arguments.py,
# which does all the work on the controller; there is no module to run.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: role_arguments
short_description: Check every role's arguments as each host sets them, before any role runs
description:
  - Reads the main entry point of each role's C(meta/argument_specs.yml) under O(roles_dir) and checks the values
    that each host in O(hosts) has for those options (inventory, group_vars and extra vars), templated in that
    host's own context.
  - Ansible checks a role's argument_specs only when that role starts; this check runs once, on the controller,
    so that a bad value stops a run before any host is changed.
  - A value that cannot be worked out before facts are gathered (it names a fact or another role's default) is
    left to the role's own check at its start. Role defaults are not checked here.
version_added: 1.0.0
author:
  - Procurement platform team (@procurement-platform)
options:
  roles_dir:
    description: The folder holding the roles whose argument_specs are checked.
    type: path
    required: true
  hosts:
    description: The inventory hosts whose values are checked.
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
    description: Reads only; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
notes:
  - The filter P(procurement.ops.argument_lines#filter) turns RV(problems) into one line per variable.
"""

EXAMPLES = r"""
- name: Check every role's arguments as each host sets them
  procurement.ops.role_arguments:
    roles_dir: "{{ role_path | dirname }}"
    hosts: "{{ ansible_play_hosts_all }}"
  register: arguments
  run_once: true
"""

RETURN = r"""
problems:
  description: One entry per bad value; empty when every value fits its role's specification.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The host whose value it is.
      type: str
      returned: always
    role:
      description: The role whose argument_specs the value fails.
      type: str
      returned: always
    variable:
      description: The top-level variable the problem is about.
      type: str
      returned: always
    error:
      description: What is wrong with it.
      type: str
      returned: always
"""
