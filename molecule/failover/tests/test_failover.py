"""Automatic failover with Patroni and etcd: the cluster as converged, the endpoint the app reaches the
leader through, a planned switchover and the loss of the leader's host under a writer, each measured
(RESULT lines in .cache/results/failover.txt, docs/scaling.md), and the cluster converged again after the
scenario's other tests (test_members.py, test_restore.py). The tests run in this order and each leaves the
cluster whole for the next."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from conftest import (
    DB_HOSTS,
    PROJECT,
    RECAP,
    Writers,
    address,
    allowed_sources,
    leader,
    names_on,
    psql,
    run_playbook,
    wait_for_cluster,
)

RESULTS = PROJECT / ".cache" / "results" / "failover.txt"


def record(line: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as results:
        results.write(line + "\n")
    print(line)


def test_the_first_member_leads_and_the_second_is_its_synchronous_standby(nodes):
    state = wait_for_cluster(nodes, "failover-db1")
    assert state["failover-db1"]["Role"] == "Leader"
    assert state["failover-db2"]["Role"] == "Sync Standby"
    # Streaming over TLS from the leader, and refusing writes.
    db2 = nodes["failover-db2"]
    assert psql(nodes["failover-db1"], "select ssl from pg_stat_ssl join pg_stat_replication using (pid)") == "t"
    assert psql(db2, "select pg_is_in_recovery()") == "t"
    # Patroni owns the server: the distribution's unit stays off, at boot too.
    for name in DB_HOSTS:
        node = nodes[name]
        assert node.service("patroni@15-main").is_running and node.service("patroni@15-main").is_enabled
        assert not node.service("postgresql@15-main").is_running
        assert node.file("/etc/postgresql/15/main/start.conf").content_string.strip().endswith("manual")
    # The postgresql role's drop-in is in force under Patroni, and so is its max_connections (the capacity
    # model's, which Patroni passes on the command line from its store).
    assert psql(db2, "select setting from pg_settings where name = 'log_min_duration_statement'") == "500"
    dropin = db2.file("/etc/postgresql/15/main/conf.d/50-procurement.conf").content_string
    assert f"max_connections = {psql(db2, 'show max_connections')}\n" in dropin, dropin


def test_the_app_reaches_the_leader_and_a_replica_through_haproxy(nodes):
    app = nodes["failover-app1"]
    env = app.file("/opt/procurement/.env").content_string
    assert "PROCUREMENT_DB_HOST=127.0.0.1\n" in env and "PROCUREMENT_DB_PORT=5000\n" in env, env
    # The app's own settings and driver, on each of HAProxy's two ports.
    check = (
        "import psycopg, sys\n"
        "env = dict(l.split('=', 1) for l in open('/opt/procurement/.env').read().splitlines() if '=' in l)\n"
        "with psycopg.connect(host='127.0.0.1', port=sys.argv[1], dbname=env['PROCUREMENT_DB_NAME'],\n"
        "                     user=env['PROCUREMENT_DB_USER'], password=env['PROCUREMENT_DB_PASSWORD'],\n"
        "                     sslmode='require') as c:\n"
        "    print(c.execute('select pg_is_in_recovery(), host(inet_server_addr())').fetchone())\n"
    )
    app.check_output(f"cat > /root/endpoint.py <<'PY'\n{check}PY")
    python = "/opt/procurement/current/venv/bin/python"
    primary = app.check_output(f"{python} /root/endpoint.py 5000")
    replica = app.check_output(f"{python} /root/endpoint.py 5001")
    assert primary == f"(False, '{address(nodes['failover-db1'])}')", primary
    assert replica == f"(True, '{address(nodes['failover-db2'])}')", replica
    # HAProxy listens on loopback only.
    listening = app.check_output("ss -Htlnp | grep haproxy")
    assert set(re.findall(r"\s(\S+):500[01]\s", listening)) == {"127.0.0.1"}, listening


def test_patronis_rest_api_opens_only_to_its_peers_and_refuses_changes_without_the_password(nodes):
    db1 = nodes["failover-db1"]
    app, db2 = address(nodes["failover-app1"]), address(nodes["failover-db2"])
    allowed = allowed_sources(db1)
    # The other member, and the app node's HAProxy and Prometheus.
    assert allowed["8008/tcp"] == {db2, app}, allowed
    assert allowed["5432/tcp"] == {db2, app}, allowed
    # The REST API answers reads over TLS to a peer; changes need the password.
    leader_url = f"https://{address(db1)}:8008"
    ca = "/etc/haproxy/patroni/ca.crt"
    app1 = nodes["failover-app1"]
    assert app1.check_output(f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {ca} {leader_url}/primary") == "200"
    refused = app1.check_output(
        f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {ca} -X POST -d '{{}}' {leader_url}/switchover"
    )
    assert refused == "401", refused


def test_prometheus_scrapes_every_member_over_tls_and_sees_one_leader(nodes):
    app = nodes["failover-app1"]
    deadline = time.monotonic() + 120
    query = "sum(patroni_primary%7Bjob%3D%22patroni%22%7D)%20and%20count(up%7Bjob%3D%22patroni%22%7D%3D%3D1)%3D%3D2"
    while True:
        out = app.check_output(f"curl -fsS 'http://127.0.0.1:9090/api/v1/query?query={query}'")
        if out.rstrip().endswith('"1"]}]}}'):
            break
        assert time.monotonic() < deadline, out
        time.sleep(5)
    # The Patroni alerts are loaded, and none is pending or firing on the healthy cluster.
    rules = json.loads(app.check_output("curl -fsS http://127.0.0.1:9090/api/v1/rules"))
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"PatroniNoLeader", "PatroniMemberDown", "PatroniReplicaLag", "PatroniNoSyncStandby"} <= loaded
    alerts = json.loads(app.check_output("curl -fsS http://127.0.0.1:9090/api/v1/alerts"))["data"]["alerts"]
    assert not [a for a in alerts if a["labels"]["alertname"].startswith("Patroni")], alerts


def measure(writer: Writers, start: float) -> dict:
    """The writes sent since ``start`` that failed, and the time from the first one's sending to the last one's
    answer (0 when none failed)."""
    failed = [w for w in writer.writes if w.sent >= start and w.status != 201]
    return {
        "failed": failed,
        "failed_window_s": (max(w.done for w in failed) - min(w.sent for w in failed)) if failed else 0.0,
    }


def test_a_planned_switchover_under_writes_loses_nothing(nodes, secrets):
    writer = Writers(secrets["vault_app_admin_token"], prefix=f"switchover {time.time_ns()}")
    writer.start()
    time.sleep(10)
    started = time.monotonic()
    result = run_playbook(str(PROJECT / "playbooks/switchover.yml"))
    ended = time.monotonic()
    time.sleep(5)
    writer.stop()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert leader(nodes) == "failover-db2"
    figures = measure(writer, started)
    acknowledged = [w for w in writer.writes if w.status == 201]
    lost = [w for w in acknowledged if w.name not in names_on(nodes["failover-db2"], writer.prefix)]
    record(
        f"RESULT switchover_failed_s={figures['failed_window_s']:.1f} "
        f"switchover_failed_requests={len(figures['failed'])} switchover_lost_acknowledged_writes={len(lost)} "
        f"switchover_playbook_s={ended - started:.1f} acknowledged={len(acknowledged)}"
    )
    assert len(acknowledged) > 200, f"only {len(acknowledged)} writes acknowledged"
    assert not lost, f"{len(lost)} acknowledged writes are not on the new leader"
    # The former leader follows the new one.
    state = wait_for_cluster(nodes, "failover-db2")
    assert state["failover-db1"]["Role"] in ("Sync Standby", "Replica")


def test_losing_the_leaders_host_fails_over_and_loses_no_acknowledged_write(nodes, secrets):
    """The leader's container is killed (SIGKILL to its systemd: PostgreSQL, Patroni and its etcd member die
    at once) under a writer; the synchronous standby takes over, the app's HAProxy follows it, and the
    former leader, started again, rejoins as a replica by itself (pg_rewind through Patroni)."""
    old = leader(nodes)
    assert old in DB_HOSTS
    survivor = next(name for name in DB_HOSTS if name != old)
    writer = Writers(secrets["vault_app_admin_token"], prefix=f"failover {time.time_ns()}")
    writer.start()
    time.sleep(15)
    # The outage is counted from the moment the kill is sent; the first acknowledged write after it must
    # have been sent once `docker kill` had returned (a write answered while the kill ran proves nothing).
    kill_sent = time.monotonic()
    subprocess.run(["docker", "kill", old], check=True, capture_output=True)
    killed = time.monotonic()
    deadline = killed + 120
    while not [w for w in writer.writes if w.sent >= killed and w.status == 201]:
        assert time.monotonic() < deadline, "no write was acknowledged within 120 s of the leader's loss"
        time.sleep(0.5)
    time.sleep(10)
    writer.stop()
    figures = measure(writer, kill_sent)
    rto = min(w.done for w in writer.writes if w.sent >= killed and w.status == 201) - kill_sent
    acknowledged = [w for w in writer.writes if w.status == 201]
    on_survivor = names_on(nodes[survivor], writer.prefix)
    lost = [w for w in acknowledged if w.name not in on_survivor]
    # The baseline, from the same writer before the kill: its rate and failures with nothing lost.
    steady = [w for w in writer.writes if w.done < kill_sent]
    steady_rate = len(steady) / max(steady[-1].done - steady[0].sent, 1e-9) if steady else 0.0
    record(
        f"RESULT failover_rto_s={rto:.1f} failover_failed_requests={len(figures['failed'])} "
        f"failover_lost_acknowledged_writes={len(lost)} acknowledged={len(acknowledged)} "
        f"baseline_writes_per_s={steady_rate:.1f} baseline_failed_requests={sum(w.status != 201 for w in steady)}"
    )
    assert leader(nodes) == survivor
    assert not lost, f"{len(lost)} acknowledged writes are missing on the new leader"
    # The former leader comes back and follows the new one, with every row.
    subprocess.run(["docker", "start", old], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while subprocess.run(["docker", "exec", old, "systemctl", "is-system-running"], capture_output=True).returncode:
        assert time.monotonic() < deadline, f"{old} did not boot"
        time.sleep(2)
    state = wait_for_cluster(nodes, survivor, timeout=240)
    assert state[old]["Role"] in ("Sync Standby", "Replica")
    returned = nodes[old]
    deadline = time.monotonic() + 30
    while names_on(returned, writer.prefix) != on_survivor:
        assert time.monotonic() < deadline, "the former leader lacks rows of the new one"
        time.sleep(1)


@pytest.mark.after_every_other_test
@pytest.mark.parametrize("mode", ["converge", "check"])
def test_after_the_failover_a_converge_changes_nothing(nodes, mode):
    """The roles follow whichever member leads (the app database, the exporter's role, Patroni's settings).
    The whole site's second converge changes nothing after every other test of the scenario: the switchover,
    the failover, a member added and removed, the dump restored into the leader and the whole cluster
    restored to a point in time. It is this scenario's idempotence step (molecule.yml leaves Molecule's own
    out). Check mode then runs on the whole site: it is this scenario's check-mode test (conftest.py deselects
    the shared one), and the one after the restores."""
    options = ["--check"] if mode == "check" else []
    result = run_playbook(str(PROJECT / "molecule/failover/converge.yml"), *options)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    recap = {host: int(changed) for host, changed, _, _ in RECAP.findall(result.stdout)}
    hosts = {*DB_HOSTS, "failover-app1"}
    assert hosts <= set(recap) and not any(recap.values()), (
        recap,
        [line for line in result.stdout.splitlines() if line.startswith("changed:")][:20],
    )
