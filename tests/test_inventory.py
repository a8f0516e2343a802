"""Inventory layout: shared settings reach every environment, and an environment's own values win."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from wiring import wiring

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ["sandbox", "sandbox-cluster", "production.example"]


def inventory(environment: str, *args: str) -> dict:
    command = ["ansible-inventory", "-i", f"inventory/{environment}", *args]
    if (ROOT / "inventory" / environment / "vault-password.txt").exists():
        command += ["--vault-password-file", f"inventory/{environment}/vault-password.txt"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def host_vars(environment: str, host: str) -> dict:
    return inventory(environment, "--host", host)


def shared(name: str):
    for path in sorted((ROOT / "group_vars/all").glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        if name in data:
            return data[name]
    raise KeyError(name)


@pytest.mark.parametrize(
    ("environment", "host"), [("sandbox", "sandbox-aio"), ("production.example", "app1.example.com")]
)
def test_environment_value_wins_over_the_shared_default(environment, host):
    values = host_vars(environment, host)
    assert shared("procurement_environment") == "shared"
    assert values["procurement_environment"] == environment.split(".")[0]


@pytest.mark.parametrize(
    ("environment", "host"), [("sandbox", "sandbox-aio"), ("production.example", "db1.example.com")]
)
def test_shared_defaults_reach_every_environment(environment, host):
    values = host_vars(environment, host)
    assert values["postgresql_db_name"] == shared("postgresql_db_name") == "procurement_db"
    assert values["postgresql_db_user"] == "procurement_user"


def test_sandbox_lowers_the_hardware_preflight_openly():
    values = host_vars("sandbox", "sandbox-aio")
    assert shared("base_min_cpu_cores") == 4
    assert values["base_min_cpu_cores"] == 1


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_tier_group_exists(environment):
    groups = set(inventory(environment, "--list"))
    assert {"web", "app", "db", "cache", "monitoring", "backup"} <= groups


def test_app_env_template_covers_every_key_of_env_example():
    example = (ROOT / "app/.env.example").read_text()
    documented = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    rendered = set(yaml.safe_load((ROOT / "roles/app/vars/main.yml").read_text())["__app_env"])
    assert documented == rendered


def resolved(environment: str, host: str, variable: str, **extra_vars):
    """A variable as a play templates it for a host, after the topology role."""
    return wiring(f"inventory/{environment}", **extra_vars)[host][variable]


def test_database_port_opens_only_to_app_nodes_replicas_and_backup_hosts():
    rules = resolved("production.example", "db1.example.com", "firewall_rules")
    postgres = [rule for rule in rules if rule["port"] == 5432]
    assert postgres and sorted(postgres[0]["sources"]) == [
        "app1.example.com",
        "app2.example.com",
        "db2.example.com",
        "ops1.example.com",
    ]
    assert all(rule["port"] not in (80, 443) for rule in rules)


def test_the_two_database_hosts_run_under_patroni_and_answer_their_peers_only():
    """Each member lists the other for replication and pg_rewind; its database port answers the app nodes and
    the backup host (through their HAProxy, whichever member leads) and the other member; Patroni's REST API
    the same hosts; pgBackRest's TLS server the backup host."""
    for member, other in (("db1.example.com", "db2.example.com"), ("db2.example.com", "db1.example.com")):
        facts = resolved("production.example", member, "topology_facts")
        assert facts["patroni"]["enabled"]
        assert facts["replicas"] == [{"name": other, "address": other}]
        rules = {rule["port"]: sorted(rule.get("sources", [])) for rule in facts["firewall_rules"]}
        peers = sorted(["app1.example.com", "app2.example.com", "ops1.example.com", other])
        assert rules[5432] == peers and rules[8008] == peers
        assert rules[8432] == ["ops1.example.com"]
    assert resolved("production.example", "db2.example.com", "postgresql_replication_mode") == "patroni"


def test_a_web_host_opens_only_http_and_https_to_everyone():
    rules = resolved("production.example", "web1.example.com", "firewall_rules")
    assert sorted(rule["port"] for rule in rules if not rule.get("sources")) == [80, 443]
    # node_exporter and the nginx exporter, for the monitoring host only.
    restricted = {rule["port"]: rule["sources"] for rule in rules if rule.get("sources")}
    assert restricted == {9100: ["ops1.example.com"], 9113: ["ops1.example.com"]}


def test_monitoring_host_scrapes_every_host_on_its_private_address():
    jobs = resolved("production.example", "ops1.example.com", "prometheus_scrape_jobs")
    targets = {job["job_name"]: [c["targets"][0] for c in job["static_configs"]] for job in jobs}
    assert targets["postgresql"] == ["db1.example.com:9187", "db2.example.com:9187"]
    assert "web1.example.com:9113" in targets["nginx"]
    assert sorted(targets["procurement"]) == ["app1.example.com:8000", "app2.example.com:8000"]
    assert "ops1.example.com:9100" not in targets["node"] and "127.0.0.1:9100" in targets["node"]


def test_an_all_in_one_host_opens_no_internal_port():
    rules = resolved("sandbox", "sandbox-aio", "firewall_rules")
    assert sorted(rule["port"] for rule in rules) == [80, 443]


def test_database_listens_privately_and_admits_each_app_node_over_tls_only():
    listen = resolved("production.example", "db1.example.com", "postgresql_listen_addresses")
    assert listen == ["localhost", "db1.example.com"]
    hba = resolved("production.example", "db1.example.com", "postgresql_hba_entries")
    remote = [
        entry for entry in hba if entry.get("type") != "local" and entry["address"] not in ("127.0.0.1/32", "::1/128")
    ]
    assert sorted(entry["address"] for entry in remote) == ["app1.example.com", "app2.example.com", "ops1.example.com"]
    assert all(entry["type"] == "hostssl" and entry["method"] == "scram-sha-256" for entry in remote)
    assert all(entry["database"] == "procurement_db" and entry["user"] == "procurement_user" for entry in remote)


def test_all_in_one_host_keeps_database_and_cache_on_loopback():
    assert resolved("sandbox", "sandbox-aio", "postgresql_listen_addresses") == ["localhost"]
    assert resolved("sandbox", "sandbox-aio", "redis_bind") == ["127.0.0.1"]
    hba = resolved("sandbox", "sandbox-aio", "postgresql_hba_entries")
    # Loopback TCP is TLS-only too (hostssl): no rule admits a connection without TLS.
    assert all(entry["type"] == "local" or entry["address"] in ("127.0.0.1/32", "::1/128") for entry in hba)
    assert all(entry["type"] in ("local", "hostssl") for entry in hba)


def test_cluster_sandbox_runs_its_two_database_hosts_under_patroni():
    for member, other in (("db1", "db2"), ("db2", "db1")):
        assert resolved("sandbox-cluster", member, "postgresql_replication_mode") == "patroni"
        # The address is the other member's own once its facts are known (a cached run), else ansible_host.
        replicas = resolved("sandbox-cluster", member, "postgresql_replicas")
        assert [replica["name"] for replica in replicas] == [other]
        assert replicas[0]["address"] == resolved("sandbox-cluster", other, "procurement_private_address")
    assert [m["name"] for m in resolved("sandbox-cluster", "db1", "patroni_members")] == ["db1", "db2"]
    # The app nodes reach the leader's PgBouncer, the backup host a replica (for the dumps), through HAProxy.
    assert resolved("sandbox-cluster", "app1", "app_db_host") == "127.0.0.1"
    assert resolved("sandbox-cluster", "app1", "app_db_port") == 5002
    assert resolved("sandbox-cluster", "ops1", "backup_db_port") == 5001
    upstreams = resolved("sandbox-cluster", "web1", "nginx_app_upstreams")
    assert len(upstreams) == 2
    assert resolved("sandbox-cluster", "web1", "nginx_static_root") == ""
    assert resolved("sandbox-cluster", "app1", "nginx_static_root") == "/opt/procurement/static/"


def test_peer_lists_keep_inventory_order_from_run_to_run():
    """Every run renders the same pg_hba.conf and firewall rules (set order would vary with the hash seed)."""
    runs = [
        wiring("inventory/production.example", limit="db1.example.com", hashseed=seed)["db1.example.com"]
        for seed in ("1", "2")
    ]
    assert [run["topology_facts"]["peers"]["db"] for run in runs] == [
        ["app1.example.com", "app2.example.com", "ops1.example.com", "db2.example.com"]
    ] * 2
    assert runs[0]["firewall_rules"] == runs[1]["firewall_rules"]


def test_pgbouncer_takes_the_app_nodes_off_the_database_port():
    """With procurement_pgbouncer the app nodes reach PgBouncer on 6432 (through their HAProxy's 5002, whichever
    member leads); 5432 keeps the backup host and the other member."""
    on = {"procurement_pgbouncer": True}
    rules = {rule["port"]: rule for rule in resolved("production.example", "db1.example.com", "firewall_rules", **on)}
    assert rules[6432]["sources"] == ["app1.example.com", "app2.example.com"]
    assert rules[5432]["sources"] == ["ops1.example.com", "db2.example.com"]
    hba = resolved("production.example", "db1.example.com", "postgresql_hba_entries", **on)
    loopback = ("127.0.0.1/32", "::1/128")
    remote = [entry["address"] for entry in hba if entry["type"] == "hostssl" and entry["address"] not in loopback]
    assert remote == ["ops1.example.com"]
    listen = resolved("production.example", "db1.example.com", "pgbouncer_listen_addresses", **on)
    assert listen == ["127.0.0.1", "db1.example.com"]
    # The primary's connections are PgBouncer's pool (20 + 5), not nodes x workers x pool.
    assert resolved("production.example", "db1.example.com", "postgresql_app_connections", **on) == 25
    assert resolved("production.example", "app1.example.com", "app_db_port", **on) == 5002
    assert resolved("production.example", "app1.example.com", "app_db_prepared_statements", **on) is False
    # Off (the default), nothing of it shows.
    assert 6432 not in {rule["port"] for rule in resolved("production.example", "db1.example.com", "firewall_rules")}
    assert resolved("production.example", "app1.example.com", "app_db_port") == 5000
