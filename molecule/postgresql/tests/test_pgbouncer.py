"""PgBouncer in front of the app database: TLS, SCRAM with the server's own verifier, rotation."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from test_postgresql import DB, USER, _address, _admin_sql, _password

PORT = 6432
ROTATED = "molecule-only-rotated-pg-secret"


def _bouncer_psql(host, sql: str, *, password: str, sslmode: str = "require", address: str | None = None):
    """Run SQL as the application role through PgBouncer, the way the app connects with procurement_pgbouncer."""
    conninfo = f"host={address or _address(host)} port={PORT} dbname={DB} user={USER} sslmode={sslmode}"
    return host.run(
        f"PGPASSWORD={shlex.quote(password)} psql -w -X -tA -v ON_ERROR_STOP=1 {shlex.quote(conninfo)} "
        f"-c {shlex.quote(sql)}"
    )


def _rotate(host, tmp_path: Path, password: str) -> None:
    """The credentials step of playbooks/plays/db-credentials.yml, with another password for the app role."""
    playbook = tmp_path / "credentials.yml"
    playbook.write_text(
        "- hosts: all\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role: {name: procurement.ops.postgresql, tasks_from: credentials.yml}\n"
        "    - ansible.builtin.include_role: {name: procurement.ops.pgbouncer, tasks_from: credentials.yml}\n"
    )
    extra = tmp_path / "password.yml"
    extra.write_text(f"postgresql_db_password: {password}\n")
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--limit",
            host.backend.get_hostname(),
            "-e",
            f"@{extra}",
            str(playbook),
        ],
        cwd=Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_pgbouncer_runs_on_loopback_and_the_private_address(host):
    service = host.service("pgbouncer")
    assert service.is_enabled and service.is_running
    assert host.socket(f"tcp://127.0.0.1:{PORT}").is_listening
    assert host.socket(f"tcp://{_address(host)}:{PORT}").is_listening


def test_app_role_logs_in_through_pgbouncer_over_tls(host):
    # PgBouncer holds no password: the login to the server reuses the client's SCRAM proof.
    result = _bouncer_psql(host, "SELECT current_user || ' ' || current_database()", password=_password(host))
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{USER} {DB}"
    # On the server side the session came over the Unix socket, not TCP.
    sessions = _admin_sql(
        host, f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{USER}' AND client_addr IS NOT NULL"
    )
    assert sessions == "0"


@pytest.mark.parametrize(
    ("sslmode", "password", "refusal"),
    [("disable", None, "SSL required"), ("require", "not-the-password", "SASL authentication failed")],
)
def test_pgbouncer_refuses_plain_tcp_and_a_wrong_password(host, sslmode, password, refusal):
    result = _bouncer_psql(host, "SELECT 1", password=password or _password(host), sslmode=sslmode)
    assert result.rc != 0
    assert refusal in result.stderr, result.stderr


def test_auth_file_holds_the_servers_verifier_and_only_pgbouncer_reads_it(host):
    auth = host.file("/etc/pgbouncer/userlist.txt")
    assert (auth.user, auth.group, auth.mode) == ("root", "postgres", 0o640)
    verifier = _admin_sql(host, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{USER}'")
    assert verifier.startswith("SCRAM-SHA-256$")
    # Nothing but entries: PgBouncer 1.18 takes a comment line for a broken file and loads no user.
    assert auth.content_string.splitlines() == [f'"{USER}" "{verifier}"']
    assert _password(host) not in auth.content_string
    key = host.file("/etc/pgbouncer/server.key")
    assert (key.user, key.mode) == ("postgres", 0o600)


def test_a_rotated_password_reaches_pgbouncer_without_a_restart(host, tmp_path):
    old = _password(host)
    pid = host.check_output("systemctl show -p MainPID --value pgbouncer")
    try:
        _rotate(host, tmp_path, ROTATED)
        assert _bouncer_psql(host, "SELECT 1", password=ROTATED).rc == 0
        refused = _bouncer_psql(host, "SELECT 1", password=old)
        assert refused.rc != 0 and "SASL authentication failed" in refused.stderr
    finally:
        _rotate(host, tmp_path, old)
    assert _bouncer_psql(host, "SELECT 1", password=old).rc == 0
    # A reload (SIGHUP) re-read the auth file; the process stayed.
    assert host.check_output("systemctl show -p MainPID --value pgbouncer") == pid
