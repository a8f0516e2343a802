"""The wiring of an inventory's hosts, rendered by tests/playbooks/wiring.yml without reaching them."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every variable that carries an address, a port or a peer list.
VARIABLES = [
    "topology_facts",
    "procurement_private_address",
    "firewall_rules",
    "nginx_app_upstreams",
    "nginx_static_root",
    "nginx_exporter_scrape_uri",
    "prometheus_scrape_jobs",
    "node_exporter_listen_address",
    "postgres_exporter_db_port",
    "redis_exporter_redis_address",
    "app_db_host",
    "app_db_port",
    "app_db_sslmode",
    "app_db_prepared_statements",
    "app_redis_url",
    "app_bind_address",
    "app_bind_port",
    "app_balancers",
    "app_balancer_upstream",
    "backup_db_host",
    "backup_db_port",
    "backup_db_sslmode",
    "backup_restore_server",
    "backup_restore_db_host",
    "backup_restore_db_port",
    "backup_offsite_hosts",
    "pgbouncer_listen_addresses",
    "pgbouncer_server_port",
    "postgresql_listen_addresses",
    "postgresql_hba_entries",
    "postgresql_replication_mode",
    "postgresql_replicas",
    "postgresql_archive_command",
    "postgresql_app_connections",
    "postgresql_reserved_connections",
    "redis_bind",
    "patroni_members",
    "haproxy_patroni_members",
]

# Throwaway values for the Vault names the roles require; nothing is deployed.
_SECRET = "render-only-throwaway-secret-0123456789"
SECRETS = dict.fromkeys(
    (
        "vault_db_password",
        "vault_redis_password",
        "vault_app_secret_key",
        "vault_monitoring_db_password",
        "vault_replication_password",
        "vault_pgbackrest_cipher_pass",
        "vault_patroni_superuser_password",
        "vault_patroni_rewind_password",
        "vault_patroni_restapi_password",
    ),
    _SECRET,
)


def wiring(inventory: str, limit: str | None = None, hashseed: str | None = None, **extra) -> dict:
    """Each host's resolved variables, plus its rendered .env under "env" and pgbackrest.conf under "pgbackrest"."""
    return _render(inventory, json.dumps(extra, sort_keys=True), limit, hashseed)


@functools.cache
def _render(inventory: str, extra: str, limit: str | None, hashseed: str | None) -> dict:
    command = [
        "ansible-playbook",
        "-i",
        inventory,
        "tests/playbooks/wiring.yml",
        "-e",
        json.dumps({**SECRETS, "wiring_variables": VARIABLES}),
        "-e",
        extra,
    ]
    if limit:
        command += ["--limit", limit]
    password_file = ROOT / inventory / "vault-password.txt"
    if password_file.exists():
        command += ["--vault-password-file", str(password_file)]
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json"}
    if hashseed:
        env["PYTHONHASHSEED"] = hashseed
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # The timing callbacks print lines around the JSON document.
    document, _ = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{") :])
    task = document["plays"][0]["tasks"][-1]
    hosts = {}
    for host, result in task["hosts"].items():
        message = result["msg"]
        hosts[host] = {**message["variables"], "env": message["env"], "pgbackrest": message["pgbackrest"]}
    return hosts
