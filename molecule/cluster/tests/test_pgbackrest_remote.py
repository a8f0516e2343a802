"""pgBackRest with its repository on the backup host (remote mode) beside a Patroni cluster: the leader
archives over TLS, the backup host keeps the encrypted repository and runs the backups from the replica,
only the database and backup hosts talk; the leader's host lost with its disk fails over with nothing lost
and comes back as a replica. (A restore to a time is proven in the stack scenario, and on a Patroni
cluster in the failover scenario.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from conftest import LB_PORT, PROJECT, Writer, address
from test_cluster import psql
from test_pitr import STANZA, backups_run_from_their_timers, pgbackrest


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
    blank, and start it again: it keeps its fixed address (molecule.yml)."""
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


def members(node) -> dict[str, dict]:
    out = node.check_output("/usr/local/sbin/procurement-patronictl list --format json")
    return {member["Member"]: member for member in json.loads(out)}


def test_losing_the_leaders_host_with_its_disk_loses_no_acknowledged_row(nodes, secrets, lb):
    """The leader's container is killed under a writer (every process at once, nothing flushed or handed
    over) and comes back with a blank disk. Its synchronous standby takes over, with every acknowledged row;
    the returned host, finding no data, is cloned from the new leader by Patroni and follows it; WAL reaches
    the repository from the new leader."""
    db1, db2, ops = nodes["cluster-db1"], nodes["cluster-db2"], nodes["cluster-ops1"]
    assert members(db2)["cluster-db1"]["Role"] == "Leader"
    data = psql(db1, "show data_directory")
    writer = Writer(LB_PORT, secrets["vault_app_admin_token"], prefix="host loss", limit_seconds=240)
    writer.start()
    time.sleep(30)
    kill_the_host("cluster-db1")
    killed = time.monotonic()
    deadline = killed + 120
    while not [w for w in writer.writes if w.sent >= killed and w.status == 201]:
        assert time.monotonic() < deadline, "no write was acknowledged within 120 s of the leader's loss"
        time.sleep(0.5)
    time.sleep(5)
    writer.stop()
    acknowledged = [w for w in writer.writes if w.status == 201]
    on_new_leader = names(db2, writer.prefix)
    lost = [w for w in acknowledged if w.name not in on_new_leader]
    rto = min(w.done for w in acknowledged if w.sent >= killed) - killed
    # The figures, beside the run's logs (pytest keeps a passing test's output to itself).
    results = PROJECT / ".cache" / "results"
    results.mkdir(parents=True, exist_ok=True)
    line = f"RESULT host_loss_rto_s={rto:.1f} lost_acknowledged_rows={len(lost)} acknowledged={len(acknowledged)}"
    (results / "cluster-host-loss.txt").write_text(line + "\n")
    print(line)
    assert members(db2)["cluster-db2"]["Role"] == "Leader"
    assert len(acknowledged) > 100, f"the writer was acknowledged {len(acknowledged)} times"
    assert not lost, f"{len(lost)} acknowledged rows are missing on the new leader"
    # The host comes back with a blank disk: Patroni clones the new leader into it.
    boot_with_a_blank_disk("cluster-db1", data)
    deadline = time.monotonic() + 300
    while (state := members(db2).get("cluster-db1", {})).get("State") not in ("running", "streaming"):
        assert time.monotonic() < deadline, f"cluster-db1 did not rejoin: {members(db2)}"
        time.sleep(3)
    assert state["Role"] in ("Sync Standby", "Replica"), state
    lb.ok("POST", "/suppliers", secrets["vault_app_admin_token"], {"name": f"{writer.prefix} after", "category": "it"})
    deadline = time.monotonic() + 30
    while names(db1, writer.prefix) != on_new_leader | {f"{writer.prefix} after"}:
        assert time.monotonic() < deadline, "the rebuilt member lacks rows of the new leader"
        time.sleep(0.5)
    # WAL reaches the repository from the new leader.
    pgbackrest(ops, "check", user="pgbackrest")


def test_the_physical_restore_drill_runs_on_the_leader_over_tls(nodes):
    """Every member carries the drill; the leader (cluster-db2 since the host loss) runs it, a replica skips."""
    leading = next(name for name, member in members(nodes["cluster-db2"]).items() if member["Role"] == "Leader")
    for name in ("cluster-db1", "cluster-db2"):
        node = nodes[name]
        since = node.check_output("date +%s")
        result = node.run("systemctl start pgbackrest-drill.service")
        journal = node.check_output(f"journalctl -u pgbackrest-drill.service --since @{since} --no-pager -o cat")
        assert result.rc == 0, journal
        outcome = node.file("/var/lib/prometheus/node-exporter/procurement_restore_drill_physical.prom")
        if name == leading:
            assert "verify left to the repository host" in journal
            assert "identical row for row; pg_amcheck found no corruption" in journal
            assert 'procurement_restore_drill_last_success{kind="physical"} 1' in outcome.content_string
        else:
            assert "skipped: this server is a replica" in journal
            assert not outcome.exists


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
