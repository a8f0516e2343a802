"""Pytest plugin of every scenario's verify step (``-p verify_plugin``, .config/molecule/config.yml).

- Tests marked ``converged_state`` run first. Other tests deploy, restore and
  roll releases; a test of the converged state must see the hosts as the
  converge left them, whatever order Molecule gives the test paths in.
- Ansible reaches the test containers through the Docker API
  (``community.docker.docker_api``: no docker CLI process per task).
  testinfra knows that connection under its older name only, so it is read
  as ``community.docker.docker`` here: testinfra then runs the tests'
  commands with ``docker exec`` as before, instead of one Ansible ad-hoc run
  per command.
"""

from __future__ import annotations

import copy

import pytest
import testinfra.utils.ansible_runner as ansible_runner

_DOCKER_API = "community.docker.docker_api"
_get_ansible_host = ansible_runner.get_ansible_host


def _get_ansible_host_docker_api(config, inventory, host, *args, **kwargs):
    hostvars = inventory.get("_meta", {}).get("hostvars", {}).get(host, {})
    if hostvars.get("ansible_connection") == _DOCKER_API:
        inventory = copy.deepcopy(inventory)
        inventory["_meta"]["hostvars"][host]["ansible_connection"] = "community.docker.docker"
    return _get_ansible_host(config, inventory, host, *args, **kwargs)


ansible_runner.get_ansible_host = _get_ansible_host_docker_api


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "converged_state: reads the hosts as the converge left them; runs before every other test"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: 0 if item.get_closest_marker("converged_state") else 1)
