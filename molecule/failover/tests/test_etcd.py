"""The etcd cluster (the etcd group: db1, db2 and app1 here), the store of Patroni's failover: three members
over TLS, each port open only to those that need it."""

from __future__ import annotations

import json
import time

from conftest import address, allowed_sources

MEMBERS = ("failover-db1", "failover-db2", "failover-app1")


def test_three_members_form_one_healthy_cluster_over_tls(nodes):
    db1 = nodes["failover-db1"]
    members = json.loads(db1.check_output("procurement-etcdctl member list -w json"))["members"]
    assert sorted(m["name"] for m in members) == sorted(MEMBERS)
    for member in members:
        assert all(url.startswith("https://") for url in member["peerURLs"] + member["clientURLs"]), member
    health = db1.check_output("procurement-etcdctl endpoint health --cluster 2>&1")
    assert health.count("is healthy") == 3, health
    # A key written through one member is read through another.
    db1.check_output("procurement-etcdctl put /procurement-test/written-on db1")
    assert (
        nodes["failover-app1"].check_output("procurement-etcdctl get --print-value-only /procurement-test/written-on")
        == "db1"
    )
    db1.check_output("procurement-etcdctl del /procurement-test/written-on")


def test_a_client_needs_a_certificate_from_etcds_own_authority(nodes):
    db1, ops = nodes["failover-db1"], nodes["failover-app1"]
    endpoint = f"--endpoints=https://{address(ops)}:2379 --cacert=/etc/etcd/tls/ca.crt --command-timeout=5s"
    # No client certificate: refused.
    anonymous = db1.run(f"ETCDCTL_API=3 etcdctl {endpoint} get /")
    assert anonymous.rc != 0, anonymous.stdout
    # A certificate of another link (Patroni's REST API, signed by its own authority): refused too.
    foreign = db1.run(
        f"ETCDCTL_API=3 etcdctl {endpoint} --cert=/etc/patroni/tls/host.crt --key=/etc/patroni/tls/host.key get /"
    )
    assert foreign.rc != 0, foreign.stdout
    # The member's own certificate: served.
    own = db1.run(f"ETCDCTL_API=3 etcdctl {endpoint} --cert=/etc/etcd/tls/host.crt --key=/etc/etcd/tls/host.key get /")
    assert own.rc == 0, own.stderr
    key = db1.file("/etc/etcd/tls/host.key")
    assert (key.user, key.mode) == ("etcd", 0o600)
    # The authority's key stays on the group's first member (app1, first in the inventory); db1 keeps
    # Patroni's authority, not etcd's.
    assert ops.file("/etc/procurement-pki/etcd/ca.key").mode == 0o600
    assert not db1.file("/etc/procurement-pki/etcd").exists
    assert db1.file("/etc/procurement-pki/patroni/ca.key").mode == 0o600


def test_etcds_ports_open_only_to_its_peers_the_database_hosts_and_monitoring(nodes):
    """Every host of this scenario is a member; the rules name exactly the other two (tests/test_topology.py
    proves that hosts outside the group get none)."""
    db1 = nodes["failover-db1"]
    others = {address(nodes["failover-db2"]), address(nodes["failover-app1"])}
    allowed = allowed_sources(db1)
    assert allowed["2379/tcp"] == others and allowed["2380/tcp"] == others, allowed
    assert allowed["2381/tcp"] == {address(nodes["failover-app1"])}, allowed
    ops = nodes["failover-app1"]
    assert ops.run(f"timeout 3 bash -c '</dev/tcp/{address(db1)}/2381'").rc == 0
    # Metrics: plain HTTP, to the monitoring host only, and scraped there.
    query = "etcd_server_has_leader"
    deadline = time.monotonic() + 90
    while True:
        out = json.loads(ops.check_output(f"curl -fsS 'http://127.0.0.1:9090/api/v1/query?query={query}'"))
        found = {r["metric"]["instance"]: r["value"][1] for r in out["data"]["result"]}
        if found == dict.fromkeys(MEMBERS, "1"):
            break
        assert time.monotonic() < deadline, found
        time.sleep(5)
    # Its alerts are loaded, and none is pending or firing on the healthy cluster.
    rules = json.loads(ops.check_output("curl -fsS http://127.0.0.1:9090/api/v1/rules"))
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"EtcdNoLeader", "EtcdMemberDown", "EtcdQuorumLost"} <= loaded
    alerts = json.loads(ops.check_output("curl -fsS http://127.0.0.1:9090/api/v1/alerts"))["data"]["alerts"]
    assert not [a for a in alerts if a["labels"]["alertname"].startswith("Etcd")], alerts
