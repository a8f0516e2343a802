#!/usr/bin/python
"""Report facts recorded in a JSON file as the host's facts, as setup would."""

from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True}}, supports_check_mode=True)
    with open(module.params["path"], encoding="utf-8") as stream:
        facts = json.load(stream)
    module.exit_json(changed=False, ansible_facts=facts)


if __name__ == "__main__":
    main()
