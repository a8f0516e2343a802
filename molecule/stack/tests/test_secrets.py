"""Secrets on a deployed host: who can read them, where they show, and rotating them without an outage."""

from __future__ import annotations

import json
import os
import secrets as random_secrets
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import INVENTORY, PROJECT, TARGETS, Poller

# Where the host keeps configuration, data, logs and home directories.
SEARCHED = "/etc /opt /srv /var /home /root /usr/local /run /tmp"
ROTATED = ("vault_db_password", "vault_redis_password", "vault_app_secret_key")
MIN_SECRET_LENGTH = 12


def secret_values(secrets: dict) -> dict[str, str]:
    return {
        name: value for name, value in secrets.items() if name.startswith("vault_") and len(value) >= MIN_SECRET_LENGTH
    }


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


def converge(host, overrides: dict, workdir: Path) -> subprocess.CompletedProcess:
    """site.yml on this host, with Vault values overridden from a 0600 file (never on a command line)."""
    extra = workdir / "rotation.json"
    extra.touch(mode=0o600)
    extra.write_text(json.dumps(overrides))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    try:
        return subprocess.run(
            ["ansible-playbook", "-i", INVENTORY, "--limit", host.backend.get_hostname(), "--diff", "-v"]
            + (["-e", f"@{extra}"] if overrides else [])
            + [str(PROJECT / "playbooks/site.yml")],
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
    finally:
        extra.unlink()


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
        result = converge(host, overrides, workdir)
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
    """Rotate the database, Redis and Flask secrets with site.yml under traffic, then rotate them back."""
    old = {name: secrets[name] for name in ROTATED}
    new = {name: random_secrets.token_urlsafe(32) for name in ROTATED}
    workdir = tmp_path_factory.mktemp("rotation")
    pid_before = service_pid(host)
    forward, forward_poller = under_traffic(host, secrets, new, workdir)
    state = {
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
    back, back_poller = under_traffic(host, secrets, {}, workdir)
    state["db_restored"] = db_login(host, old["vault_db_password"])
    state["redis_restored"] = redis_login(host, old["vault_redis_password"])
    return {
        "old": old,
        "new": new,
        "pid_before": pid_before,
        "runs": {"forward": (forward, forward_poller), "back": (back, back_poller)},
        **state,
    }


@pytest.mark.parametrize("direction", ["forward", "back"])
def test_rotation_converges_without_a_failed_request(rotation, direction):
    result, poller = rotation["runs"][direction]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert poller.ok > 50, f"only {poller.ok} requests answered"
    assert poller.failures == [], f"{len(poller.failures)} failed requests, first: {poller.failures[:5]}"


def test_rotation_changes_the_database_password(rotation):
    assert rotation["db_new"], "the new database password is refused"
    assert not rotation["db_old"], "the old database password still works"
    assert rotation["db_restored"], "rotating back did not restore the Vault's password"


def test_rotation_changes_the_redis_password(rotation):
    assert rotation["redis_new"], "Redis refuses the new password"
    assert not rotation["redis_old"], "Redis still accepts the old password"
    assert rotation["redis_restored"], "rotating back did not restore the Vault's password"


def test_rotation_reloads_the_service_gracefully_with_the_new_settings(rotation):
    assert rotation["env_new"], "the .env does not hold the new secrets"
    # A reload (HUP): new workers read the .env, the master process stays.
    assert rotation["pid_after"] == rotation["pid_before"]
    assert rotation["cache_ok"], "the service cannot reach Redis with the new password"


def test_converge_output_never_shows_a_secret(rotation, secrets):
    """Verbose, with diffs, while every secret changes: still no secret in Ansible's output."""
    values = {**secret_values(secrets), **{f"new {name}": value for name, value in rotation["new"].items()}}
    for direction, (result, _poller) in rotation["runs"].items():
        output = result.stdout + result.stderr
        shown = [name for name, value in values.items() if value in output]
        assert shown == [], f"{direction} converge printed {shown}"
