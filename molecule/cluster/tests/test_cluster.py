"""The scaled-out topology: load balancing, replication (a Patroni cluster), network reach and rolling deploys."""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
import warnings

import pytest
from conftest import LB_PORT, PROJECT, Poller, address, concurrent_writes, failed_units, too_many_clients
from test_backup import MIGRATION_0007
from test_zero_downtime_deploys import deploy, release_tree, target_python

APP_NODES = ("cluster-app1", "cluster-app2")
# The scenario's app_bind_port (group_vars/all/cluster.yml), not the default 8000.
APP_PORT = 8100
DB_QUERY = "runuser -u postgres -- psql -tA -d procurement_db -c {query!r}"
# The test releases add an additive migration, as a real release would.
NEXT_SCHEMA = {"src/procurement/migrations/versions/0007_supplier_notes.py": MIGRATION_0007}
STATUS_LINE = re.compile(r"^(ok|changed|skipping|fatal|failed): \[([^\]]+)\]")


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
    metrics = node.check_output(f"curl -fsS http://127.0.0.1:{APP_PORT}/metrics")
    return sum(float(m.group(1)) for m in re.finditer(r"^http_requests_total\{[^}]*\} (\S+)$", metrics, re.M))


def psql(node, query: str) -> str:
    return node.check_output(DB_QUERY.format(query=query))


def current_release(node) -> str:
    return node.check_output("readlink /opt/procurement/current").rsplit("/", 1)[-1]


def task_results(output: str) -> list[tuple[str, str, str, str]]:
    """(play, task, status, host) for every host line of an ansible-playbook run, in order."""
    play = task = ""
    results = []
    for line in output.splitlines():
        if line.startswith("PLAY ["):
            play = line[6 : line.index("]")]
        elif line.startswith("TASK ["):
            task = line[6 : line.index("]")]
        elif match := STATUS_LINE.match(line):
            results.append((play, task, match.group(1), match.group(2)))
    return results


def lb_status(nodes, path: str = "/health/ready") -> str:
    """Status code of a GET through the load balancer, from the web host itself."""
    return nodes["cluster-web1"].check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve procurement.cluster.test:443:127.0.0.1 "
        f"https://procurement.cluster.test{path}"
    )


def test_every_host_boots_clean(nodes):
    """Each host, whatever its tier, reports `running` with no failed unit (the ops host's Prometheus
    brings in no collectors that fail without IPMI or NVMe hardware)."""
    states = {name: failed_units(node, timeout=120) for name, node in nodes.items()}
    assert states == dict.fromkeys(nodes, ("running", ""))


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
    """Patroni's replication: over TLS (sslmode require), through a slot named after the member."""
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


def test_database_ports_answer_the_app_nodes_and_the_replica_only(nodes):
    """PostgreSQL answers the other member and the backup host; the app nodes come through PgBouncer."""
    primary = address(nodes["cluster-db1"])
    reach = {
        port: {
            name: nodes[name].run(f"timeout 3 bash -c '</dev/tcp/{primary}/{port}'").rc == 0
            for name in ("cluster-app1", "cluster-app2", "cluster-db2", "cluster-web1", "cluster-ops1")
        }
        for port in (5432, 6432)
    }
    assert {name for name, ok in reach[5432].items() if ok} == {"cluster-db2", "cluster-ops1"}, reach
    assert {name for name, ok in reach[6432].items() if ok} == {"cluster-app1", "cluster-app2"}, reach


def test_the_app_port_follows_app_bind_port_everywhere(nodes):
    """gunicorn, nginx's upstream, the firewall and Prometheus all use the chosen port; nothing is left on 8000."""
    app1 = nodes["cluster-app1"]
    where = address(app1)
    reach = {
        name: nodes[name].run(f"timeout 3 bash -c '</dev/tcp/{where}/{APP_PORT}'").rc == 0
        for name in ("cluster-web1", "cluster-ops1", "cluster-db1", "cluster-db2", "cluster-app2")
    }
    # The load balancer and the monitoring host only.
    assert {name for name, ok in reach.items() if ok} == {"cluster-web1", "cluster-ops1"}, reach
    assert app1.socket(f"tcp://0.0.0.0:{APP_PORT}").is_listening
    assert not app1.socket("tcp://0.0.0.0:8000").is_listening
    assert f"PROCUREMENT_BIND=0.0.0.0:{APP_PORT}" in app1.file("/opt/procurement/.env").content_string
    site = nodes["cluster-web1"].file("/etc/nginx/sites-available/procurement").content_string
    assert f"server {where}:{APP_PORT} " in site and ":8000" not in site
    targets = nodes["cluster-ops1"].check_output("curl -fsS http://127.0.0.1:9090/api/v1/targets?state=active")
    assert f'"{where}:{APP_PORT}"' in targets and ":8000" not in targets


def test_two_nodes_of_nine_workers_take_64_concurrent_writers_each(nodes, secrets):
    """Both app nodes at once, straight from the load balancer's host: no 5xx, no refused connection at the primary."""
    db1 = nodes["cluster-db1"]
    refused_before = too_many_clients(db1)
    token = secrets["vault_app_admin_token"]
    results = {}

    def load(name):
        url = f"http://{address(nodes[name])}:{APP_PORT}"
        results[name] = concurrent_writes(nodes["cluster-web1"], url, token, clients=64, seconds=10)

    workers = [threading.Thread(target=load, args=(name,)) for name in APP_NODES]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # The counts reach the run's log (pytest's warnings summary) for the record.
    warnings.warn(f"64 writers for 10 s at each app node at once: {results}", stacklevel=1)
    for name in APP_NODES:
        assert set(results[name]) == {"201"} and results[name]["201"] > 64, results
    assert too_many_clients(db1) == refused_before


def test_pgbouncer_pools_the_app_nodes_over_tls(nodes, secrets, lb):
    db1 = nodes["cluster-db1"]
    primary = address(db1)
    app1 = nodes["cluster-app1"]
    # The service runs with server-side prepares off, as transaction pooling needs.
    assert "PROCUREMENT_DB_PREPARED_STATEMENTS=false" in app1.file("/opt/procurement/.env").content_string
    # The app reaches the leader's PgBouncer through its own HAProxy.
    env = app1.file("/opt/procurement/.env").content_string
    assert "PROCUREMENT_DB_HOST=127.0.0.1" in env and "PROCUREMENT_DB_PORT=5002" in env, env
    # TLS is required; the app's own password logs in with it.
    probe = (
        "import sys, psycopg\n"
        "conn = psycopg.connect(host=sys.argv[1], port=6432, dbname='procurement_db', user='procurement_user',"
        " password=sys.stdin.read(), sslmode=sys.argv[2], connect_timeout=5)\n"
        "print(conn.execute('select 1').fetchone()[0], conn.pgconn.ssl_in_use)\n"
    )
    app1.run(f"cat > /tmp/bouncer_probe.py <<'EOF'\n{probe}EOF")

    def login(sslmode: str):
        return app1.run(
            f"printf %s {shlex.quote(secrets['vault_db_password'])} | /opt/procurement/current/venv/bin/python "
            f"/tmp/bouncer_probe.py {primary} {sslmode}"
        )

    with_tls = login("require")
    assert with_tls.rc == 0, with_tls.stderr
    assert with_tls.stdout.split() == ["1", "True"]
    without_tls = login("disable")
    assert without_tls.rc != 0
    assert "SSL required" in without_tls.stderr, without_tls.stderr
    # Under load through the load balancer, the primary sees PgBouncer's
    # connections (over its Unix socket), never the app nodes', and no more
    # than PgBouncer's pool.
    for _ in range(30):
        lb.ok("GET", "/suppliers?per_page=1", secrets["vault_app_admin_token"])
    sessions = psql(
        db1,
        "select coalesce(host(client_addr), 'local') from pg_stat_activity where usename = 'procurement_user'",
    ).split()
    assert sessions and set(sessions) == {"local"}, sessions
    # PgBouncer's 20 + 5, and 12 reserved: superuser 3, monitoring 2, migrations 1, operators 5, one backup host.
    assert psql(db1, "show max_connections").strip() == "37"


def test_backups_read_the_replica_and_restore_in_the_drill(nodes):
    ops = nodes["cluster-ops1"]
    assert ops.run("systemctl start procurement-backup.service").rc == 0
    # Through the backup host's HAProxy, to a replica.
    conf = ops.file("/etc/procurement/backup.conf").content_string
    assert "DB_HOST=127.0.0.1" in conf and "DB_PORT=5001" in conf, conf
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
        assert node.run("systemctl stop procurement.service").rc == 0
        stopped = time.monotonic()
        time.sleep(10)
    finally:
        node.run("systemctl start procurement.service")
        time.sleep(3)
        poller.stop()
    assert poller.ok > 50
    late = [f for f, at in zip(poller.failures, poller.failed_at) if at >= stopped]
    assert late == [], late[:5]
    early = [at for at in poller.failed_at if at < stopping]
    assert early == [], poller.failures[:5]
    assert node.run(f"curl -fsS -o /dev/null http://127.0.0.1:{APP_PORT}/health/ready").rc == 0


@pytest.fixture(scope="module")
def base_version(nodes) -> str:
    """The release the converge deployed; the test releases are numbered after it."""
    return current_release(nodes["cluster-app1"])


def test_rolling_deploy_under_steady_load_fails_no_request(nodes, secrets, tmp_path_factory, base_version):
    base = base_version
    tree = release_tree(
        tmp_path_factory.mktemp("next"),
        base + ".post1",
        python=target_python(nodes["cluster-app1"]),
        files=NEXT_SCHEMA,
    )
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
    # The migration ran once, from app1, in the play before the roll, and
    # before any node switched (the old release served on the new schema).
    assert psql(nodes["cluster-db1"], "SELECT version_num FROM alembic_version").strip() == "0007"
    results = task_results(result.stdout)
    migrated = [r for r in results if "Apply database migrations" in r[1] and r[2] in ("ok", "changed")]
    assert [(play, status, host) for play, _, status, host in migrated] == [
        ("Migrate the database before the first batch", "changed", "cluster-app1")
    ], migrated
    switched = [i for i, r in enumerate(results) if "Point current at the release" in r[1] and r[2] == "changed"]
    assert len(switched) == 2 and results.index(migrated[0]) < switched[0], results


def test_a_broken_release_stops_the_roll_and_the_old_release_keeps_serving(nodes, tmp_path_factory, base_version):
    before = {name: current_release(nodes[name]) for name in APP_NODES}
    broken = base_version + ".post2"
    tree = release_tree(
        tmp_path_factory.mktemp("broken"),
        broken,
        broken=True,
        python=target_python(nodes["cluster-app1"]),
        files=NEXT_SCHEMA,
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
    tree = release_tree(tmp_path_factory.mktemp("half"), version, broken=True, files=NEXT_SCHEMA)
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
