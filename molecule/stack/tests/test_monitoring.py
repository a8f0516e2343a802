"""Monitoring proven by behaviour: targets up, rules loaded, alerts fire, reach the receiver and resolve.

On one of the stack's all-in-one hosts (conftest.py: ONE_HOST_TESTS), so
that Prometheus scrapes every component over loopback; the windows are
shortened in group_vars/all/stack.yml.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from alerting import Prometheus, Receiver, https_status, wait_for
from conftest import SERVER_NAME, TARGETS, stop_postgresql

EXPECTED_JOBS = {"prometheus", "alertmanager", "node", "postgresql", "redis", "nginx", "procurement"}
EXPECTED_RULES = {
    "HighErrorRate",
    "SlowResponse",
    "DatabaseDown",
    "AppDown",
    "LowCacheHitRate",
    "ReplicationLag",
    "ReplicaNotStreaming",
    "ReplicationDelay",
    "BackupTooOld",
    "BackupFailed",
    "RestoreDrillFailed",
    "WalArchivingFailing",
    "WalArchiveBehind",
    "PhysicalFullBackupTooOld",
    "PhysicalDiffBackupTooOld",
    "PhysicalBackupFailed",
    "HighCpuUsage",
    "HighMemoryUsage",
    "HighDiskUsage",
    # Loaded everywhere; quiet where no etcd job is scraped.
    "EtcdNoLeader",
    "EtcdMemberDown",
    "EtcdQuorumLost",
    # Likewise where no patroni job is scraped.
    "PatroniNoLeader",
    "PatroniMemberDown",
    "PatroniReplicaLag",
    "PatroniNoSyncStandby",
}
# Exporters, the app's socket, Prometheus, Alertmanager and the test receiver.
INTERNAL_PORTS = {
    "node_exporter": 9100,
    "postgres_exporter": 9187,
    "redis_exporter": 9121,
    "nginx exporter": 9113,
    "app /metrics": 8000,
    "Prometheus": 9090,
    "Alertmanager": 9093,
}
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
# Scrape and evaluation every 5 s, DatabaseDown and HighErrorRate `for` 15 s,
# group_wait 5 s (group_vars/all/stack.yml): a message is due within
# about 30 s. The bound leaves room for a busy two-core build machine.
ALERT_DEADLINE = 90


@pytest.fixture()
def prometheus(host):
    return Prometheus(host)


@pytest.fixture()
def receiver(host):
    return Receiver(host)


def test_every_scrape_target_is_up(prometheus):
    def targets():
        active = prometheus.get("/api/v1/targets", state="active")["activeTargets"]
        jobs = {t["labels"]["job"] for t in active}
        down = [(t["labels"]["job"], t["scrapeUrl"], t["lastError"]) for t in active if t["health"] != "up"]
        return (jobs, down) if jobs >= EXPECTED_JOBS and not down else None

    jobs, _ = wait_for(targets, timeout=60, what="every target up")
    assert jobs == EXPECTED_JOBS


def test_every_alert_rule_is_loaded_and_healthy(prometheus):
    rules = [rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == EXPECTED_RULES
    unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] == "err"]
    assert not unhealthy


def test_manual_rules_are_loaded_with_the_scenarios_windows(prometheus):
    rules = {rule["name"]: rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]}
    assert rules["DatabaseDown"]["duration"] == 15
    assert rules["HighErrorRate"]["duration"] == 15
    assert rules["SlowResponse"]["duration"] == 300
    assert rules["DatabaseDown"]["annotations"] == {"summary": "数据库不可用", "description": "PostgreSQL服务异常"}


def test_business_figures_reach_prometheus(prometheus):
    def figures():
        up = prometheus.query('procurement_business_metrics_up{job="procurement"}')
        turnover = prometheus.query('procurement_inventory_turnover{job="procurement"}')
        on_time = prometheus.query('procurement_supplier_on_time_delivery_rate{job="procurement"}')
        return up and up[0]["value"][1] == "1" and turnover and on_time

    wait_for(figures, timeout=60, what="business figures in Prometheus")


def test_exporters_listen_on_loopback_only_on_an_all_in_one_host(host):
    for name, port in INTERNAL_PORTS.items():
        listening = host.socket(f"tcp://127.0.0.1:{port}")
        assert listening.is_listening, f"{name} does not listen on 127.0.0.1:{port}"
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening, f"{name} listens on every address"
        assert not host.socket(f"tcp://:::{port}").is_listening, f"{name} listens on every IPv6 address"


def test_metrics_are_not_reachable_from_a_host_outside_the_monitoring_group(host):
    """A container on the same network, in no group, probes every internal port and /metrics."""
    target = TARGETS[host.backend.get_hostname()]["address"]
    probe = f"""
import json, socket, ssl, urllib.request
ports = {json.dumps(INTERNAL_PORTS)}
result = {{}}
for name, port in ports.items():
    try:
        socket.create_connection(("{target}", port), timeout=3).close()
        result[name] = "open"
    except OSError as error:
        result[name] = type(error).__name__
try:
    socket.create_connection(("{target}", 443), timeout=3).close()
    result["https"] = "open"
except OSError as error:
    result["https"] = type(error).__name__
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
request = urllib.request.Request("https://{target}/metrics", headers={{"Host": "{SERVER_NAME}"}})
try:
    result["/metrics"] = urllib.request.urlopen(request, context=context, timeout=5).status
except urllib.error.HTTPError as error:
    result["/metrics"] = error.code
print(json.dumps(result))
"""
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            TARGETS[host.backend.get_hostname()]["network"],
            "procurement-systemd:debian12",
            "python3",
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    result = json.loads(out)
    # The path itself works (HTTPS answers), so a closed port means closed.
    assert result.pop("https") == "open", result
    assert result.pop("/metrics") == 404, result
    assert all(state != "open" for state in result.values()), result


def test_postgres_exporter_logs_in_as_a_pg_monitor_member_only(host):
    row = host.check_output(
        'runuser -u postgres -- psql -tAc "SELECT rolsuper, rolcreaterole, rolcreatedb, '
        "pg_has_role('procurement_monitor', 'pg_monitor', 'member') FROM pg_roles WHERE rolname = 'procurement_monitor'\""
    )
    assert row == "f|f|f|t"
    settings = host.file("/etc/default/prometheus-postgres-exporter")
    assert settings.mode == 0o640 and settings.user == "root" and settings.group == "prometheus"


def test_textfile_collector_serves_files_dropped_in_its_directory(host):
    marker = f"{TEXTFILE_DIR}/monitoring_test.prom"
    host.run(f"printf 'monitoring_test_marker 42\\n' > {marker}.tmp && mv {marker}.tmp {marker}")
    try:
        body = host.check_output("curl -sf http://127.0.0.1:9100/metrics")
        assert "monitoring_test_marker 42" in body
    finally:
        host.run(f"rm -f {marker}")


def test_database_outage_fires_database_down_and_high_error_rate_then_resolves(host, prometheus, receiver):
    """Stop PostgreSQL: DatabaseDown reaches the webhook within its window, 5xx answers
    raise HighErrorRate; start it again: DatabaseDown resolves."""
    since = receiver.now()
    stop_postgresql(host)
    stopped = time.monotonic()
    try:
        # Real 5xx through nginx: readiness answers 503 without its database
        # (after a few, nginx takes the back end out for a while and answers 502).
        statuses = host.check_output(
            "for i in $(seq 40); do curl -sk -o /dev/null -w '%{http_code}\\n' "
            f"--resolve {SERVER_NAME}:443:127.0.0.1 https://{SERVER_NAME}/health/ready; "
            "sleep 0.5; done"
        ).split()
        assert all(status.startswith("5") for status in statuses), statuses
        assert "503" in statuses, statuses

        down = wait_for(
            lambda: receiver.alerts("DatabaseDown", "firing", since),
            timeout=ALERT_DEADLINE,
            what="DatabaseDown at the webhook",
        )
        assert time.monotonic() - stopped <= ALERT_DEADLINE
        assert down[0]["labels"]["severity"] == "critical"
        assert down[0]["labels"]["job"] == "postgresql"
        assert down[0]["annotations"] == {"summary": "数据库不可用", "description": "PostgreSQL服务异常"}

        # The 5m rate keeps HighErrorRate firing for minutes after an earlier
        # run of this test; Alertmanager then sent its message already (and
        # repeats it only hourly), so any message of this firing counts.
        firing = wait_for(
            lambda: prometheus.alerts("HighErrorRate"), timeout=ALERT_DEADLINE, what="HighErrorRate firing"
        )
        errors = wait_for(
            lambda: [
                alert
                for alert in receiver.alerts("HighErrorRate", "firing")
                if alert["startsAt"][:19] >= firing[0]["activeAt"][:19]
            ],
            timeout=ALERT_DEADLINE,
            what="HighErrorRate at the webhook",
        )
        assert errors[0]["annotations"] == {"summary": "高错误率告警", "description": "5分钟内错误率超过5%"}
    finally:
        host.run("systemctl start postgresql")

    restarted = receiver.now()
    wait_for(
        lambda: receiver.alerts("DatabaseDown", "resolved", restarted),
        timeout=ALERT_DEADLINE,
        what="DatabaseDown resolved at the webhook",
    )
    assert not prometheus.alerts("DatabaseDown")
    wait_for(lambda: https_status(host, "/health/ready") == 200, timeout=60, what="the service ready again")


def test_stale_backup_marker_fires_backup_too_old(host, prometheus, receiver):
    """A backup marker 27 hours old raises BackupTooOld (the backup role's textfile contract)."""
    path = f"{TEXTFILE_DIR}/procurement_backup.prom"
    saved = host.run(f"cat {path}")
    now = int(float(receiver.now()))
    stale = now - 27 * 3600
    marker = "\\n".join(
        [
            f"procurement_backup_last_success_timestamp_seconds {stale}",
            f"procurement_backup_last_run_timestamp_seconds {stale}",
            "procurement_backup_last_run_success 1",
            "procurement_backup_last_size_bytes 1048576",
            "procurement_backup_last_duration_seconds 12",
            'procurement_backup_table_rows{table="suppliers"} 3',
        ]
    )
    since = receiver.now()
    host.check_output(f"printf '{marker}\\n' > {path}.tmp && chmod 0644 {path}.tmp && mv {path}.tmp {path}")
    try:
        wait_for(
            lambda: prometheus.query(f"procurement_backup_last_success_timestamp_seconds == {stale}"),
            timeout=60,
            what="the stale marker in Prometheus",
        )
        fired = wait_for(
            lambda: receiver.alerts("BackupTooOld", "firing", since),
            timeout=ALERT_DEADLINE,
            what="BackupTooOld at the webhook",
        )
        assert fired[0]["labels"]["severity"] == "critical"
    finally:
        if saved.rc == 0:
            host.run(f"cat > {path}.tmp <<'EOF'\n{saved.stdout}EOF\nmv {path}.tmp {path}")
        else:
            host.run(f"rm -f {path}")


def test_broken_wal_archiving_fires_wal_archiving_failing_then_resolves(host, prometheus, receiver):
    """With pgBackRest's archive unwritable, archive-push fails: postgres_exporter's pg_archiver
    reports it, WalArchivingFailing reaches the webhook; writable again, the segment goes through."""
    archive = "/var/lib/pgbackrest/archive"
    mode = host.check_output(f"stat -c %a {archive}")
    since = receiver.now()
    host.check_output(f"chmod 0000 {archive}")
    try:
        # WAL written and the segment closed: the archiver tries at once, and fails.
        host.check_output(
            "runuser -u postgres -- psql -X -qAt -c \"SELECT pg_logical_emit_message(false, 'test', 'wal')\""
            " -c 'SELECT pg_switch_wal()'"
        )
        wait_for(
            lambda: prometheus.query('pg_archiver_failing{job="postgresql"} == 1'),
            timeout=120,
            what="pg_archiver_failing in Prometheus",
        )
        fired = wait_for(
            lambda: receiver.alerts("WalArchivingFailing", "firing", since),
            timeout=ALERT_DEADLINE,
            what="WalArchivingFailing at the webhook",
        )
        assert fired[0]["labels"]["severity"] == "critical"
        assert fired[0]["labels"]["job"] == "postgresql"
    finally:
        host.run(f"chmod {mode} {archive}")
    # pgbackrest check switches and waits for the segment: archiving works again.
    host.check_output("runuser -u postgres -- pgbackrest --stanza=procurement check")
    wait_for(
        lambda: receiver.alerts("WalArchivingFailing", "resolved", since),
        timeout=ALERT_DEADLINE * 2,
        what="WalArchivingFailing resolved",
    )
