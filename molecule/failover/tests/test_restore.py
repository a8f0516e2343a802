"""Backups and restores on the Patroni cluster, after the failover tests have moved its leader: pgBackRest
backs up from the standby and archives from whichever member leads, the manual's dump reads a replica
through HAProxy, and restore.yml brings a dump back into the leader, or the whole cluster back to a point
in time (the first member restored and leading, the other cloned from it again). The physical drill on
the leader after a failover is the cluster scenario's (test_pgbackrest_remote.py). The whole site's converge
and dry run after these restores are test_failover.py's last test."""

from __future__ import annotations

import json
import time

from conftest import DB_HOSTS, PROJECT, leader, members, names_on, psql, run_playbook, wait_for_cluster

BACKUP_HOST = "failover-app1"
STANZA = "procurement"


def pgbackrest(node, *args: str) -> str:
    return node.check_output(f"runuser -u pgbackrest -- pgbackrest --stanza={STANZA} {' '.join(args)}")


def backups(node) -> list[dict]:
    return json.loads(pgbackrest(node, "--output=json", "info"))[0]["backup"]


def supplier(lb, token: str, name: str) -> dict:
    return lb.ok("POST", "/suppliers", token, {"name": name, "category": "it"})


def wait_for_rows(nodes, prefix: str, expected: set[str], timeout: float = 60) -> None:
    """Every member holds exactly the expected rows of the prefix (the replica within the timeout)."""
    deadline = time.monotonic() + timeout
    for name in DB_HOSTS:
        while (found := names_on(nodes[name], prefix)) != expected:
            assert time.monotonic() < deadline, f"{name} holds {sorted(found)}, not {sorted(expected)}"
            time.sleep(1)


def test_pgbackrest_backs_up_from_the_standby_and_archives_from_the_leader_wherever_it_is(nodes):
    ops = nodes[BACKUP_HOST]
    now_leading = leader(nodes)
    before = len(backups(ops))
    pgbackrest(ops, "--type=incr", "backup")
    assert len(backups(ops)) == before + 1
    log = ops.file(f"/var/log/pgbackrest/{STANZA}-backup.log").content_string
    newest = log[log.rindex("backup command begin") :]
    assert "--backup-standby" in newest and "replay on the standby reached" in newest, newest[-3000:]
    # check switches a segment on the leader and waits for it in the repository.
    pgbackrest(ops, "check")
    timeline = psql(nodes[now_leading], "select timeline_id from pg_control_checkpoint()")
    newest_wal = json.loads(pgbackrest(ops, "--output=json", "info"))[0]["archive"][0]["max"]
    assert newest_wal.startswith(f"{int(timeline):08X}"), (timeline, newest_wal)


def test_the_manuals_dump_reads_a_replica_and_its_restore_writes_to_the_leader(nodes, secrets, lb):
    ops = nodes[BACKUP_HOST]
    token = secrets["vault_app_admin_token"]
    prefix = f"dump-{time.time_ns()}-"
    supplier(lb, token, f"{prefix}kept")
    # A commit waits for the synchronous standby's flush, not its replay: the row is in the dump once replayed.
    wait_for_rows(nodes, prefix, {f"{prefix}kept"})
    conf = ops.file("/etc/procurement/backup.conf").content_string
    assert "DB_HOST=127.0.0.1" in conf and "DB_PORT=5001" in conf, conf
    assert ops.run("systemctl start procurement-backup.service").rc == 0
    supplier(lb, token, f"{prefix}dropped")
    now_leading = leader(nodes)
    result = run_playbook(str(PROJECT / "playbooks/restore.yml"), "-e", "restore_confirm=yes")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The leader stayed where it was; the replica follows the restored database.
    assert leader(nodes) == now_leading
    wait_for_cluster(nodes, now_leading)
    wait_for_rows(nodes, prefix, {f"{prefix}kept"})
    supplier(lb, token, f"{prefix}after")


def test_point_in_time_restore_brings_the_whole_cluster_back(nodes, secrets, lb):
    """restore.yml with restore_method=pitr on Patroni: every member stops and the cluster leaves the store,
    the first member is restored to the time and leads the cluster formed anew, the other is cloned again."""
    token = secrets["vault_app_admin_token"]
    prefix = f"pitr-{time.time_ns()}-"
    was_leading = leader(nodes)
    supplier(lb, token, f"{prefix}before")
    time.sleep(1.5)
    target = psql(nodes[was_leading], "select now()")
    time.sleep(1.5)
    supplier(lb, token, f"{prefix}after")
    result = run_playbook(
        str(PROJECT / "playbooks/restore.yml"),
        "-e",
        "restore_confirm=yes",
        "-e",
        "restore_method=pitr",
        "-e",
        json.dumps({"restore_target_time": target}),  # a time has a space: JSON, not key=value
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    state = wait_for_cluster(nodes, DB_HOSTS[0])
    assert state[DB_HOSTS[0]]["Role"] == "Leader", (was_leading, state)
    assert state[DB_HOSTS[1]]["Role"] in ("Sync Standby", "Replica"), state
    wait_for_rows(nodes, prefix, {f"{prefix}before"})
    # The cluster takes writes again, and its replica has them; the repository has a backup on the new timeline.
    supplier(lb, token, f"{prefix}again")
    wait_for_rows(nodes, prefix, {f"{prefix}before", f"{prefix}again"})
    ops = nodes[BACKUP_HOST]
    pgbackrest(ops, "check")
    timeline = psql(nodes[DB_HOSTS[0]], "select timeline_id from pg_control_checkpoint()")
    assert backups(ops)[-1]["archive"]["start"].startswith(f"{int(timeline):08X}")
    # pgBackRest's recovery settings left postgresql.auto.conf before Patroni took the server back (Patroni
    # writes recovery settings of its own into its postgresql.conf), and every member sees the same leader.
    assert (
        psql(
            nodes[DB_HOSTS[0]],
            "select count(*) from pg_file_settings where sourcefile like '%/postgresql.auto.conf'"
            " and (name like 'recovery_target%' or name = 'restore_command')",
        )
        == "0"
    )
    assert members(nodes[DB_HOSTS[1]])[DB_HOSTS[0]]["Role"] == "Leader"
