"""The topology decided once (roles/topology): peers, endpoints and every port from the owning role."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from wiring import wiring

ROOT = Path(__file__).resolve().parents[1]
PORTS_INVENTORY = "tests/inventories/ports"
TWO_BACKUPS_INVENTORY = "tests/inventories/two-backups"
DEFAULT_PORTS = {"app": 8000, "postgresql": 5432, "redis": 6379}
CHOSEN_PORTS = {"app": 8100, "postgresql": 5433, "redis": 6380}

_spec = importlib.util.spec_from_file_location(
    "topology", ROOT / "ansible_collections/procurement/ops/plugins/filter/topology.py"
)
topology = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(topology)


def rendered(host: dict) -> str:
    """Everything of a host that carries a port: its wiring variables, its .env and pgbackrest.conf."""
    files = ("env", "pgbackrest")
    return "\n".join(
        [json.dumps({key: value for key, value in host.items() if key not in files})] + [host[f] for f in files]
    )


@pytest.mark.parametrize("pgbouncer", [False, True], ids=["direct", "pgbouncer"])
def test_no_default_port_survives_non_default_ports(pgbouncer):
    hosts = wiring(PORTS_INVENTORY, procurement_pgbouncer=pgbouncer)
    assert set(hosts) == {"web1", "app1", "app2", "db1", "db2", "cache1", "ops1"}
    for name, host in hosts.items():
        text = rendered(host)
        for port in DEFAULT_PORTS.values():
            assert not re.search(rf"(?<![0-9.]){port}(?![0-9])", text), f"{name} still carries port {port}"


def test_non_default_ports_reach_every_rule_upstream_target_and_env():
    hosts = wiring(PORTS_INVENTORY)
    rules = {
        name: [(rule["port"], rule.get("sources")) for rule in host["firewall_rules"]] for name, host in hosts.items()
    }
    # The load balancer and the monitoring host reach gunicorn.
    assert (8100, ["10.0.0.11"]) in rules["app1"] and (8100, ["10.0.0.51"]) in rules["app1"]
    assert (5433, ["10.0.0.21", "10.0.0.22", "10.0.0.51", "10.0.0.32"]) in rules["db1"]
    assert (6380, ["10.0.0.21", "10.0.0.22"]) in rules["cache1"]
    # The exporters' own ports moved too, open to the monitoring host only.
    assert rules["web1"] == [(80, None), (443, None), (9200, ["10.0.0.51"]), (9213, ["10.0.0.51"])]
    assert hosts["web1"]["nginx_app_upstreams"] == ["10.0.0.21:8100", "10.0.0.22:8100"]
    assert hosts["app1"]["app_balancer_upstream"] == "10.0.0.21:8100"

    jobs = {job["job_name"]: job for job in hosts["ops1"]["prometheus_scrape_jobs"]}
    targets = {name: [config["targets"][0] for config in job["static_configs"]] for name, job in jobs.items()}
    assert targets["procurement"] == ["10.0.0.21:8100", "10.0.0.22:8100"]
    assert targets["postgresql"] == ["10.0.0.31:9287", "10.0.0.32:9287"]
    assert targets["redis"] == ["10.0.0.41:9221"]
    assert "127.0.0.1:9200" in targets["node"]
    assert hosts["db1"]["postgres_exporter_db_port"] == 5433
    assert hosts["cache1"]["redis_exporter_redis_address"] == "redis://127.0.0.1:6380"

    env = dict(line.split("=", 1) for line in hosts["app1"]["env"].splitlines() if "=" in line)
    # db1 and db2 are a Patroni cluster: the app reaches the leader through its HAProxy's chosen port.
    assert env["PROCUREMENT_DB_HOST"] == "127.0.0.1" and env["PROCUREMENT_DB_PORT"] == "5100"
    assert env["PROCUREMENT_REDIS_URL"] == "redis://10.0.0.41:6380/0"
    assert env["PROCUREMENT_BIND"] == "0.0.0.0:8100"
    # Backups dump the leader through the backup host's HAProxy; a restore writes there too.
    assert (hosts["ops1"]["backup_db_host"], hosts["ops1"]["backup_db_port"]) == ("127.0.0.1", 5100)
    assert hosts["ops1"]["backup_restore_db_port"] == 5100


def test_pgbouncer_sits_on_its_own_port_in_front_of_the_chosen_server_port():
    hosts = wiring(PORTS_INVENTORY, procurement_pgbouncer=True)
    env = dict(line.split("=", 1) for line in hosts["app2"]["env"].splitlines() if "=" in line)
    assert env["PROCUREMENT_DB_PORT"] == "5102"
    assert hosts["db1"]["pgbouncer_server_port"] == 5433
    rules = {rule["port"]: rule["sources"] for rule in hosts["db1"]["firewall_rules"] if rule.get("sources")}
    assert rules[6433] == ["10.0.0.21", "10.0.0.22"]
    assert rules[5433] == ["10.0.0.51", "10.0.0.32"]


# The filter itself, on plain data ------------------------------------------


def decide(host, groups, addresses, settings=None, **host_vars):
    hostvars = {name: {"procurement_private_address": address} for name, address in addresses.items()}
    for name, values in host_vars.items():
        hostvars[name].update(values)
    groups = {"all": list(addresses), **groups}
    return topology.procurement_topology(groups, hostvars, host, ROOT / "roles", settings or {})


CLUSTER = {"web": ["w"], "app": ["a1", "a2"], "db": ["d"], "cache": ["c"], "monitoring": ["m"], "backup": ["m"]}
ADDRESSES = {"w": "10.1.0.1", "a1": "10.1.0.2", "a2": "10.1.0.3", "d": "10.1.0.4", "c": "10.1.0.5", "m": "10.1.0.6"}


def test_ports_default_to_the_owning_roles_defaults():
    facts = decide("d", CLUSTER, ADDRESSES)
    assert facts["ports"] == {
        "app": 8000,
        "postgresql": 5432,
        "pgbouncer": 6432,
        "redis": 6379,
        "node_exporter": 9100,
        "postgres_exporter": 9187,
        "redis_exporter": 9121,
        "nginx_exporter": 9113,
        "pgbackrest": 8432,
        "etcd_client": 2379,
        "etcd_peer": 2380,
        "etcd_metrics": 2381,
        "patroni_restapi": 8008,
        "haproxy_primary": 5000,
        "haproxy_replica": 5001,
        "haproxy_pooled": 5002,
    }


def test_each_host_is_reached_on_its_own_port():
    facts = decide("w", CLUSTER, ADDRESSES, a2={"app_bind_port": 8200})
    assert facts["app_upstreams"] == ["10.1.0.2:8000", "10.1.0.3:8200"]
    scrape = decide("m", CLUSTER, ADDRESSES, a2={"app_bind_port": 8200})["scrape_jobs"]
    app_job = next(job for job in scrape if job["job_name"] == "procurement")
    assert [config["targets"] for config in app_job["static_configs"]] == [["10.1.0.2:8000"], ["10.1.0.3:8200"]]


def test_a_port_that_is_not_a_number_names_the_variable_and_host():
    with pytest.raises(ValueError, match="redis_port of c must be a port number"):
        decide("a1", CLUSTER, ADDRESSES, c={"redis_port": "sixthousand"})


def test_independent_hosts_see_no_peers():
    groups = {tier: ["h1", "h2"] for tier in ("web", "app", "db", "cache", "monitoring", "backup")}
    facts = decide("h1", groups, {"h1": "10.2.0.1", "h2": "10.2.0.2"}, {"hosts": ["h1"]})
    assert all(not peers for peers in facts["peers"].values())
    assert facts["database"] == {"name": "h1", "host": "localhost", "port": 5432, "sslmode": "prefer", "local": True}
    assert facts["cache_url"] == "redis://127.0.0.1:6379/0"
    assert [rule["port"] for rule in facts["firewall_rules"]] == [80, 443]
    assert {config["labels"]["instance"] for job in facts["scrape_jobs"] for config in job["static_configs"]} == {"h1"}


def test_backups_from_a_replica_read_it_and_restores_still_write_the_leader():
    """Under Patroni the backup host reads a replica through its HAProxy's 5001 and restores through 5000."""
    groups = {**CLUSTER, "db": ["d", "r"], "etcd": ["d", "r", "m"]}
    addresses = {**ADDRESSES, "r": "10.1.0.7"}
    facts = decide("m", groups, addresses, {"backup_from_replica": True})
    assert facts["backup_source"] == "r"
    haproxy = {"name": "", "host": "127.0.0.1", "sslmode": "require", "local": False}
    assert facts["backup_database"] == {**haproxy, "port": 5001}
    assert facts["restore_target"] == {**haproxy, "port": 5000}


def test_pgbackrest_keeps_its_repository_on_the_primary_only_when_it_is_a_backup_host():
    aio = {tier: ["h1"] for tier in ("web", "app", "db", "cache", "monitoring", "backup")}
    assert decide("h1", aio, {"h1": "10.2.0.1"})["pgbackrest"] == {
        "mode": "local",
        "primary": "h1",
        "pg_hosts": [],
        "repo_hosts": ["h1"],
        "repos": [],
        "ca_host": "",
        "drill_hosts": ["h1"],
    }
    assert not [rule for rule in decide("h1", aio, {"h1": "10.2.0.1"})["firewall_rules"] if rule["port"] == 8432]
    # Backups on hosts of their own: one repository on each, reached over TLS; the first keeps the CA.
    two = {**CLUSTER, "backup": ["m", "c"]}
    assert decide("d", two, ADDRESSES)["pgbackrest"] == {
        "mode": "remote",
        "primary": "d",
        "pg_hosts": [{"name": "d", "address": "10.1.0.4"}],
        "repo_hosts": ["m", "c"],
        "repos": [{"name": "m", "address": "10.1.0.6"}, {"name": "c", "address": "10.1.0.5"}],
        "ca_host": "m",
        "drill_hosts": ["d"],
    }
    # Every member of a Patroni cluster runs a TLS server too: the repository hosts back up from a standby.
    with_replica = decide("m", {**two, "db": ["d", "r"]}, {**ADDRESSES, "r": "10.1.0.7"})["pgbackrest"]
    assert with_replica["pg_hosts"] == [{"name": "d", "address": "10.1.0.4"}, {"name": "r", "address": "10.1.0.7"}]
    # No backup host, or no database: nothing to archive to or from.
    assert decide("d", {**CLUSTER, "backup": []}, ADDRESSES)["pgbackrest"]["mode"] == "off"
    assert decide("h1", {**aio, "db": []}, {"h1": "10.2.0.1"})["pgbackrest"]["mode"] == "off"


def test_pgbackrests_tls_port_opens_only_between_the_database_and_the_repository_hosts():
    two = {**CLUSTER, "backup": ["m", "c"], "db": ["d", "r"]}
    addresses = {**ADDRESSES, "r": "10.1.0.7"}

    def rules(host):
        return [rule for rule in decide(host, two, addresses)["firewall_rules"] if rule["port"] == 8432]

    from_repos = [{"port": 8432, "sources": ["10.1.0.6", "10.1.0.5"], "comment": "pgBackRest from repository hosts"}]
    assert rules("d") == from_repos and rules("r") == from_repos
    from_db = [{"port": 8432, "sources": ["10.1.0.4", "10.1.0.7"], "comment": "pgBackRest from the database hosts"}]
    assert rules("m") == from_db and rules("c") == from_db
    assert rules("a1") == [] and rules("w") == []
    # All in one place: no TLS link, no port.
    aio = {tier: ["h1"] for tier in ("web", "app", "db", "cache", "monitoring", "backup")}
    assert not [rule for rule in decide("h1", aio, {"h1": "10.2.0.1"})["firewall_rules"] if rule["port"] == 8432]


def test_etcd_members_talk_to_each_other_and_serve_only_the_database_hosts():
    groups = {**CLUSTER, "db": ["d", "r"], "etcd": ["d", "r", "m"]}
    addresses = {**ADDRESSES, "r": "10.1.0.7"}

    def rules(host):
        facts = decide(host, groups, addresses)
        return [rule for rule in facts["firewall_rules"] if rule["port"] in (2379, 2380, 2381)]

    assert decide("a1", groups, addresses)["etcd"] == {
        "members": [
            {"name": "d", "address": "10.1.0.4"},
            {"name": "r", "address": "10.1.0.7"},
            {"name": "m", "address": "10.1.0.6"},
        ],
        "ca_host": "d",
    }
    assert rules("d") == [
        {"port": 2380, "sources": ["10.1.0.7", "10.1.0.6"], "comment": "etcd peers"},
        {
            "port": 2379,
            "sources": ["10.1.0.7", "10.1.0.6"],
            "comment": "etcd clients: the other members and the database hosts",
        },
        {"port": 2381, "sources": ["10.1.0.6"], "comment": "etcd metrics from monitoring hosts"},
    ]
    # The monitoring host is a member: it scrapes its own metrics on loopback, the others' on their address.
    assert [rule["port"] for rule in rules("m")] == [2380, 2379]
    assert rules("a1") == [] and rules("w") == []
    jobs = {job["job_name"]: job for job in decide("m", groups, addresses)["scrape_jobs"]}
    assert [c["targets"] for c in jobs["etcd"]["static_configs"]] == [
        ["10.1.0.4:2381"],
        ["127.0.0.1:2381"],
        ["10.1.0.7:2381"],
    ]
    # No etcd group (the all-in-one layout): no member, no rule, no scrape job.
    assert decide("d", CLUSTER, ADDRESSES)["etcd"] == {"members": [], "ca_host": ""}
    assert "etcd" not in {job["job_name"] for job in decide("m", CLUSTER, ADDRESSES)["scrape_jobs"]}


def test_several_db_hosts_make_a_patroni_cluster_its_clients_reach_through_haproxy():
    groups = {**CLUSTER, "db": ["d", "r"], "etcd": ["d", "r", "m"]}
    addresses = {**ADDRESSES, "r": "10.1.0.7"}
    members = [{"name": "d", "address": "10.1.0.4"}, {"name": "r", "address": "10.1.0.7"}]
    facts = {host: decide(host, groups, addresses) for host in addresses}
    assert facts["a1"]["patroni"] == {
        "enabled": True,
        "members": members,
        "ca_host": "d",
        "endpoint_hosts": ["a1", "a2", "m"],
        "pooled": False,
        "scrape_ca_dir": "/etc/prometheus/patroni",
    }
    # The app and the backups reach the leader (or a replica) through HAProxy on their own host.
    haproxy = {"name": "", "host": "127.0.0.1", "sslmode": "require", "local": False}
    assert facts["a1"]["database"] == {**haproxy, "port": 5000}
    assert facts["m"]["backup_database"] == {**haproxy, "port": 5000}
    on_replica = decide("m", groups, addresses, {"backup_from_replica": True})["backup_database"]
    assert on_replica == {**haproxy, "port": 5001}
    # Every member answers every HAProxy host and the other members, whichever leads.
    for member, other in (("d", "10.1.0.7"), ("r", "10.1.0.4")):
        rules = {rule["port"]: rule for rule in facts[member]["firewall_rules"]}
        assert rules[5432]["sources"] == ["10.1.0.2", "10.1.0.3", "10.1.0.6", other]
        assert rules[8008]["sources"] == [other, "10.1.0.2", "10.1.0.3", "10.1.0.6"]
        assert rules[2379]["sources"] == [a for a in ("10.1.0.4", "10.1.0.7", "10.1.0.6") if a != addresses[member]]
        assert facts[member]["replicas"] == [m for m in members if m["name"] != member]
    for host in ("a1", "m", "w"):
        assert 8008 not in {rule["port"] for rule in facts[host]["firewall_rules"]}
    # pgBackRest knows every member and finds the leader among them itself; each member carries the drill,
    # which only the leader runs.
    assert [h["name"] for h in facts["m"]["pgbackrest"]["pg_hosts"]] == ["d", "r"]
    assert facts["m"]["pgbackrest"]["drill_hosts"] == ["d", "r"]
    jobs = {job["job_name"]: job for job in facts["m"]["scrape_jobs"]}
    assert jobs["patroni"]["scheme"] == "https"
    assert jobs["patroni"]["tls_config"] == {"ca_file": "/etc/prometheus/patroni/ca.crt"}
    assert [c["targets"] for c in jobs["patroni"]["static_configs"]] == [["10.1.0.4:8008"], ["10.1.0.7:8008"]]


def test_pgbouncer_on_every_member_pools_the_app_nodes_through_their_haproxy():
    """procurement_pgbouncer with several db hosts: PgBouncer on each member, the app nodes' HAProxy reaching
    the leader's on a third listener; only the backup hosts and the members reach PostgreSQL itself."""
    groups = {**CLUSTER, "db": ["d", "r"], "etcd": ["d", "r", "m"]}
    addresses = {**ADDRESSES, "r": "10.1.0.7"}
    facts = {host: decide(host, groups, addresses, {"pgbouncer": True}) for host in addresses}
    assert facts["a1"]["patroni"]["pooled"] and not facts["a1"]["capacity"]["problems"]
    haproxy = {"name": "", "host": "127.0.0.1", "sslmode": "require", "local": False}
    assert facts["a1"]["database"] == {**haproxy, "port": 5002}
    assert facts["m"]["backup_database"] == {**haproxy, "port": 5000}
    for member, other in (("d", "10.1.0.7"), ("r", "10.1.0.4")):
        rules = {rule["port"]: rule for rule in facts[member]["firewall_rules"]}
        assert rules[6432]["sources"] == ["10.1.0.2", "10.1.0.3"]
        assert rules[5432]["sources"] == ["10.1.0.6", other]
        assert rules[8008]["sources"] == [other, "10.1.0.2", "10.1.0.3", "10.1.0.6"]
        assert facts[member]["listen"]["pgbouncer"] == ["127.0.0.1", addresses[member]]


def test_one_db_host_stays_plain_postgresql_and_db_replica_is_refused():
    facts = decide("a1", CLUSTER, ADDRESSES)
    assert not facts["patroni"]["enabled"] and facts["patroni"]["members"] == []
    assert facts["database"]["host"] == "10.1.0.4"
    assert "patroni" not in {job["job_name"] for job in decide("m", CLUSTER, ADDRESSES)["scrape_jobs"]}
    # Streaming replicas beside one primary are gone: the hosts belong in db, as Patroni members.
    addresses = {**ADDRESSES, "r": "10.1.0.7", "x": "10.1.0.8"}
    for db in (["d"], ["d", "r"]):
        (problem,) = decide("a1", {**CLUSTER, "db": db, "db_replica": ["x"]}, addresses)["capacity"]["problems"]
        assert problem.startswith("group db_replica (x): streaming replicas beside one primary are gone")
        assert "Move the db_replica hosts into db" in problem
    # A member that is also a backup host would keep the only repository on one member.
    (problem,) = decide("a1", {**CLUSTER, "db": ["d", "r"], "backup": ["r"]}, addresses)["capacity"]["problems"]
    assert "groups db (d, r) and backup (r): r is in both" in problem


# The capacity model -------------------------------------------------------


def test_the_manuals_4_cpu_host_sizes_the_database_for_9_workers():
    """2 x 4 + 1 = 9 workers of 4 threads: 5 connections each (the manual's pool of 5 kept open, capped at 20)."""
    facts = decide("d", CLUSTER, ADDRESSES, a1={"ansible_facts": {"processor_vcpus": 4}}, a2={"app_workers": 9})
    capacity = facts["capacity"]
    assert capacity["nodes"]["a1"] == {"workers": 9, "threads": 4, "pool_min": 5, "pool_max": 5, "connections": 45}
    assert capacity["nodes"]["a2"]["connections"] == 45
    assert capacity["app_connections"] == 90
    # superuser 3, monitoring 2, migrations 1, operators 5, one backup host.
    assert capacity["reserved"] == {"superuser": 3, "monitoring": 2, "migrations": 1, "operators": 5, "backups": 1}
    assert capacity["max_connections"] == 102
    assert capacity["problems"] == []


def test_the_pool_never_exceeds_what_the_threads_can_use_nor_app_db_pool_max():
    threads = decide("d", CLUSTER, ADDRESSES, a1={"app_workers": 3, "app_threads": 16})["capacity"]["nodes"]["a1"]
    assert (threads["pool_min"], threads["pool_max"]) == (5, 17)
    capped = decide("d", CLUSTER, ADDRESSES, a1={"app_workers": 3, "app_threads": 16, "app_db_pool_max": 8})
    assert capped["capacity"]["nodes"]["a1"]["pool_max"] == 8
    assert capped["capacity"]["nodes"]["a1"]["connections"] == 24


def test_a_pinned_max_connections_below_the_sum_is_refused_with_the_numbers():
    facts = decide(
        "a1", CLUSTER, ADDRESSES, d={"postgresql_max_connections": 60}, a1={"app_workers": 9}, a2={"app_workers": 9}
    )
    (problem,) = facts["capacity"]["problems"]
    assert problem.startswith(
        "postgresql_max_connections 60 on d is below what the deployment needs, 102: 90 for the app"
    )
    assert "a1 9 workers x 5 + a2 9 workers x 5" in problem and "operators 5" in problem


def test_behind_pgbouncer_the_server_carries_its_pool_and_pgbouncer_every_client():
    facts = decide("d", CLUSTER, ADDRESSES, {"pgbouncer": True}, a1={"app_workers": 9}, a2={"app_workers": 9})
    capacity = facts["capacity"]
    assert (capacity["client_connections"], capacity["app_connections"], capacity["max_connections"]) == (90, 25, 37)
    crowded = decide("d", CLUSTER, ADDRESSES, {"pgbouncer": True}, d={"pgbouncer_max_client_conn": 50})
    assert "more than pgbouncer_max_client_conn 50" in crowded["capacity"]["problems"][0]


def pgbackrest_conf(text: str) -> dict[str, list[str]]:
    """Each section's settings of a rendered pgbackrest.conf, in order, comments left out."""
    sections, section = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), [])
        elif line and not line.startswith("#") and section is not None:
            section.append(line)
    return sections


def test_two_backup_hosts_keep_a_repository_each_and_back_up_from_the_replica():
    hosts = wiring(TWO_BACKUPS_INVENTORY)
    confs = {name: pgbackrest_conf(host["pgbackrest"]) for name, host in hosts.items() if host["pgbackrest"]}
    assert set(confs) == {"db1", "db2", "ops1", "ops2"}
    # Both database hosts push WAL to (and restore from) both repositories, over TLS.
    for name in ("db1", "db2"):
        settings = confs[name]["global"]
        assert "repo1-host=10.0.0.51" in settings and "repo2-host=10.0.0.52" in settings
        assert not [s for s in settings if s.startswith(("repo1-path", "repo2-path")) or "cipher" in s]
        assert [s for s in settings if s.startswith("tls-server-auth")] == [
            "tls-server-auth=ops1=procurement",
            "tls-server-auth=ops2=procurement",
        ]
    # Each backup host holds its own repository under the number the database hosts give it.
    for name, index, other in (("ops1", 1, 2), ("ops2", 2, 1)):
        settings = confs[name]["global"]
        assert f"repo{index}-path=/var/lib/pgbackrest" in settings
        assert f"repo{index}-cipher-pass=render-only-throwaway-secret-0123456789" in settings
        assert not [s for s in settings if s.startswith(f"repo{other}-")]
        assert [s for s in settings if s.startswith("tls-server-auth")] == [
            "tls-server-auth=db1=procurement",
            "tls-server-auth=db2=procurement",
        ]
        stanza = confs[name]["procurement"]
        assert stanza[0] == "backup-standby=y"
        assert "pg1-host=10.0.0.31" in stanza and "pg2-host=10.0.0.32" in stanza
    # Archiving is set on both database hosts (a standby archives nothing until it is promoted).
    for name in ("db1", "db2"):
        assert hosts[name]["postgresql_archive_command"] == "pgbackrest --stanza=procurement archive-push %p"
    # Backups from the primary when asked.
    settings = pgbackrest_conf(wiring(TWO_BACKUPS_INVENTORY, pgbackrest_backup_standby=False)["ops1"]["pgbackrest"])
    assert "backup-standby=y" not in settings["procurement"]
