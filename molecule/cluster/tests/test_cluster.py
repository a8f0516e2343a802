"""The scaled-out topology: load balancing, replication, network reach and rolling deploys."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from conftest import LB_PORT, PROJECT, Poller, address
from test_zero_downtime_deploys import deploy, release_tree, target_python

APP_NODES = ("cluster-app1", "cluster-app2")
DB_QUERY = "runuser -u postgres -- psql -tA -d procurement_db -c {query!r}"


def build(tree, python: str) -> None:
    """Build a release tree's artifact for the hosts' Python with the project's app virtualenv."""
    subprocess.run(
        [str(tree / "tools/build-dist.sh"), python, str(PROJECT / "app/.venv/bin/python")],
        cwd=tree,
        check=True,
        capture_output=True,
        timeout=900,
    )


def requests_served(node) -> float:
    """Requests the app on this node has answered (http_requests_total over every label)."""
    metrics = node.check_output("curl -fsS http://127.0.0.1:8000/metrics")
    return sum(float(m.group(1)) for m in re.finditer(r"^http_requests_total\{[^}]*\} (\S+)$", metrics, re.M))


def psql(node, query: str) -> str:
    return node.check_output(DB_QUERY.format(query=query))


def current_release(node) -> str:
    return node.check_output("readlink /opt/procurement/current").rsplit("/", 1)[-1]


def lb_status(nodes, path: str = "/health/ready") -> str:
    """Status code of a GET through the load balancer, from the web host itself."""
    return nodes["cluster-web1"].check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve procurement.cluster.test:443:127.0.0.1 "
        f"https://procurement.cluster.test{path}"
    )


def test_requests_through_the_load_balancer_reach_both_app_nodes(nodes, lb, secrets):
    before = {name: requests_served(nodes[name]) for name in APP_NODES}
    for _ in range(40):
        lb.ok("GET", "/suppliers?per_page=1", secrets["vault_app_admin_token"])
    served = {name: requests_served(nodes[name]) - before[name] for name in APP_NODES}
    assert sum(served.values()) >= 40, served
    assert all(count >= 10 for count in served.values()), served


def test_a_row_written_through_the_api_is_on_the_replica_within_5_seconds(nodes, lb, secrets):
    name = f"Replica Co {time.time()}"
    lb.ok("POST", "/suppliers", secrets["vault_app_admin_token"], {"name": name, "category": "it", "contact": "r@x.io"})
    written = time.monotonic()
    query = f"select count(*) from suppliers where name = '{name}'"
    while psql(nodes["cluster-db2"], query) != "1":
        assert time.monotonic() - written < 5, "the row did not reach the replica within 5 s"
        time.sleep(0.1)
    assert psql(nodes["cluster-db2"], "select pg_is_in_recovery()") == "t"
    streaming = psql(nodes["cluster-db1"], "select count(*) from pg_stat_replication where state = 'streaming'")
    assert streaming == "1"


def test_replication_runs_over_tls_through_the_replicas_slot(nodes):
    ssl = psql(
        nodes["cluster-db1"],
        "select s.ssl from pg_stat_ssl s join pg_stat_replication r on r.pid = s.pid",
    )
    assert ssl == "t"
    slot = psql(nodes["cluster-db1"], "select slot_name || ':' || active from pg_replication_slots")
    assert slot == "cluster_db2:true"


def test_the_replica_refuses_writes(nodes):
    result = nodes["cluster-db2"].run(DB_QUERY.format(query="create table not_here (id int)"))
    assert result.rc != 0
    assert "read-only transaction" in result.stderr


def test_database_port_answers_the_app_nodes_and_the_replica_only(nodes):
    primary = address(nodes["cluster-db1"])
    probe = f"timeout 3 bash -c '</dev/tcp/{primary}/5432'"
    for name in ("cluster-app1", "cluster-app2", "cluster-db2"):
        assert nodes[name].run(probe).rc == 0, f"{name} cannot reach the primary"
    for name in ("cluster-web1", "cluster-ops1"):
        assert nodes[name].run(probe).rc != 0, f"{name} reaches the primary's database port"


def test_backups_read_the_replica_and_restore_in_the_drill(nodes):
    ops = nodes["cluster-ops1"]
    assert ops.run("systemctl start procurement-backup.service").rc == 0
    conf = ops.file("/etc/procurement/backup.conf").content_string
    assert address(nodes["cluster-db2"]) in conf
    assert ops.run("systemctl start procurement-restore-drill.service").rc == 0
    marker = ops.file("/var/lib/prometheus/node-exporter/procurement_restore_drill.prom").content_string
    assert re.search(r"^procurement_restore_drill_last_success 1$", marker, re.M), marker


def test_replication_state_reaches_prometheus(nodes):
    ops = nodes["cluster-ops1"]
    deadline = time.monotonic() + 120
    query = "pg_replica_streaming%7Binstance%3D%22cluster-db2%22%7D"
    while True:
        out = ops.check_output(f"curl -fsS 'http://127.0.0.1:9090/api/v1/query?query={query}'")
        if '"value":[' in out and out.rstrip().endswith('"1"]}]}}'):
            break
        assert time.monotonic() < deadline, out
        time.sleep(5)


def test_stopping_the_app_on_one_node_loses_no_request_once_nginx_knows(nodes, secrets):
    """An unplanned stop: only requests already sent to the node when it went away may fail.

    nginx learns of the failure from the request that meets it (refused
    connection) and sends it on to the other node; from the moment the stop
    has completed, every request must succeed.
    """
    poller = Poller(LB_PORT, secrets["vault_app_admin_token"])
    node = nodes["cluster-app1"]
    poller.start()
    try:
        time.sleep(3)
        stopping = time.monotonic()
        assert node.run("systemctl stop procurement.socket procurement.service").rc == 0
        stopped = time.monotonic()
        time.sleep(10)
    finally:
        node.run("systemctl start procurement.socket procurement.service")
        time.sleep(3)
        poller.stop()
    assert poller.ok > 50
    late = [f for f, at in zip(poller.failures, poller.failed_at) if at >= stopped]
    assert late == [], late[:5]
    early = [at for at in poller.failed_at if at < stopping]
    assert early == [], poller.failures[:5]
    assert node.run("curl -fsS -o /dev/null http://127.0.0.1:8000/health/ready").rc == 0


@pytest.fixture(scope="module")
def base_version(nodes) -> str:
    """The release the converge deployed; the test releases are numbered after it."""
    return current_release(nodes["cluster-app1"])


def test_rolling_deploy_under_steady_load_fails_no_request(nodes, secrets, tmp_path_factory, base_version):
    base = base_version
    tree = release_tree(tmp_path_factory.mktemp("next"), base + ".post1", python=target_python(nodes["cluster-app1"]))
    poller = Poller(LB_PORT, secrets["vault_app_admin_token"], limit_seconds=1200)
    poller.interval = 0.05  # about 20 requests a second, for the deploy's duration
    poller.start()
    try:
        time.sleep(2)
        result = deploy(str(PROJECT / "playbooks/deploy.yml"), "-e", f"app_source_dir={tree}")
        time.sleep(2)
    finally:
        poller.stop()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert {current_release(nodes[name]) for name in APP_NODES} == {base + ".post1"}
    assert poller.ok > 100
    assert poller.failures == [], poller.failures[:5]


def test_a_broken_release_stops_the_roll_and_the_old_release_keeps_serving(nodes, tmp_path_factory, base_version):
    before = {name: current_release(nodes[name]) for name in APP_NODES}
    broken = base_version + ".post2"
    tree = release_tree(
        tmp_path_factory.mktemp("broken"),
        broken,
        broken=True,
        python=target_python(nodes["cluster-app1"]),
    )
    result = deploy(
        str(PROJECT / "playbooks/deploy.yml"), "-e", f"app_source_dir={tree}", "-e", "app_health_timeout=20"
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "failed its health gate" in output
    # The first node went back; the second never received the release.
    assert {name: current_release(nodes[name]) for name in APP_NODES} == before
    assert not nodes["cluster-app2"].file(f"/opt/procurement/releases/{broken}").exists
    for _ in range(10):
        assert lb_status(nodes) == "200"


def test_a_release_failing_on_a_later_node_sends_the_earlier_nodes_back(nodes, tmp_path_factory, base_version):
    """app1 takes the release (batch 1), app2 fails its gate (batch 2): both serve the old release again."""
    before = {name: current_release(nodes[name]) for name in APP_NODES}
    version = base_version + ".post3"
    tree = release_tree(tmp_path_factory.mktemp("half"), version, broken=True)
    # Broken on app2 only: its readiness check fails there and nowhere else.
    checker = tree / "src/procurement/health_checker.py"
    checker.write_text(
        checker.read_text().replace(
            "def _broken(*_a, **_k):\n",
            "def _broken(*_a, **_k):\n    import socket\n\n    if socket.gethostname() != 'cluster-app2':\n        return\n",
        )
    )
    build(tree, target_python(nodes["cluster-app1"]))
    result = deploy(
        str(PROJECT / "playbooks/deploy.yml"), "-e", f"app_source_dir={tree}", "-e", "app_health_timeout=20"
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert f"Release {version} failed its health gate on cluster-app2" in output, output[-3000:]
    assert "Nodes of earlier batches switched back as well: cluster-app1" in output, output[-3000:]
    assert {name: current_release(nodes[name]) for name in APP_NODES} == before
    for _ in range(10):
        assert lb_status(nodes) == "200"
