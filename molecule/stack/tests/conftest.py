"""Helpers for talking to a deployed all-in-one host the way a client would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import testinfra

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
VAULT = PROJECT / "inventory/sandbox/group_vars/all/vault.yml"
VAULT_PASSWORD = PROJECT / "inventory/sandbox/vault-password.txt"
# procurement_server_name of the scenario (group_vars/all/stack.yml). The
# tests can target another deployed host, such as the sandbox:
#   PROCUREMENT_SERVER_NAME=procurement.sandbox.test PROCUREMENT_INVENTORY=inventory/sandbox \
#   ANSIBLE_VAULT_PASSWORD_FILE=inventory/sandbox/vault-password.txt \
#   pytest --hosts=ansible://sandbox-aio --ansible-inventory=inventory/sandbox --force-ansible --sudo molecule/stack/tests/...
sys.path.insert(0, str(PROJECT / "scripts"))
import vault_values as vault_values_reader  # noqa: E402 - scripts/vault_values.py, the one Vault reader

SERVER_NAME = os.environ.get("PROCUREMENT_SERVER_NAME", "procurement.stack.test")
INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE") or str(PROJECT / os.environ.get("PROCUREMENT_INVENTORY", ""))
# Where the controller reaches each host's HTTPS (published ports), the
# Docker network a client outside the host joins, and the host's name there.
TARGETS = {
    "stack-debian12": {"https_port": 9443, "network": "molecule-stack", "address": "stack-debian12"},
    "stack-debian13": {"https_port": 9444, "network": "molecule-stack", "address": "stack-debian13"},
    "sandbox-aio": {"https_port": 8443, "network": "procurement-sandbox", "address": "procurement-sandbox-aio"},
}


def playbook(name: str) -> str:
    """A playbook of the collection procurement.ops, as ansible-playbook names it: in this scenario the
    collection installed from its tarball (molecule.yml), against the sandbox the repository's."""
    return "procurement.ops." + name.removesuffix(".yml")


def deploy(*extra: str) -> subprocess.CompletedProcess:
    """ansible-playbook against the scenario's inventory, as an operator runs it (plain output, captured)."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )


def vault_values() -> dict:
    """Every value of the sandbox's Vault, which the scenarios deploy with."""
    return vault_values_reader.read(VAULT, VAULT_PASSWORD)


class Api:
    """JSON API client that runs curl inside the host, through Nginx over HTTPS."""

    def __init__(self, host, server_name=SERVER_NAME):
        self.host = host
        self.server_name = server_name
        self.base = f"https://{server_name}"

    def call(self, method, path, token=None, body=None, headers=None):
        resolve = f"{self.server_name}:443:127.0.0.1"
        cmd = ["curl", "-sk", "--resolve", resolve, "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method]
        if token:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        cmd.append(self.base + path)
        result = self.host.run(" ".join(shlex.quote(c) for c in cmd))
        text, _, status = result.stdout.rpartition("\n")
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return int(status or 0), payload

    def ok(self, method, path, token=None, body=None, expect=(200, 201)):
        status, payload = self.call(method, "/api/v1" + path, token, body)
        assert status in expect, f"{method} {path} -> {status}: {payload}"
        return payload


# Many clients writing at once, straight at one app node (no nginx, so no
# rate limit): each client POSTs new suppliers until the time is up. Runs on
# the host with its own python3; the token comes on stdin.
_WRITES_SCRIPT = r"""
import collections, json, sys, threading, time, urllib.error, urllib.request
url, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
token = sys.stdin.read().strip()
counts, lock = collections.Counter(), threading.Lock()
deadline = time.monotonic() + seconds

def client(number):
    sent = 0
    while time.monotonic() < deadline:
        sent += 1
        body = json.dumps({"name": f"load {number}-{sent}-{time.time_ns()}", "category": "load"}).encode()
        request = urllib.request.Request(url + "/api/v1/suppliers", data=body, method="POST", headers={
            "Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except Exception as error:
            status = type(error).__name__
        with lock:
            counts[str(status)] += 1

threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(counts))
"""


def concurrent_writes(client, url: str, token: str, clients: int = 64, seconds: float = 10) -> dict:
    """Status counts of `clients` concurrent writers against `url` for `seconds`, run on the host `client`."""
    client.run(f"cat > /tmp/concurrent_writes.py <<'EOF'\n{_WRITES_SCRIPT}EOF")
    command = (
        f"printf %s {shlex.quote(token)} | python3 /tmp/concurrent_writes.py {shlex.quote(url)} {clients} {seconds}"
    )
    return json.loads(client.check_output(command))


def stop_postgresql(host) -> None:
    """The manual's `systemctl stop postgresql`, then wait until the server is really gone.

    The command returns once Debian's umbrella unit has stopped; the cluster's
    own unit (PartOf it) may still be shutting down on a busy machine.
    """
    host.check_output("systemctl stop postgresql")
    host.check_output("timeout 60 sh -c 'while pg_isready -q -h 127.0.0.1; do sleep 0.2; done'")


def wait_ready(host, timeout: int = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health/ready").stdout
        if status == "200":
            return
        time.sleep(2)
    raise AssertionError("the service did not report ready")


def failed_units(host, timeout: int = 240) -> tuple[str, str]:
    """systemd's state once the boot has ended (waiting first for its bus), and its failed units."""
    state = host.run(
        f"timeout {timeout} sh -c 'while :; do state=$(systemctl is-system-running --wait 2>/dev/null);"
        ' case "$state" in running|degraded|maintenance|stopping) break;; esac; sleep 1; done; echo $state\''
    ).stdout.strip()
    return state, host.check_output("systemctl --failed --no-legend --plain")


def too_many_clients(database) -> int:
    """Lines of PostgreSQL's log (Debian's cluster log) that refused a connection for want of slots."""
    return int(database.run("cat /var/log/postgresql/*.log | grep -c 'too many clients' || true").stdout.strip() or 0)


@pytest.fixture(scope="module")
def secrets():
    return vault_values()


@pytest.fixture()
def api(host):
    return Api(host)


def peer_of(host):
    """The other platform of the scenario, to act from outside this host."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    me = host.backend.get_hostname()
    everyone = testinfra.get_hosts([f"ansible://all?ansible_inventory={inventory}"])
    return next(h for h in everyone if h.backend.get_hostname() != me)


@pytest.fixture()
def peer(host):
    return peer_of(host)


@pytest.fixture(scope="module")
def people(host, secrets):
    """A requester, an approver and a buyer, created through the API by the admin."""
    api = Api(host)
    admin = secrets["vault_app_admin_token"]
    suffix = str(int(time.time() * 1000))
    tokens = {"admin": admin}
    for role in ("requester", "approver", "buyer"):
        created = api.ok("POST", "/users", admin, {"name": f"{role}-{suffix}", "role": role})
        tokens[role] = created["token"]
    return tokens


def purchasing_flow(api, people, before_receipt=None):
    """A purchase from a new supplier, through Nginx: request, approval, order and receipt.

    Returns the supplier and the received order. ``before_receipt(supplier)``
    runs once the supplier and the item exist, before anything is requested.
    """
    supplier = api.ok(
        "POST",
        "/suppliers",
        people["buyer"],
        {"name": f"Acme {time.time()}", "category": "office", "contact": "a@example.com"},
    )
    item = api.ok(
        "POST", "/items", people["buyer"], {"sku": f"PAPER-{time.time()}", "name": "Paper A4", "unit_cost": 4.5}
    )
    if before_receipt:
        before_receipt(supplier)

    draft = api.ok(
        "POST",
        "/requests",
        people["requester"],
        {
            "justification": "printer room",
            "lines": [{"item_id": item["id"], "quantity": 10, "estimated_unit_price": 4.5}],
        },
    )
    api.ok("POST", f"/requests/{draft['id']}/submit", people["requester"])
    approved = api.ok("POST", f"/requests/{draft['id']}/approve", people["approver"], {"comment": "ok"})
    assert approved["status"] == "approved"
    order = api.ok(
        "POST",
        "/orders",
        people["buyer"],
        {
            "request_id": draft["id"],
            "supplier_id": supplier["id"],
            "expected_delivery_date": dt.date.today().isoformat(),
        },
    )
    received = api.ok(
        "POST",
        f"/orders/{order['id']}/receipts",
        people["buyer"],
        {"delivery_date": dt.date.today().isoformat(), "lines": [{"line_no": 1, "quantity": 10}]},
    )
    assert received["status"] == "received"

    return supplier, received


@pytest.fixture(scope="module")
def received_order(api_module, people):
    """A purchase of this module's own, received in full."""
    return purchasing_flow(api_module, people)[1]


@pytest.fixture(scope="module")
def api_module(host):
    return Api(host)


class _Traffic(threading.Thread):
    """A client thread through Nginx's HTTPS (self-signed), until stopped or ``limit_seconds`` pass."""

    def __init__(self, token: str, limit_seconds: float):
        super().__init__(daemon=True)
        self.token = token
        self.limit = time.monotonic() + limit_seconds
        self.stopped = threading.Event()
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def going(self) -> bool:
        return not self.stopped.is_set() and time.monotonic() < self.limit

    def stop(self):
        self.stopped.set()
        self.join(timeout=90)


class Poller(_Traffic):
    """Steady, bounded traffic through Nginx, ten requests a second, counting every failure.

    Requests go to ``paths`` in turn, with the admin's token, until stopped
    or until ``limit_seconds`` have passed.
    """

    interval = 0.1

    def __init__(self, port: int, token: str, paths=("/api/v1/orders?per_page=5",), limit_seconds: float = 900):
        super().__init__(token, limit_seconds)
        self.urls = [f"https://127.0.0.1:{port}{path}" for path in paths]
        self.ok = 0
        self.failures: list[str] = []
        # When each failed request was sent (time.monotonic()), beside its failure.
        self.failed_at: list[float] = []

    def run(self):
        turn = 0
        while self.going():
            url = self.urls[turn % len(self.urls)]
            turn += 1
            sent = time.monotonic()
            request = urllib.request.Request(
                url, headers={"Authorization": f"Bearer {self.token}", "Host": SERVER_NAME}
            )
            try:
                with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
                    response.read()
                    self.ok += 1
            except urllib.error.HTTPError as exc:
                self.failures.append(f"{url} -> {exc.code} {exc.read()[:200]!r}")
                self.failed_at.append(sent)
            except Exception as exc:  # every failed request counts, whatever its kind
                self.failures.append(f"{url} -> {exc!r}")
                self.failed_at.append(sent)
            time.sleep(self.interval)


@dataclasses.dataclass
class Write:
    name: str
    sent: float
    done: float
    status: int
    code: str = ""


class Writer(_Traffic):
    """Steady, bounded writes through Nginx: a new supplier five times a second, each answer kept.

    Every write (its supplier's name, when it was sent and answered by
    time.monotonic(), its status and error code) is in ``writes``.
    """

    interval = 0.2

    def __init__(self, port: int, token: str, prefix: str = "steady writer", limit_seconds: float = 300):
        super().__init__(token, limit_seconds)
        self.url = f"https://127.0.0.1:{port}/api/v1/suppliers"
        self.prefix = f"{prefix} {time.time_ns()}"
        self.writes: list[Write] = []

    def run(self):
        number = 0
        while self.going():
            number += 1
            name = f"{self.prefix} {number}"
            body = json.dumps({"name": name, "category": "office", "contact": "w@example.com"}).encode()
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Host": SERVER_NAME,
                    "Content-Type": "application/json",
                },
            )
            sent = time.monotonic()
            code = ""
            try:
                with urllib.request.urlopen(request, timeout=60, context=self.context) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
                try:
                    code = json.loads(exc.read())["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = "not the JSON error shape"
            except Exception as exc:  # every failed request counts, whatever its kind
                status, code = 0, repr(exc)
            self.writes.append(Write(name, sent, time.monotonic(), status, code))
            time.sleep(self.interval)


# Procedures whose logic does not depend on the platform run on one host
# only, to keep the scenario's time in bounds. Both hosts still converge,
# pass idempotence and check mode, and run every other test.
# - Debian 13: Vault rotation under traffic (two whole converges, -vvv)
#   and the leak gate that watches them and forces a failing run (the second
#   rotation also reinstalls a package removed by hand), and the
#   zero-downtime deploy and rollback; the cluster scenario repeats rolling
#   deploys on Debian 12.
# - Debian 12: alerts made to fire (test_monitoring.py), which wait out
#   Prometheus's and Alertmanager's windows.
# - Point-in-time restores: to a time on Debian 13 (PostgreSQL 17), to the
#   latest WAL on Debian 12 (PostgreSQL 15).
# - Upgrades (each about 100 s): the rollback that restores the pre-upgrade
#   backup on Debian 13, the one that downgrades the schema on Debian 12.
# - The backup unit, then the wiped database restored by restore.yml: on
#   Debian 12 (PostgreSQL 15). On Debian 13 the upgrade runs the same unit
#   and the rollback restores its dump into PostgreSQL 17.
ONE_HOST_TESTS = {
    "stack-debian13": re.compile(
        r"test_rotation_|test_converge_output_never_shows_a_secret|test_no_process_shows_a_secret"
        r"|test_a_failing_run_shows_no_secret|test_after_the_runs_no_secret_sits|test_zero_downtime_deploys\.py::"
        r"|test_pitr\.py::test_point_in_time_restore|test_rollback_can_restore_the_pre_upgrade_backup"
        r"|test_a_package_removed_between_two_runs"
    ),
    "stack-debian12": re.compile(
        r"test_monitoring\.py::|test_pitr\.py::test_restore_to_the_latest_wal"
        r"|test_upgrade_with_a_migration_then_rollback|test_backup_unit_then_wipe_and_restore_playbook"
    ),
}
HOST_ID = re.compile(r"\[(?:[a-z]+://)?(stack-debian\d+)")


def pytest_collection_modifyitems(config, items):
    kept, deselected = [], []
    for item in items:
        host = HOST_ID.search(item.nodeid)
        elsewhere = host and any(
            pattern.search(item.nodeid) for name, pattern in ONE_HOST_TESTS.items() if name != host.group(1)
        )
        (deselected if elsewhere else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
