"""Backups on a deployed host: taken by their systemd units, restored by the playbooks and by the manual's commands.

Every check compares the rows of every table, by count and checksum, before and after.
"""

from __future__ import annotations

import datetime as dt
import shlex
import time

import pytest
from alerting import https_status
from conftest import TARGETS, Writer, playbook, stop_postgresql, wait_ready
from test_zero_downtime_deploys import deploy, release_tree, target_python

BACKUP_DIR = "/backup/procurement"
STATE = "/var/lib/procurement-backup"
TEXTFILE = "/var/lib/prometheus/node-exporter"
SCRIPT = "/opt/scripts/backup_procurement.sh"
# The manual's restore line, run as written (the password comes from the environment).
MANUAL_RESTORE = "psql -h localhost -U procurement_user -d procurement_db < procurement_db.sql"


def psql(host, sql: str, database: str = "procurement_db") -> str:
    return host.check_output(f"runuser -u postgres -- psql -X -tA -d {database} -c {shlex.quote(sql)}")


def fingerprints(host) -> dict[str, tuple[str, str]]:
    """Rows and an md5 of their text, for every table of the app's schema."""
    tables = psql(host, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()
    assert tables, "the database has no tables"
    union = " UNION ALL ".join(
        f"SELECT '{t}', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM public.\"{t}\" x"
        for t in tables
    )
    result = {}
    for line in psql(host, union).splitlines():
        table, count, digest = line.split("|")
        result[table] = (count, digest)
    return result


def archives(host) -> dict[str, str]:
    """sha256 of every backup archive in the backup folder."""
    out = host.run(f"cd {BACKUP_DIR} && sha256sum procurement_backup_*.tar.gz").stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def leftovers(host) -> list[str]:
    return host.run(f"find {BACKUP_DIR} -maxdepth 1 -name '.*' ! -name . -printf '%f\\n'").stdout.split()


def marker(host) -> str:
    return host.file(f"{STATE}/last_success").content_string


def metric(host, name: str) -> float:
    for line in host.file(f"{TEXTFILE}/procurement_backup.prom").content_string.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the textfile")


def run_playbook(host, name: str, *extra: str):
    result = deploy(playbook(name), "--limit", host.backend.get_hostname(), *extra)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


def upgrade_to(host, tree) -> None:
    """The manual's upgrade to the release in ``tree``, which adds migration 0007."""
    # From the tree's source: no artifact folder (the scenario's inventory names the release's).
    run_playbook(host, "upgrade.yml", "-e", f"app_source_dir={tree}", "-e", "app_artifact_dir=")
    assert psql(host, "SELECT version_num FROM alembic_version") == "0007"


def run_backup_unit(host):
    return host.run("systemctl start procurement-backup.service")


def journal_since(host, unit: str, since: float) -> str:
    return host.check_output(f"journalctl -u {unit} --since @{int(since)} --no-pager -o cat")


@pytest.fixture(scope="module")
def seeded(host, secrets):
    """Rows in most tables, written through the API as users would."""
    from conftest import Api

    api = Api(host)
    admin = secrets["vault_app_admin_token"]
    stamp = time.time()
    buyer = api.ok("POST", "/users", admin, {"name": f"backup-buyer-{stamp}", "role": "buyer"})["token"]
    requester = api.ok("POST", "/users", admin, {"name": f"backup-requester-{stamp}", "role": "requester"})["token"]
    supplier = api.ok(
        "POST", "/suppliers", buyer, {"name": f"Backup Co {stamp}", "category": "it", "contact": "b@x.io"}
    )
    item = api.ok("POST", "/items", buyer, {"sku": f"BK-{stamp}", "name": "Tape", "unit_cost": 12.5})
    for quantity in (1, 2, 3):
        api.ok(
            "POST",
            "/requests",
            requester,
            {
                "justification": "backup test",
                "lines": [{"item_id": item["id"], "quantity": quantity, "estimated_unit_price": 12.5}],
            },
        )
    return supplier


def test_jobs_are_scheduled_by_persistent_timers(host):
    for timer in ("procurement-backup.timer", "procurement-restore-drill.timer", "procurement-app-backup.timer"):
        assert host.service(timer).is_enabled, timer
        assert host.service(timer).is_running, timer
        assert host.check_output(f"systemctl show -P Persistent {timer}") == "yes"
    script = host.file(SCRIPT)
    assert script.mode == 0o755 and script.user == "root"
    pgpass = host.file("/etc/procurement/backup.pgpass")
    assert pgpass.mode == 0o600 and pgpass.user == "procurement_backup"
    assert host.file("/etc/procurement/backup.conf").mode == 0o640


def test_backup_unit_then_wipe_and_restore_playbook_brings_every_row_back(host, seeded):
    before = fingerprints(host)
    assert int(before["suppliers"][0]) > 0 and int(before["purchase_requests"][0]) >= 3
    started = time.time()
    assert run_backup_unit(host).rc == 0
    latest = sorted(archives(host))[-1]
    assert host.file(f"{BACKUP_DIR}/{latest}").mode == 0o640
    assert f"wrote {BACKUP_DIR}/{latest}" in journal_since(host, "procurement-backup.service", started)
    assert metric(host, "procurement_backup_last_run_success") == 1
    assert metric(host, "procurement_backup_last_success_timestamp_seconds") >= int(started)
    listing = host.check_output(f"tar -tzf {BACKUP_DIR}/{latest}").split()
    assert "./procurement_db.sql" in listing and "./config/opt/procurement/.env" in listing

    # Wipe: the database is dropped and created empty.
    host.check_output("runuser -u postgres -- dropdb --force procurement_db")
    host.check_output("runuser -u postgres -- createdb -O procurement_user procurement_db")

    refused = deploy(playbook("restore"), "--limit", host.backend.get_hostname())
    assert refused.returncode != 0
    assert "restore_confirm=yes" in " ".join((refused.stdout + refused.stderr).split())
    # An archive is named from the backup folder: a path elsewhere is refused before anything reads it.
    outside = deploy(
        playbook("restore"),
        "--limit",
        host.backend.get_hostname(),
        "-e",
        "restore_confirm=yes restore_archive=../../etc/passwd",
    )
    assert outside.returncode != 0
    said = " ".join((outside.stdout + outside.stderr).split())
    assert f"is not the name of a backup in {BACKUP_DIR}" in said and "../../etc/passwd" in said, said[-2000:]
    assert latest in said

    result = run_playbook(host, "restore.yml", "-e", "restore_confirm=yes")
    # The play ends once the site answers through nginx, not only the app on its own port.
    assert https_status(host, "/health/ready") == 200
    assert f"Restored {latest} at schema" in result.stdout
    assert fingerprints(host) == before
    # The database created anew keeps the postgresql role's privileges: PUBLIC may not connect.
    assert psql(host, "SELECT has_database_privilege('pg_read_server_files', 'procurement_db', 'CONNECT')") == "f"
    assert psql(host, "SELECT has_database_privilege('pg_read_server_files', 'procurement_db', 'TEMPORARY')") == "f"
    wait_ready(host)


def test_manual_backup_script_and_psql_restore_as_written_under_traffic(host, seeded, secrets):
    """The manual's backup script, then its restore as written (stop, psql < dump, start) over the live
    database while clients keep writing through nginx: while the app is stopped nginx answers a JSON 503
    and no write lands; the database is the dump's again, row for row, and writes go on after the start."""
    ran = host.run(SCRIPT)
    assert ran.rc == 0, ran.stderr
    dumped = fingerprints(host)
    latest = sorted(archives(host))[-1]
    work = host.check_output("mktemp -d")
    password = shlex.quote(secrets["vault_db_password"])
    writer = Writer(TARGETS[host.backend.get_hostname()]["https_port"], secrets["vault_app_admin_token"])
    try:
        host.check_output(f"tar -xzf {BACKUP_DIR}/{latest} -C {work}")
        writer.start()
        time.sleep(3)
        host.check_output("systemctl stop procurement.service")
        stopped = time.monotonic()
        time.sleep(3)
        restored = host.run(f"cd {work} && PGPASSWORD={password} {MANUAL_RESTORE}")
        after_restore = fingerprints(host)
        time.sleep(2)
        starting = time.monotonic()
        host.check_output("systemctl start procurement.service")
        wait_ready(host)
        # nginx took the stopped app out of its upstream for nginx_upstream_fail_timeout (10 s) at a time;
        # writes go on once that window ends, which may be after the app is ready.
        deadline = time.monotonic() + 30
        while not any(w.status == 201 and w.sent > starting for w in writer.writes):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(1)
    finally:
        writer.stop()
        host.run(f"rm -rf {work}")
    assert restored.rc == 0, restored.stderr
    assert "ERROR" not in restored.stderr, restored.stderr[-2000:]
    # Nothing wrote while the app was stopped: the database is the dump's.
    assert after_restore == dumped
    while_stopped = [w for w in writer.writes if stopped < w.sent and w.done < starting]
    assert len(while_stopped) >= 10, writer.writes
    assert {(w.status, w.code) for w in while_stopped} == {(503, "service_unavailable")}, while_stopped
    assert any(w.status == 201 and w.done < stopped for w in writer.writes), writer.writes
    after_start = {w.name for w in writer.writes if w.status == 201 and w.sent > starting}
    assert after_start, writer.writes
    # The writes taken before the stop went with the restore; those after the start are all there.
    landed = psql(host, f"SELECT name FROM suppliers WHERE name LIKE '{writer.prefix} %'").splitlines()
    assert set(landed) == {w.name for w in writer.writes if w.status == 201 and w.sent > stopped} == after_start


@pytest.fixture()
def aged_copies(host):
    """Two copies of the newest archive: one just past the 7-day retention, one just inside it."""
    latest = sorted(archives(host))[-1]
    names = {
        "expired": "procurement_backup_20000101_000000.tar.gz",
        "kept": "procurement_backup_20000102_000000.tar.gz",
    }
    ages = {"expired": "7 days ago 1 hour ago", "kept": "6 days ago 23 hours ago"}
    for key, name in names.items():
        host.check_output(
            f"cp -p {BACKUP_DIR}/{latest} {BACKUP_DIR}/{name} && touch -d {shlex.quote(ages[key])} {BACKUP_DIR}/{name}"
        )
    yield names
    host.run(f"rm -f {BACKUP_DIR}/{names['expired']} {BACKUP_DIR}/{names['kept']}")


def fail_unwritable(host):
    host.check_output(f"chmod 0550 {BACKUP_DIR}")
    return lambda: host.check_output(f"chmod 0750 {BACKUP_DIR}")


def fail_database_stopped(host):
    stop_postgresql(host)

    def undo():
        host.check_output("systemctl start postgresql")
        wait_ready(host)

    return undo


def fail_disk_full(host):
    """The backup folder on a small filesystem, its older archives on it, filled to the last block."""
    keep = host.check_output("mktemp -d")
    host.check_output(f"cp -p {BACKUP_DIR}/procurement_backup_*.tar.gz {keep}/")
    size_kb = int(host.check_output(f"du -sk {keep} | cut -f1")) + 512
    owner = host.check_output("id -u procurement_backup") + "," + "gid=" + host.check_output("id -g procurement_backup")
    host.check_output(f"mount -t tmpfs -o size={size_kb}k,mode=0750,uid={owner} backup-full {BACKUP_DIR}")
    host.check_output(f"cp -p {keep}/* {BACKUP_DIR}/")
    host.run(f"dd if=/dev/zero of={BACKUP_DIR}/.filler bs=4k status=none")

    def undo():
        host.run(f"umount {BACKUP_DIR}")
        host.run(f"rm -rf {keep}")

    return undo


@pytest.mark.parametrize("fault", [fail_unwritable, fail_database_stopped, fail_disk_full], ids=lambda f: f.__name__)
def test_failed_backup_keeps_everything_and_says_why(host, seeded, aged_copies, fault):
    before_marker = marker(host)
    before_success = metric(host, "procurement_backup_last_success_timestamp_seconds")
    started = time.time()
    undo = fault(host)
    try:
        existing = archives(host)
        assert aged_copies["expired"] in existing
        ran = run_backup_unit(host)
        after = archives(host)
        left = [name for name in leftovers(host) if name != ".filler"]
    finally:
        undo()
    assert ran.rc != 0
    assert host.service("procurement-backup.service").is_running is False
    assert "backup FAILED while trying to" in journal_since(host, "procurement-backup.service", started)
    assert after == existing, "a failed run changed or deleted a backup"
    assert left == [], f"partial files left behind: {left}"
    assert marker(host) == before_marker
    assert metric(host, "procurement_backup_last_run_success") == 0
    assert metric(host, "procurement_backup_last_success_timestamp_seconds") == before_success
    # The older backups still restore.
    assert host.run(f"gzip -t {BACKUP_DIR}/{sorted(after)[-1]}").rc == 0


def test_successful_backup_applies_the_7_day_retention(host, seeded, aged_copies):
    assert run_backup_unit(host).rc == 0
    names = archives(host)
    assert aged_copies["expired"] not in names
    assert aged_copies["kept"] in names
    today = dt.datetime.now().strftime("%Y%m%d")
    assert any(name.startswith(f"procurement_backup_{today}") for name in names)


def test_restore_drill_passes_and_detects_a_corrupted_archive(host, seeded):
    assert run_backup_unit(host).rc == 0
    assert host.run("systemctl start procurement-restore-drill.service").rc == 0
    drill = host.file(f"{TEXTFILE}/procurement_restore_drill.prom").content_string
    assert "procurement_restore_drill_last_success 1" in drill

    latest = sorted(archives(host))[-1]
    corrupt = f"{BACKUP_DIR}/procurement_backup_99991231_235959.tar.gz"
    size = int(host.check_output(f"stat -c %s {BACKUP_DIR}/{latest}"))
    host.check_output(
        f"head -c {size // 2} {BACKUP_DIR}/{latest} > {corrupt} && chown procurement_backup: {corrupt} && chmod 0640 {corrupt}"
    )
    started = time.time()
    try:
        assert host.run("systemctl start procurement-restore-drill.service").rc != 0
        drill = host.file(f"{TEXTFILE}/procurement_restore_drill.prom").content_string
        assert "procurement_restore_drill_last_success 0" in drill
        assert "restore drill FAILED" in journal_since(host, "procurement-restore-drill.service", started)
    finally:
        host.run(f"rm -f {corrupt}")
    assert host.run("systemctl start procurement-restore-drill.service").rc == 0


# The application folder as files, owners, modes and link targets (Ansible's own working files aside).
APP_TREE = (
    r"cd /opt/procurement && find . -path ./.ansible -prune -o -printf '%p %u %g %m %l\n' | LC_ALL=C sort | sha256sum"
)
# The manual's application restore. Its `pip3 install -r requirements.txt` runs the current release's pip:
# the system pip refuses (PEP 668), and the dependencies live in each release's virtualenv.
MANUAL_APP_RESTORE = (
    "tar -xzf /backup/procurement_app_backup.tar.gz -C /opt/procurement",
    "cd /opt/procurement && current/venv/bin/pip3 install -r requirements.txt",
    "sudo systemctl restart procurement.service",
)
MANUAL_VALIDATE = "from config_manager import ConfigManager; print(ConfigManager().validate())"


def test_manual_application_restore_brings_back_a_lost_application_folder(host):
    """The daily application archive, then the manual's restore after the folder is lost: every file comes back
    with its owner and mode, the pip line puts a lost dependency back offline, and the service starts and serves."""
    assert host.run("systemctl start procurement-app-backup.service").rc == 0
    today = f"procurement_app_{dt.datetime.now().strftime('%Y%m%d')}.tar.gz"
    # Relative paths, so that `tar -xzf ... -C /opt/procurement` puts them back in place.
    assert {"./.env", "./current"} <= set(host.check_output(f"tar -tzf /backup/{today}").split())
    assert host.file("/backup/procurement_app_backup.tar.gz").linked_to == f"/backup/{today}"
    tree = host.check_output(APP_TREE)
    release = host.check_output("readlink /opt/procurement/current")

    host.check_output("find /opt/procurement -mindepth 1 -maxdepth 1 ! -name .ansible -exec rm -rf {} +")
    extract, reinstall, restart = MANUAL_APP_RESTORE
    host.check_output(extract)
    assert host.check_output(APP_TREE) == tree
    # A dependency lost after the restore: the pip line installs it again from the release's wheels.
    host.check_output("/opt/procurement/current/venv/bin/pip uninstall -y itsdangerous")
    pip = host.run(reinstall)
    assert pip.rc == 0, pip.stdout + pip.stderr
    assert "Successfully installed itsdangerous" in pip.stdout, pip.stdout
    host.check_output(restart)
    wait_ready(host)
    assert host.check_output("readlink /opt/procurement/current") == release
    checked = host.run(f"cd /opt/procurement && python3 -c {shlex.quote(MANUAL_VALIDATE)}")
    assert checked.rc == 0 and checked.stdout.strip() == "[]", checked.stdout + checked.stderr


MIGRATION_0007 = '''"""Notes on suppliers (an additive change, for upgrade tests).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supplier_notes",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("supplier_id", sa.BigInteger, sa.ForeignKey("suppliers.id"), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("supplier_notes")
'''


@pytest.fixture(scope="module")
def base_release(host):
    return host.check_output("readlink /opt/procurement/current").rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def next_release(host, base_release, tmp_path_factory):
    """The next release: the same code plus migration 0007, its artifact built once."""
    return release_tree(
        tmp_path_factory.mktemp("upgrade"),
        base_release + ".post7",
        python=target_python(host),
        files={"src/procurement/migrations/versions/0007_supplier_notes.py": MIGRATION_0007},
    )


def test_upgrade_with_a_migration_then_rollback_loses_no_row(host, seeded, base_release, next_release):
    base, tree = base_release, next_release
    before = fingerprints(host)

    upgrade_to(host, tree)
    assert host.check_output("readlink /opt/procurement/current").endswith(base + ".post7")
    assert host.file(f"{STATE}/pre_upgrade").exists
    wait_ready(host)
    upgraded = fingerprints(host)
    assert {t: v for t, v in upgraded.items() if t not in ("alembic_version", "supplier_notes")} == {
        t: v for t, v in before.items() if t != "alembic_version"
    }

    run_playbook(host, "rollback.yml")
    assert host.check_output("readlink /opt/procurement/current").endswith("/" + base)
    assert psql(host, "SELECT version_num FROM alembic_version") == "0006"
    wait_ready(host)
    assert fingerprints(host) == before


def test_each_backup_is_copied_off_the_host_by_a_key_that_can_do_nothing_else(host, peer):
    assert run_backup_unit(host).rc == 0
    latest = sorted(archives(host))[-1]
    me = host.backend.get_hostname()
    copy = peer.file(f"/backup/offsite/{me}/{latest}")
    assert copy.exists, f"{latest} was not copied to {peer.backend.get_hostname()}"
    assert copy.mode == 0o640
    assert peer.check_output(f"sha256sum {copy.path}").split()[0] == archives(host)[latest]
    # The key logs in and runs rrsync only: a command of one's own is refused
    # by rrsync itself, whose message proves the login succeeded (a failed
    # login would print ssh's own error and pass the first two checks too).
    address = peer.interface("eth0").addresses[0]
    shell = host.run(
        f"runuser -u procurement_backup -- ssh -o BatchMode=yes -i {STATE}/.ssh/id_ed25519 "
        f"procurement_backup@{address} id"
    )
    assert shell.rc != 0
    assert "uid=" not in shell.stdout
    assert "SSH_ORIGINAL_COMMAND does not run rsync" in shell.stderr, shell.stderr


def test_rollback_can_restore_the_pre_upgrade_backup_instead(host, seeded, base_release, next_release):
    base, tree = base_release, next_release
    before = fingerprints(host)

    upgrade_to(host, tree)
    psql(host, f"INSERT INTO supplier_notes (supplier_id, note) VALUES ({seeded['id']}, 'written after the upgrade')")

    run_playbook(host, "rollback.yml", "-e", "rollback_restore_db=true")
    assert host.check_output("readlink /opt/procurement/current").endswith("/" + base)
    # The database is the pre-upgrade backup: schema 0006, every earlier row, no note table.
    assert psql(host, "SELECT version_num FROM alembic_version") == "0006"
    wait_ready(host)
    assert fingerprints(host) == before
