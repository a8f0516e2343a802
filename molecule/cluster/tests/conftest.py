"""Helpers of the cluster scenario: every host by name, and the stack scenario's clients."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import testinfra

# The stack scenario's helpers (traffic poller, release trees, deploy runs)
# serve here too, pointed at this scenario's server name.
os.environ.setdefault("PROCUREMENT_SERVER_NAME", "procurement.cluster.test")
STACK_TESTS = Path(__file__).resolve().parents[2] / "stack" / "tests"
_spec = importlib.util.spec_from_file_location("stack_conftest", STACK_TESTS / "conftest.py")
stack = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = stack  # dataclasses look their module up there
_spec.loader.exec_module(stack)

PROJECT = stack.PROJECT
SERVER_NAME = stack.SERVER_NAME
Poller = stack.Poller
deploy = stack.deploy
playbook = stack.playbook
concurrent_writes = stack.concurrent_writes
too_many_clients = stack.too_many_clients
stop_postgresql = stack.stop_postgresql
failed_units = stack.failed_units
wait_ready = stack.wait_ready
TARGETS = stack.TARGETS
Writer = stack.Writer
Api = stack.Api
vault_values = stack.vault_values
# The load balancer's HTTPS, published on the controller's loopback (molecule.yml).
LB_PORT = 9445

# test_zero_downtime_deploys imports these names from "conftest".
sys.path.insert(0, str(STACK_TESTS))


@pytest.fixture(scope="session")
def nodes() -> dict:
    """Every host of the scenario, by inventory name."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    hosts = testinfra.get_hosts([f"ansible://all?ansible_inventory={inventory}"])
    return {h.backend.get_hostname(): h for h in hosts}


@pytest.fixture(scope="session")
def secrets() -> dict:
    return vault_values()


@pytest.fixture(scope="session")
def lb(nodes):
    """The JSON API through the load balancer, as a client on the web host sees it."""
    return stack.Api(nodes["cluster-web1"], SERVER_NAME)


def address(node) -> str:
    """A host's address on the scenario's network."""
    return node.check_output("hostname -I").split()[0]
