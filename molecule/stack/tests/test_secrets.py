"""Secrets on a deployed host: who can read them, where they show, and rotating them without an outage.

The leak gate: the rotation gives every rotated secret a canary value and
converges with ``-vvv`` and Ansible's log on, while a watcher on the host
reads every process's command line and environment; a forced failure (the
service's .env holding a wrong database password) runs the migration with
``-vvv``. Every Vault value and canary is then searched for in the output,
the log, the processes seen, the journal and the host's files and backups
(scripts/leak_scan.py, judged as scripts/audit.py's leak gate judges).
The dry run with ``--diff`` is searched by the shared check-mode test.

The rotation is not undone: the host keeps the canaries, so these tests run
after every other test of the scenario.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets as random_secrets
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import INVENTORY, PROJECT, TARGETS, Poller, playbook

sys.path.insert(0, str(PROJECT / "scripts"))
_spec = importlib.util.spec_from_file_location("audit", PROJECT / "scripts/audit.py")
audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)

# Where the host keeps configuration, data, logs and home directories.
SEARCHED = "/etc /opt /srv /var /home /root /usr/local /run /tmp"
ROTATED = ("vault_db_password", "vault_redis_password", "vault_app_secret_key")
# One of the hardening role's tools, which nothing else depends on.
REMOVED_BY_HAND = "debsums"

pytestmark = pytest.mark.after_every_other_test


def secret_values(secrets: dict) -> dict[str, str]:
    return {name: value for name, value in audit.vault_values.searchable(secrets).items() if name.startswith("vault_")}


def with_patterns(host, values: list[str], command: str):
    """Run command on the host with {patterns} naming a root-only file of values, one a line.

    The file is copied by Ansible's copy module, whose arguments travel inside
    the module's payload: a secret on a command line would be logged by sudo.
    """
    patterns = "/root/.secret-patterns"
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as local:
        local.write("\n".join(values) + "\n")
        local.flush()
        host.ansible("ansible.builtin.copy", f"src={local.name} dest={patterns} mode=0600", check=False, become=True)
    try:
        return host.run(command.format(patterns=patterns))
    finally:
        host.run(f"rm -f {patterns}")


def files_holding(host, values: list[str]) -> dict[str, int]:
    """Every regular file under SEARCHED that contains one of values, with its mode."""
    found = with_patterns(
        host,
        values,
        f"grep -rlsF -f {{patterns}} --exclude-dir=proc --exclude-dir=sys {SEARCHED} | grep -vxF {{patterns}}",
    )
    files = [line for line in found.stdout.splitlines() if line]
    return {path: int(host.check_output(f"stat -c %a {path}"), 8) for path in files}


def test_every_file_holding_a_secret_is_0640_or_tighter(host, secrets):
    modes = files_holding(host, list(secret_values(secrets).values()))
    # The search is not blind: the service's .env holds the database password.
    assert "/opt/procurement/.env" in modes, sorted(modes)
    loose = {path: oct(mode) for path, mode in modes.items() if mode & ~0o640 or mode & stat.S_IROTH}
    assert loose == {}, f"secrets in files readable beyond owner and group: {loose}"


def test_no_secret_is_written_to_a_log(host, secrets):
    values = list(secret_values(secrets).values())
    logs = [path for path in files_holding(host, values) if path.startswith("/var/log/")]
    assert logs == [], f"secrets in log files: {logs}"
    leaked = with_patterns(host, values, "journalctl --no-pager -o cat | grep -cF -f {patterns}")
    assert leaked.stdout.strip() == "0", "a secret is in the journal"


LEAK_DIR = "/root/.procurement-leak-gate"
# Puts the wrong passwords of the patterns file into the service's .env.
_WRONG_PASSWORDS = r"""
import re, sys
values = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1]))
text = open(sys.argv[2]).read()
for key, name in (("PROCUREMENT_DB_PASSWORD", "wrong current"), ("PROCUREMENT_DB_PASSWORD_PREVIOUS", "wrong previous")):
    text = re.sub("(?m)^" + key + "=.*$", lambda match: key + "=" + values[name], text)
open(sys.argv[2], "w").write(text)
"""


def shipped(host, values: dict[str, str]) -> None:
    """Put the leak scanner and a root-only file of name<TAB>value lines on the host (never on a command line)."""
    host.run(f"install -d -m 0700 {LEAK_DIR}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as local:
        local.write("".join(f"{name}\t{value}\n" for name, value in values.items()))
        local.flush()
        host.ansible(
            "ansible.builtin.copy", f"src={local.name} dest={LEAK_DIR}/patterns mode=0600", check=False, become=True
        )
    host.ansible(
        "ansible.builtin.copy",
        f"src={PROJECT / 'scripts/leak_scan.py'} dest={LEAK_DIR}/ mode=0600",
        check=False,
        become=True,
    )


def leaks(report: dict) -> list[dict]:
    return [hit for hit in report["hits"] if not audit.allowed_place(hit, set(audit.SECRET_OWNERS))]


class Watcher:
    """scripts/leak_scan.py --watch on the host while a converge runs: command lines and environments."""

    def __init__(self, host):
        self.host = host

    def __enter__(self):
        self.host.run(f"rm -f {LEAK_DIR}/stop {LEAK_DIR}/watch.json")
        self.host.check_output(
            "systemd-run --unit=procurement-leak-watch --collect "
            f"-p StandardOutput=file:{LEAK_DIR}/watch.json "
            f"python3 {LEAK_DIR}/leak_scan.py --watch {LEAK_DIR}/stop {LEAK_DIR}/patterns"
        )
        return self

    def __exit__(self, *exc):
        self.host.run(f"touch {LEAK_DIR}/stop")
        for _ in range(50):
            if self.host.run("systemctl is-active --quiet procurement-leak-watch").rc != 0:
                break
            time.sleep(0.2)
        output = self.host.check_output(f"cat {LEAK_DIR}/watch.json")
        assert output.startswith("{"), f"the watcher failed: {output[-2000:]}"
        self.report = json.loads(output)


def converge(host, overrides: dict, workdir: Path, *extra_args: str) -> subprocess.CompletedProcess:
    """site.yml on this host, -vvv with Ansible's log on, Vault values overridden from a 0600 file.

    The overrides never travel on a command line; Ansible's log comes back
    as the result's ``log``.
    """
    extra = workdir / "rotation.json"
    extra.touch(mode=0o600)
    extra.write_text(json.dumps(overrides))
    log = workdir / "ansible.log"
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_LOG_PATH": str(log)}
    try:
        result = subprocess.run(
            ["ansible-playbook", "-i", INVENTORY, "--limit", host.backend.get_hostname(), "--diff", "-vvv"]
            + (["-e", f"@{extra}"] if overrides else [])
            + list(extra_args)
            + [playbook("site")],
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
    finally:
        extra.unlink()
    result.log = log.read_text() if log.exists() else ""
    log.unlink(missing_ok=True)
    return result


def under_traffic(host, secrets, overrides: dict, workdir: Path) -> tuple[subprocess.CompletedProcess, Poller]:
    poller = Poller(
        TARGETS[host.backend.get_hostname()]["https_port"],
        secrets["vault_app_admin_token"],
        paths=("/health/ready", "/api/v1/requests?per_page=5"),
        limit_seconds=1200,
    )
    poller.start()
    try:
        time.sleep(3)
        with Watcher(host) as watcher:
            result = converge(host, overrides, workdir)
        result.watched = watcher.report
        time.sleep(3)
    finally:
        poller.stop()
    return result, poller


def service_pid(host) -> str:
    return host.check_output("systemctl show -p MainPID --value procurement.service")


def db_login(host, password: str) -> bool:
    command = "PGPASSWORD=\"$(cat {patterns})\" psql -h 127.0.0.1 -U procurement_user -d procurement_db -tAc 'select 1'"
    return with_patterns(host, [password], command).rc == 0


def redis_login(host, password: str) -> bool:
    # REDISCLI_AUTH keeps the password off redis-cli's command line.
    answer = with_patterns(host, [password], 'REDISCLI_AUTH="$(cat {patterns})" redis-cli -h 127.0.0.1 ping')
    return answer.stdout.strip() == "PONG"


def env_holds(host, value: str) -> bool:
    return with_patterns(host, [value], "grep -qF -f {patterns} /opt/procurement/.env").rc == 0


@pytest.fixture(scope="module")
def rotation(host, secrets, tmp_path_factory):
    """Rotate the database, Redis and Flask secrets with site.yml under traffic.

    Not rotated back: every other test of the scenario has run (the module's
    mark), and a second whole-site run would prove the same path again.
    """
    old = {name: secrets[name] for name in ROTATED}
    # Canaries: unique values that can only have come from this run.
    new = {name: f"canary-{name.removeprefix('vault_')}-{random_secrets.token_urlsafe(24)}" for name in ROTATED}
    workdir = tmp_path_factory.mktemp("rotation")
    shipped(host, {**secret_values(secrets), **{f"new {name}": value for name, value in new.items()}})
    # The roles skip packages the run found installed (the topology role's list, read at each run's
    # start): one removed by hand before a run must come back with it.
    host.check_output(f"DEBIAN_FRONTEND=noninteractive apt-get -y -q remove {REMOVED_BY_HAND}")
    removed_package_gone = not host.package(REMOVED_BY_HAND).is_installed
    pid_before = service_pid(host)
    forward, forward_poller = under_traffic(host, secrets, new, workdir)
    state = {
        "removed_package_gone": removed_package_gone,
        "removed_package_back": host.package(REMOVED_BY_HAND).is_installed,
        "db_new": db_login(host, new["vault_db_password"]),
        "db_old": db_login(host, old["vault_db_password"]),
        "redis_new": redis_login(host, new["vault_redis_password"]),
        "redis_old": redis_login(host, old["vault_redis_password"]),
        "env_new": all(env_holds(host, value) for value in new.values()),
        "pid_after": service_pid(host),
        "cache_ok": json.loads(host.check_output("curl -s http://127.0.0.1:8000/health/ready"))["checks"]["cache"][
            "ok"
        ],
    }
    return {"old": old, "new": new, "pid_before": pid_before, "runs": {"forward": (forward, forward_poller)}, **state}


def test_a_package_removed_between_two_runs_is_installed_again_by_the_next(rotation):
    assert rotation["removed_package_gone"], f"{REMOVED_BY_HAND} was still installed after apt-get remove"
    assert rotation["removed_package_back"], f"the converge after removing {REMOVED_BY_HAND} did not install it"


def test_rotation_converges_without_a_failed_request(rotation):
    result, poller = rotation["runs"]["forward"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert poller.ok > 50, f"only {poller.ok} requests answered"
    assert poller.failures == [], f"{len(poller.failures)} failed requests, first: {poller.failures[:5]}"


def test_rotation_changes_the_database_password(rotation):
    assert rotation["db_new"], "the new database password is refused"
    assert not rotation["db_old"], "the old database password still works"


def test_rotation_changes_the_redis_password(rotation):
    assert rotation["redis_new"], "Redis refuses the new password"
    assert not rotation["redis_old"], "Redis still accepts the old password"


def test_rotation_reloads_the_service_gracefully_with_the_new_settings(rotation):
    assert rotation["env_new"], "the .env does not hold the new secrets"
    # A reload (HUP): new workers read the .env, the master process stays.
    assert rotation["pid_after"] == rotation["pid_before"]
    assert rotation["cache_ok"], "the service cannot reach Redis with the new password"


def test_converge_output_never_shows_a_secret(rotation, secrets):
    """-vvv, with diffs and Ansible's log, while every secret changes: no secret in the output or the log."""
    values = {**secret_values(secrets), **{f"new {name}": value for name, value in rotation["new"].items()}}
    for direction, (result, _poller) in rotation["runs"].items():
        assert result.log, "Ansible wrote no log"
        output = result.stdout + result.stderr + result.log
        shown = [name for name, value in values.items() if value in output]
        assert shown == [], f"{direction} converge printed {shown}"


def test_no_process_shows_a_secret_to_other_users_during_a_converge(rotation):
    """Command lines are world-readable: a password passed as an argument, even for a moment, is a leak."""
    for direction, (result, _poller) in rotation["runs"].items():
        assert result.watched["rounds"] > 50, f"the watcher barely ran during the {direction} converge"
        # Not blind: the service's processes read the values they need.
        assert result.watched["hits"], f"the watcher saw no secret in any process during the {direction} converge"
        assert leaks(result.watched) == [], f"{direction} converge: {leaks(result.watched)}"


@pytest.fixture(scope="module")
def failing_path(host, secrets, rotation, tmp_path_factory):
    """The migration run with a wrong database password, as when the Vault and the server disagree.

    The service keeps the password in service as the previous one, so a new
    password alone would still connect: the .env in service is given two
    wrong ones first, and the run brings a third.
    """
    canaries = {
        name: f"canary-wrong-{name}-{random_secrets.token_urlsafe(24)}" for name in ("current", "previous", "vault")
    }
    # With the rotation's canaries: a copy left behind by either run counts.
    values = {
        **secret_values(secrets),
        **{f"new {name}": value for name, value in rotation["new"].items()},
        **{f"wrong {name}": value for name, value in canaries.items()},
    }
    shipped(host, values)
    env_file = "/opt/procurement/.env"
    host.check_output(f"cp -p {env_file} {LEAK_DIR}/env.saved")
    # The values are read from the root-only patterns file, never from a command line.
    host.check_output(f"python3 - {LEAK_DIR}/patterns {env_file} <<'PY'\n{_WRONG_PASSWORDS}PY")
    try:
        result = converge(
            host, {"vault_db_password": canaries["vault"]}, tmp_path_factory.mktemp("failing"), "--tags", "app_migrate"
        )
    finally:
        host.check_output(f"cp -p {LEAK_DIR}/env.saved {env_file} && rm -f {LEAK_DIR}/env.saved")
        host.check_output("systemctl reload procurement.service")
    scan = json.loads(
        host.check_output(
            f"python3 {LEAK_DIR}/leak_scan.py {LEAK_DIR}/patterns {' '.join(audit.LEAK_ROOTS)}; rm -rf {LEAK_DIR}"
        )
    )
    ready = host.run("curl -s http://127.0.0.1:8000/health/ready")
    return {"result": result, "values": values, "scan": scan, "ready": ready.stdout}


def test_a_failing_run_shows_no_secret(failing_path):
    """A task that fails on a wrong password prints its error, -vvv: the password is not in it, nor in the log."""
    result = failing_path["result"]
    output = result.stdout + result.stderr + result.log
    assert result.returncode != 0, "the run with a wrong database password did not fail"
    assert "password authentication failed" in output, output[-3000:]
    shown = [name for name, value in failing_path["values"].items() if value in output]
    assert shown == [], f"the failing run printed {shown}"
    # The .env in service is back, and the service with it.
    assert json.loads(failing_path["ready"] or "{}").get("status") == "ok", failing_path["ready"]


def test_after_the_runs_no_secret_sits_where_it_should_not(failing_path):
    """Files (backups opened), the journal (every unit) and processes, with the canaries of both runs."""
    scan = failing_path["scan"]
    assert scan["files_scanned"] > 1000 and scan["journal_entries"] > 100, "the search was blind"
    kept = {hit["where"] for hit in scan["hits"] if hit["kind"] == "file"}
    assert "/opt/procurement/.env" in kept, sorted(kept)
    assert leaks(scan) == [], leaks(scan)
