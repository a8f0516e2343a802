"""Point-in-time recovery with pgBackRest on an all-in-one host: WAL archived continuously into an
encrypted repository, scheduled physical backups, and restore.yml back to a time or to the latest WAL."""

from __future__ import annotations

import json
import shlex
import time

from conftest import Api, playbook
from test_backup import psql, run_playbook
from test_zero_downtime_deploys import deploy

STANZA = "procurement"


def pgbackrest(host, *args: str, user: str = "postgres") -> str:
    return host.check_output(f"runuser -u {user} -- pgbackrest --stanza={STANZA} " + " ".join(map(shlex.quote, args)))


def info(host, user: str = "postgres") -> dict:
    return json.loads(pgbackrest(host, "--output=json", "info", user=user))[0]


def supplier_names(host, prefix: str) -> set[str]:
    return set(psql(host, f"SELECT name FROM suppliers WHERE name LIKE '{prefix}%'").split("\n")) - {""}


def test_the_primary_archives_every_segment_within_a_minute(host):
    settings = dict(
        line.split("|", 1)
        for line in psql(
            host,
            "SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_command', 'archive_timeout')",
            "postgres",
        ).splitlines()
    )
    assert settings == {
        "archive_mode": "on",
        "archive_command": f"pgbackrest --stanza={STANZA} archive-push %p",
        "archive_timeout": "60",
    }
    # check closes the current segment and waits until it is in the repository.
    pgbackrest(host, "check")
    archiver = psql(host, "SELECT failed_count = 0 OR last_archived_time > last_failed_time FROM pg_stat_archiver")
    assert archiver == "t"


def test_the_repository_is_encrypted_and_holds_a_full_backup(host):
    stanza = info(host)
    assert stanza["status"]["code"] == 0, stanza["status"]
    assert stanza["cipher"] == "aes-256-cbc"
    assert "full" in {backup["type"] for backup in stanza["backup"]}
    config = host.file("/etc/pgbackrest/pgbackrest.conf")
    assert (config.user, config.group, config.mode) == ("root", "postgres", 0o640)
    assert host.run("runuser -u procurement -- cat /etc/pgbackrest/pgbackrest.conf").rc != 0
    # Encrypted: the backup's manifest in the repository is OpenSSL-format ciphertext, not its text.
    manifest = host.check_output("find /var/lib/pgbackrest/backup -name backup.manifest -path '*F/*' | head -1")
    assert host.check_output(f"head -c 8 {manifest}") == "Salted__"


def backups_run_from_their_timers(host, user: str = "postgres") -> None:
    """Both timers on; a differential from its unit lands in the repository and in pgbackrest.prom."""
    for kind in ("full", "diff"):
        timer = host.service(f"pgbackrest-{kind}.timer")
        assert timer.is_enabled and timer.is_running
    before = len(info(host, user)["backup"])
    host.check_output("systemctl start pgbackrest-diff.service")
    backups = info(host, user)["backup"]
    assert len(backups) == before + 1 and backups[-1]["type"] == "diff"
    metrics = host.file("/var/lib/prometheus/node-exporter/pgbackrest.prom").content_string
    assert f'pgbackrest_backup_last_run_success{{stanza="{STANZA}",type="diff"}} 1' in metrics
    assert (
        f'pgbackrest_backup_last_timestamp_seconds{{stanza="{STANZA}",type="diff"}} {backups[-1]["timestamp"]["stop"]}'
        in metrics
    )


def test_full_and_differential_backups_run_from_their_timers(host):
    backups_run_from_their_timers(host)


def test_point_in_time_restore_keeps_what_came_before_and_drops_what_came_after(host, secrets):
    api = Api(host)
    token = secrets["vault_app_admin_token"]
    stamp = int(time.time())
    before = api.ok("POST", "/suppliers", token, {"name": f"pitr-before-{stamp}", "category": "it"})
    time.sleep(1.5)
    target = psql(host, "SELECT now()", "postgres")
    time.sleep(1.5)
    api.ok("POST", "/suppliers", token, {"name": f"pitr-after-{stamp}", "category": "it"})
    run_playbook(
        host,
        "restore.yml",
        "-e",
        "restore_confirm=yes",
        "-e",
        "restore_method=pitr",
        "-e",
        json.dumps({"restore_target_time": target}),  # a time has a space: JSON, not key=value
    )
    assert supplier_names(host, "pitr-") >= {f"pitr-before-{stamp}"}
    assert f"pitr-after-{stamp}" not in supplier_names(host, "pitr-")
    assert api.ok("GET", f"/suppliers/{before['id']}", token)["name"] == f"pitr-before-{stamp}"
    # pgBackRest's recovery settings are gone from postgresql.auto.conf once the server is promoted.
    assert (
        psql(
            host,
            "SELECT count(*) FROM pg_file_settings WHERE name LIKE 'recovery_target%' OR name = 'restore_command'",
            "postgres",
        )
        == "0"
    )
    # The restored server accepts writes and archives them again, and has a backup on its new timeline
    # (the drill and the next restore start from it).
    api.ok("POST", "/suppliers", token, {"name": f"pitr-again-{stamp}", "category": "it"})
    pgbackrest(host, "check")
    timeline = psql(host, "SELECT timeline_id FROM pg_control_checkpoint()", "postgres")
    assert info(host)["backup"][-1]["archive"]["start"].startswith(f"{int(timeline):08X}")


def test_restore_to_the_latest_wal_loses_no_acknowledged_row(host, secrets):
    """Rows written a moment before the restore, not yet in a closed segment, come back."""
    api = Api(host)
    token = secrets["vault_app_admin_token"]
    stamp = int(time.time())
    names = {f"latest-{stamp}-{n}" for n in range(5)}
    for name in sorted(names):
        api.ok("POST", "/suppliers", token, {"name": name, "category": "it"})
    run_playbook(
        host, "restore.yml", "-e", "restore_confirm=yes", "-e", "restore_method=pitr", "-e", "restore_target=latest"
    )
    assert supplier_names(host, f"latest-{stamp}-") == names


def test_the_physical_restore_drill_restores_and_compares_row_for_row_under_writes(host, secrets):
    """pgbackrest-drill.service: verify, restore to a fresh restore point in a scratch server, compare, amcheck."""
    assert host.service("pgbackrest-drill.timer").is_enabled
    api = Api(host)
    token = secrets["vault_app_admin_token"]
    stamp = int(time.time())
    api.ok("POST", "/suppliers", token, {"name": f"drill-{stamp}", "category": "it"})
    since = host.check_output("date +%s")
    # --no-block, then writes while it runs: the drill locks the tables only for a moment.
    host.check_output("systemctl start --no-block pgbackrest-drill.service")
    for n in range(10):
        api.ok("POST", "/suppliers", token, {"name": f"drill-{stamp}-{n}", "category": "it"})
    deadline = time.monotonic() + 300
    state = "systemctl show -p ActiveState --value pgbackrest-drill.service"
    while host.check_output(state) == "activating":
        assert time.monotonic() < deadline, "the drill ran for more than 5 minutes"
        time.sleep(2)
    journal = host.check_output(f"journalctl -u pgbackrest-drill.service --since @{since} --no-pager -o cat")
    assert host.check_output("systemctl show -p Result --value pgbackrest-drill.service") == "success", journal
    assert "identical row for row; pg_amcheck found no corruption" in journal
    metrics = host.file("/var/lib/prometheus/node-exporter/procurement_restore_drill_physical.prom").content_string
    assert 'procurement_restore_drill_last_success{kind="physical"} 1' in metrics
    assert supplier_names(host, f"drill-{stamp}") >= {f"drill-{stamp}", f"drill-{stamp}-9"}


def test_a_bad_point_in_time_request_is_refused_before_anything_stops(host):
    since = host.check_output("systemctl show -p ActiveEnterTimestampMonotonic --value procurement.service")
    for extra, said in (
        (["-e", "restore_target_time=not-a-time"], "'not-a-time' is not a time PostgreSQL reads"),
        (["-e", json.dumps({"restore_target_time": "2001-01-01 00:00:00+00"})], "is before the oldest backup"),
        ([], "restore_method=pitr needs one target"),
    ):
        result = deploy(
            playbook("restore"),
            "--limit",
            host.backend.get_hostname(),
            "-e",
            "restore_confirm=yes",
            "-e",
            "restore_method=pitr",
            *extra,
        )
        assert result.returncode != 0
        assert said in " ".join((result.stdout + result.stderr).split()), result.stdout[-3000:]
    assert host.check_output("systemctl show -p ActiveEnterTimestampMonotonic --value procurement.service") == since
