"""What the PostgreSQL host must do for the procurement service."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

DB = "procurement_db"
USER = "procurement_user"


def _password(host) -> str:
    return host.ansible.get_variables()["postgresql_db_password"]


def _address(host) -> str:
    """The host's own non-loopback IPv4 address."""
    out = host.check_output("ip -4 -o route get 192.0.2.1")
    return out.split(" src ")[1].split()[0]


def _app_psql(host, sql: str, *, address: str, dbname: str = DB, password: str | None = None, sslmode: str = "require"):
    """Run SQL as the application role over TCP, the way the app connects."""
    conninfo = f"host={address} dbname={dbname} user={USER} sslmode={sslmode}"
    env = f"PGPASSWORD={shlex.quote(password)} " if password is not None else "PGPASSWORD= "
    return host.run(f"{env}psql -w -X -tA -v ON_ERROR_STOP=1 {shlex.quote(conninfo)} -c {shlex.quote(sql)}")


def _admin_sql(host, sql: str, dbname: str = "postgres") -> str:
    cmd = f"runuser -u postgres -- psql -X -tA -d {dbname} -c {shlex.quote(sql)}"
    return host.check_output(cmd).strip()


def _converge(host, *extra: str) -> None:
    """Re-run the role's configuration on this host only, with extra vars."""
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    name = host.backend.get_hostname()
    cmd = [
        "ansible-playbook",
        "-i",
        os.environ["MOLECULE_INVENTORY_FILE"],
        "--limit",
        name,
        "--tags",
        "postgresql_configure",
    ]
    for item in extra:
        cmd += ["-e", item]
    result = subprocess.run(
        [*cmd, str(scenario / "converge.yml")], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _start_time(host) -> str:
    return _admin_sql(host, "SELECT pg_postmaster_start_time()")


def test_server_is_enabled_and_accepting_connections(host):
    assert host.service("postgresql").is_enabled
    assert host.run("pg_isready -q -h 127.0.0.1").rc == 0


def test_app_user_logs_in_over_tls_with_its_password(host):
    result = _app_psql(
        host,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        address=_address(host),
        password=_password(host),
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "t"


@pytest.mark.parametrize("password", [None, "not-the-password"])
def test_app_user_is_refused_without_its_password(host, password):
    result = _app_psql(host, "SELECT 1", address=_address(host), password=password)
    assert result.rc != 0
    assert "password authentication failed" in result.stderr or "no password supplied" in result.stderr


def test_plain_tcp_from_non_loopback_is_refused(host):
    result = _app_psql(host, "SELECT 1", address=_address(host), password=_password(host), sslmode="disable")
    assert result.rc != 0
    assert "no encryption" in result.stderr or "reject" in result.stderr


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE ROLE intruder LOGIN SUPERUSER",
        "CREATE DATABASE intruder_db",
        "ALTER SYSTEM SET log_min_duration_statement = -1",
        "COPY (SELECT 1) TO PROGRAM 'true'",
    ],
)
def test_app_user_cannot_act_as_superuser(host, statement):
    result = _app_psql(host, statement, address=_address(host), password=_password(host))
    assert result.rc != 0
    assert "permission denied" in result.stderr or "must be superuser" in result.stderr


@pytest.mark.parametrize("statement", ["CREATE TABLE public.intruder (id int)", "CREATE SCHEMA intruder"])
def test_app_user_cannot_create_objects_in_another_database(host, statement):
    result = _app_psql(
        host, statement, address="127.0.0.1", dbname="postgres", password=_password(host), sslmode="prefer"
    )
    assert result.rc != 0
    assert "permission denied" in result.stderr


def test_app_user_can_run_migrations_in_its_own_database(host):
    sql = "CREATE TABLE public.migration_probe (id int); DROP TABLE public.migration_probe; SELECT 'ok'"
    result = _app_psql(host, sql, address=_address(host), password=_password(host))
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ok"


def test_other_roles_cannot_create_in_the_app_public_schema(host):
    assert _admin_sql(host, "SELECT has_schema_privilege('public', 'public', 'CREATE')", dbname=DB) == "f"
    assert _admin_sql(host, f"SELECT has_database_privilege('public', '{DB}', 'CONNECT')") == "f"


def test_app_role_has_no_elevated_attributes(host):
    row = _admin_sql(
        host,
        f"SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = '{USER}'",
    )
    assert row == "f|f|f|f|f"


def test_password_is_stored_as_scram_sha_256(host):
    assert _admin_sql(host, f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{USER}'") == "t"


def test_shared_buffers_is_a_quarter_of_ram(host):
    memtotal_kb = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    expected_mb = int((memtotal_kb // 1024) * 0.25)
    actual_mb = int(
        _admin_sql(host, "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
    )
    assert abs(actual_mb - expected_mb) <= 1


def test_slow_queries_and_sessions_are_logged(host):
    assert _admin_sql(host, "SHOW log_min_duration_statement") == "500ms"
    assert _admin_sql(host, "SHOW log_connections") == "on"
    assert _admin_sql(host, "SHOW log_disconnections") == "on"


def test_private_key_is_readable_by_postgres_only(host):
    key = host.file("/etc/ssl/postgresql/server.key")
    assert key.user == "postgres"
    assert key.mode == 0o600


def test_reloadable_change_is_applied_without_restart(host):
    before = _start_time(host)
    try:
        _converge(host, "postgresql_log_min_duration_statement=750")
        assert _admin_sql(host, "SHOW log_min_duration_statement") == "750ms"
        assert _start_time(host) == before
    finally:
        _converge(host)
    assert _admin_sql(host, "SHOW log_min_duration_statement") == "500ms"
    assert _start_time(host) == before


def test_postmaster_setting_change_restarts_the_server(host):
    before = _start_time(host)
    try:
        _converge(host, "postgresql_reserved_connections=11")
        assert _admin_sql(host, "SHOW max_connections") == "31"
        assert _start_time(host) != before
    finally:
        _converge(host)
    assert _admin_sql(host, "SHOW max_connections") == "30"
