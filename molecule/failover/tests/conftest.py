"""Helpers of the failover scenario: every host by name, and the stack scenario's clients."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import testinfra

os.environ.setdefault("PROCUREMENT_SERVER_NAME", "procurement.failover.test")
STACK_TESTS = Path(__file__).resolve().parents[2] / "stack" / "tests"
_spec = importlib.util.spec_from_file_location("stack_conftest", STACK_TESTS / "conftest.py")
stack = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = stack  # dataclasses look their module up there
_spec.loader.exec_module(stack)

PROJECT = stack.PROJECT
SERVER_NAME = stack.SERVER_NAME
failed_units = stack.failed_units
run_playbook = stack.deploy
vault_values = stack.vault_values
# The load balancer's HTTPS, published on the controller's loopback (molecule.yml).
LB_PORT = 9446
DB_HOSTS = ("failover-db1", "failover-db2")
QUERY = "runuser -u postgres -- psql -X -tA -d procurement_db -c {query!r}"


# The shared check-mode test (a dry run of the whole site right after the converge) is deselected here:
# test_failover.py runs the same dry run of the whole site after the leader has changed, a later state
# that includes the first, and a third one would cost six minutes of the scenario's verify.
REPLACED_HERE = "test_check_mode.py::test_check_mode_on_converged_hosts_reports_no_changes"


def pytest_collection_modifyitems(config, items):
    replaced = [item for item in items if item.nodeid.endswith(REPLACED_HERE)]
    if replaced:
        config.hook.pytest_deselected(items=replaced)
        items[:] = [item for item in items if item not in replaced]


class Writer(stack.Writer):
    """The stack scenario's writer, one write at a time with 70 ms between them."""

    interval = 0.07


class Writers:
    """Two writers side by side through the load balancer: about 20 writes a second here."""

    def __init__(self, token: str, prefix: str, limit_seconds: float = 300):
        self.prefix = prefix
        self.threads = [Writer(LB_PORT, token, prefix=f"{prefix} {n}", limit_seconds=limit_seconds) for n in range(2)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        for thread in self.threads:
            thread.stop()

    @property
    def writes(self) -> list:
        return sorted((w for thread in self.threads for w in thread.writes), key=lambda w: w.sent)


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
    return stack.Api(nodes["failover-app1"], SERVER_NAME)


def members(node) -> dict[str, dict]:
    """The cluster as Patroni lists it, asked on one member: {name: {Role, State, TL, ...}}."""
    out = node.check_output("/usr/local/sbin/procurement-patronictl list --format json")
    return {member["Member"]: member for member in json.loads(out)}


def psql(node, query: str) -> str:
    return node.check_output(QUERY.format(query=query))


def address(node) -> str:
    return node.check_output("hostname -I").split()[0]


def allowed_sources(node) -> dict[str, set[str]]:
    """The firewall's allowed sources by port ("5432/tcp"), from `ufw status` (To, Action, From, # comment)."""
    allowed: dict[str, set[str]] = {}
    for line in node.check_output("ufw status").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "ALLOW":
            allowed.setdefault(fields[0], set()).add(fields[2])
    return allowed


RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def leader(nodes) -> str:
    for name in DB_HOSTS:
        listed = nodes[name].run("/usr/local/sbin/procurement-patronictl list --format json")
        if listed.rc == 0:
            found = [m for m, v in members(nodes[name]).items() if v["Role"] == "Leader"]
            if found:
                return found[0]
    return ""


def wait_for_cluster(nodes, asked_on: str, timeout: float = 180, expected: set[str] | None = None) -> dict:
    """Until exactly the expected members (the db hosts by default) are listed, one leads, and every
    other one replicates (running or streaming) on its timeline."""
    expected = set(DB_HOSTS) if expected is None else expected
    deadline = time.monotonic() + timeout
    while True:
        state = members(nodes[asked_on])
        leaders = [v for v in state.values() if v["Role"] == "Leader"]
        replicas = [v for v in state.values() if v["Role"] != "Leader"]
        if (
            len(leaders) == 1
            and set(state) == expected
            and all(v["State"] in ("running", "streaming") and v.get("TL") == leaders[0].get("TL") for v in replicas)
        ):
            return state
        assert time.monotonic() < deadline, f"the cluster did not settle as {sorted(expected)}: {state}"
        time.sleep(2)


def names_on(node, prefix: str) -> set[str]:
    return set(psql(node, f"select name from suppliers where name like '{prefix}%'").split("\n")) - {""}
