"""pgBackRest with its repository on the backup host (remote mode): the primary archives over TLS, the
backup host keeps the encrypted repository and runs the backups from the replica, only the database and
backup hosts talk, and the primary's lost database comes back from there, its replica cloned again.
(A restore to a time is proven in the stack scenario: the same tasks, without the TLS link.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from conftest import LB_PORT, PROJECT, Writer, address
from test_cluster import psql
from test_pitr import STANZA, backups_run_from_their_timers, pgbackrest
from test_zero_downtime_deploys import deploy


def info(ops) -> dict:
    return json.loads(pgbackrest(ops, "--output=json", "info", user="pgbackrest"))[0]


def test_the_repository_is_on_the_backup_host_encrypted_and_holds_a_full_backup(nodes):
    ops, db1 = nodes["cluster-ops1"], nodes["cluster-db1"]
    stanza = info(ops)
    assert stanza["status"]["code"] == 0, stanza["status"]
    assert stanza["cipher"] == "aes-256-cbc"
    assert "full" in {backup["type"] for backup in stanza["backup"]}
    repo = ops.file("/var/lib/pgbackrest")
    assert (repo.user, repo.mode) == ("pgbackrest", 0o750)
    # Nothing of the repository on the database host, and no passphrase there either.
    assert not db1.file("/var/lib/pgbackrest/archive").exists
    assert "cipher-pass" not in db1.file("/etc/pgbackrest/pgbackrest.conf").content_string


def test_the_primary_archives_over_tls_into_the_backup_host(nodes):
    db1, ops = nodes["cluster-db1"], nodes["cluster-ops1"]
    assert (
        db1.check_output("runuser -u postgres -- psql -XAtc 'SHOW archive_command'")
        == f"pgbackrest --stanza={STANZA} archive-push %p"
    )
    # check, from either side, switches a segment and waits for it in the repository.
    pgbackrest(db1, "check")
    pgbackrest(ops, "check", user="pgbackrest")
    assert db1.service("pgbackrest-server").is_running and ops.service("pgbackrest-server").is_running


def test_the_tls_link_takes_only_the_bundles_certificates_from_the_other_side(nodes):
    ops, db1 = nodes["cluster-ops1"], nodes["cluster-db1"]
    repo, primary = address(ops), address(db1)
    # The firewall: the repository's port answers the primary only, the primary's the repository host only.
    for name in ("cluster-app1", "cluster-web1"):
        assert nodes[name].run(f"timeout 3 bash -c '</dev/tcp/{repo}/8432'").rc != 0, name
        assert nodes[name].run(f"timeout 3 bash -c '</dev/tcp/{primary}/8432'").rc != 0, name
    # The database hosts reach the repository, not each other.
    assert nodes["cluster-db2"].run(f"timeout 3 bash -c '</dev/tcp/{primary}/8432'").rc != 0
    assert nodes["cluster-db2"].run(f"timeout 3 bash -c '</dev/tcp/{repo}/8432'").rc == 0
    # The repository's server lets in the primary's certificate and no other, even one from the same CA:
    # the backup host's own (CN cluster-ops1) is denied.
    client = (
        f"pgbackrest --config=/dev/null --stanza={STANZA} --repo1-host={repo} --repo1-host-type=tls "
        "--repo1-host-ca-file=/etc/pgbackrest/tls/ca.crt --repo1-host-cert-file=/etc/pgbackrest/tls/host.crt "
        "--repo1-host-key-file=/etc/pgbackrest/tls/host.key --log-level-console=warn info"
    )
    assert "status: ok" in db1.check_output(f"runuser -u postgres -- {client}")
    assert "access denied" in ops.check_output(f"runuser -u pgbackrest -- {client}")
    key = db1.file("/etc/pgbackrest/tls/host.key")
    assert (key.user, key.mode) == ("postgres", 0o600)
    ca_key = ops.file("/etc/pgbackrest/ca/ca.key")
    assert (ca_key.user, ca_key.mode) == ("root", 0o600)
    assert not db1.file("/etc/pgbackrest/ca").exists  # the CA's key stays on its host


def test_the_backup_host_runs_the_backups_from_its_timers(nodes):
    backups_run_from_their_timers(nodes["cluster-ops1"], user="pgbackrest")


def test_the_backups_read_the_replica(nodes):
    """backup-standby: the files come from the replica, only the start and stop go through the primary."""
    ops, db2 = nodes["cluster-ops1"], nodes["cluster-db2"]
    assert db2.service("pgbackrest-server").is_running
    pgbackrest(ops, "--type=incr", "backup", user="pgbackrest")
    log = ops.file(f"/var/log/pgbackrest/{STANZA}-backup.log").content_string
    newest = log[log.rindex("backup command begin") :]
    assert "--backup-standby" in newest
    assert "replay on the standby reached" in newest, newest[-3000:]


def names(node, prefix: str) -> set[str]:
    return set(psql(node, f"select name from suppliers where name like '{prefix}%'").split("\n")) - {""}


def kill_the_host(container: str) -> None:
    """SIGKILL to the container's systemd: every process on the host dies at once, nothing is flushed,
    handed over or archived."""
    subprocess.run(["docker", "kill", container], check=True, capture_output=True)


def boot_with_a_blank_disk(container: str, data: str) -> None:
    """Delete the database files from the killed container's writable layer, as a replacement disk comes
    blank, and start it again: it keeps its fixed address (molecule.yml), and PostgreSQL, finding no data
    directory, does not start."""
    inspect = ["docker", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", container]
    upper = Path(subprocess.run(inspect, check=True, capture_output=True, text=True).stdout.strip())
    assert (upper / data.lstrip("/")).is_dir(), f"{data} is not in {container}'s writable layer"
    shutil.rmtree(upper / data.lstrip("/"))
    subprocess.run(["docker", "start", container], check=True, capture_output=True)
    deadline = time.monotonic() + 90
    while True:
        state = subprocess.run(
            ["docker", "exec", container, "systemctl", "is-system-running"], capture_output=True, text=True
        ).stdout.strip()
        if state in {"running", "degraded"}:
            return
        assert time.monotonic() < deadline, f"{container} did not finish booting: {state}"
        time.sleep(1)


def test_losing_the_primary_host_with_its_disk_loses_at_most_the_unarchived_minute(nodes, secrets, lb):
    """The primary's container is killed under a writer and comes back with a blank disk; restore.yml brings
    the newest state back from the backup host's repository alone. Rows acknowledged before the last WAL
    segment was archived (archive_timeout, 60 s) all come back. How many acknowledged rows the replica had
    received when the primary died is measured too: it streams asynchronously, so some may be missing."""
    db1, db2 = nodes["cluster-db1"], nodes["cluster-db2"]
    data = psql(db1, "show data_directory")
    writer = Writer(LB_PORT, secrets["vault_app_admin_token"], prefix="host loss", limit_seconds=240)
    writer.start()
    time.sleep(75)
    kill_the_host("cluster-db1")
    killed = time.monotonic()
    on_replica = names(db2, writer.prefix)
    time.sleep(3)
    writer.stop()
    boot_with_a_blank_disk("cluster-db1", data)
    assert not db1.file(data).exists
    assert not db1.service("postgresql@15-main").is_running
    assert "Status: active" in db1.check_output("ufw status"), "the firewall did not come back with the host"
    result = deploy(
        str(PROJECT / "playbooks/restore.yml"),
        "-e",
        "restore_confirm=yes",
        "-e",
        "restore_method=pitr",
        "-e",
        "restore_target=latest",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    back = names(db1, writer.prefix)
    acknowledged = [w for w in writer.writes if w.status == 201 and w.done < killed]
    assert len(acknowledged) > 250, f"the writer was acknowledged {len(acknowledged)} times in 75 s"
    lost = [w for w in acknowledged if w.name not in back]
    newest = max((w.done for w in acknowledged if w.name in back), default=0.0)
    # The figures, beside the run's logs (pytest keeps a passing test's output to itself).
    results = PROJECT / ".cache" / "results"
    results.mkdir(parents=True, exist_ok=True)
    on_replica_lost = [w for w in acknowledged if w.name not in on_replica]
    line = (
        f"RESULT host_loss_rpo_s={killed - newest:.1f} lost_acknowledged_rows={len(lost)} "
        f"acknowledged={len(acknowledged)} replica_missing_acknowledged_rows={len(on_replica_lost)}"
    )
    (results / "cluster-host-loss.txt").write_text(line + "\n")
    print(line)
    assert killed - newest <= 75, f"the newest row back was acknowledged {killed - newest:.0f} s before the kill"
    assert not [w for w in lost if w.done < killed - 75], "a row acknowledged over 75 s before the kill is lost"
    # The replica was cloned again: it streams from the restored primary on its new timeline, and new rows
    # written through the load balancer reach it.
    ops = nodes["cluster-ops1"]
    timeline = psql(db1, "select timeline_id from pg_control_checkpoint()")
    assert psql(db2, "select status || ':' || received_tli from pg_stat_wal_receiver") == f"streaming:{timeline}"
    lb.ok("POST", "/suppliers", secrets["vault_app_admin_token"], {"name": f"{writer.prefix} after", "category": "it"})
    deadline = time.monotonic() + 10
    while f"{writer.prefix} after" not in names(db2, writer.prefix):
        assert time.monotonic() < deadline, "a row written after the restore did not reach the replica"
        time.sleep(0.2)
    # pgBackRest's recovery settings are not left for a clone to inherit.
    settings = "select count(*) from pg_file_settings where name like 'recovery_target%' or name = 'restore_command'"
    assert psql(db1, settings) == "0"
    # WAL reaches the repository again, which holds a backup on the new timeline for the next restore.
    pgbackrest(ops, "check", user="pgbackrest")
    assert info(ops)["backup"][-1]["archive"]["start"].startswith(f"{int(timeline):08X}")


def test_the_physical_restore_drill_runs_on_the_primary_over_tls(nodes):
    db1 = nodes["cluster-db1"]
    since = db1.check_output("date +%s")
    result = db1.run("systemctl start pgbackrest-drill.service")
    journal = db1.check_output(f"journalctl -u pgbackrest-drill.service --since @{since} --no-pager -o cat")
    assert result.rc == 0, journal
    assert "verify left to the repository host" in journal
    assert "identical row for row; pg_amcheck found no corruption" in journal
    metrics = db1.file("/var/lib/prometheus/node-exporter/procurement_restore_drill_physical.prom").content_string
    assert 'procurement_restore_drill_last_success{kind="physical"} 1' in metrics
    assert not nodes["cluster-db2"].file("/etc/systemd/system/pgbackrest-drill.timer").exists


def test_the_backup_host_verifies_its_repository_for_the_drill(nodes):
    """pgBackRest verifies only where the repository is: the drill's first step runs on the backup host."""
    ops = nodes["cluster-ops1"]
    assert ops.service("pgbackrest-verify.timer").is_enabled
    since = ops.check_output("date +%s")
    result = ops.run("systemctl start pgbackrest-verify.service")
    journal = ops.check_output(f"journalctl -u pgbackrest-verify.service --since @{since} --no-pager -o cat")
    assert result.rc == 0, journal
    assert "status: ok" in journal
    metrics = ops.file("/var/lib/prometheus/node-exporter/procurement_restore_drill_verify.prom").content_string
    assert 'procurement_restore_drill_last_success{kind="verify"} 1' in metrics
