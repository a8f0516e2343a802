"""The physical restore drill (roles/pgbackrest/files/pgbackrest-drill) against a real PostgreSQL and
pgBackRest from Debian's packages: a server archiving into an encrypted repository in a temporary
folder, run as the postgres account as the drill's unit runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

DRILL = Path(__file__).resolve().parents[1] / "roles/pgbackrest/files/pgbackrest-drill"
STANZA = "procurement"
DATABASE = "procurement_db"
PORT = 5499


def bindir() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[4]))
    assert found, "PostgreSQL's server packages are missing (make deps installs them)"
    return str(found[-1].parent)


class Cluster:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.bin = bindir()
        self.config = base / "pgbackrest.conf"
        self.env = {**os.environ, "PGBACKREST_CONFIG": str(self.config), "PGHOST": str(base), "PGPORT": str(PORT)}

    def as_postgres(self, *argv: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            capture_output=True,
            text=True,
            check=check,
            env=env or self.env,
            cwd=self.base,
        )

    def sql(self, statement: str) -> str:
        return self.as_postgres(
            f"{self.bin}/psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", DATABASE, "-c", statement
        ).stdout

    def pgbackrest(self, *args: str) -> str:
        return self.as_postgres("pgbackrest", f"--stanza={STANZA}", *args).stdout

    def drill(self, *extra: str) -> subprocess.CompletedProcess:
        return self.as_postgres(
            "/usr/bin/python3",
            str(DRILL),
            "run",
            STANZA,
            DATABASE,
            self.bin,
            str(self.base / "work"),
            *extra,
            check=False,
        )

    def verify(self) -> subprocess.CompletedProcess:
        return self.as_postgres("/usr/bin/python3", str(DRILL), "verify", STANZA, check=False)

    def start(self) -> None:
        base = self.base
        for sub in ("repo", "log", "spool", "work"):
            (base / sub).mkdir()
        self.config.write_text(
            f"[global]\nrepo1-path={base}/repo\nrepo1-cipher-type=aes-256-cbc\n"
            "repo1-cipher-pass=drill-test-passphrase-0123456789\nrepo1-retention-full=2\n"
            f"log-path={base}/log\nspool-path={base}/spool\nlock-path={base}/spool\nstart-fast=y\n"
            f"[{STANZA}]\npg1-path={base}/data\npg1-socket-path={base}\npg1-port={PORT}\n"
        )
        shutil.chown(base, "postgres")
        for path in base.rglob("*"):
            shutil.chown(path, "postgres")
        self.as_postgres(f"{self.bin}/initdb", "-D", str(base / "data"), "-U", "postgres", "--auth=peer", "--no-sync")
        with open(base / "data/postgresql.conf", "a") as conf:
            conf.write(
                f"port={PORT}\nlisten_addresses=''\nunix_socket_directories='{base}'\narchive_mode=on\n"
                f"archive_command='pgbackrest --config={self.config} --stanza={STANZA} archive-push %p'\n"
            )
        self.as_postgres(f"{self.bin}/pg_ctl", "-D", str(base / "data"), "-l", str(base / "pg.log"), "-w", "start")
        self.as_postgres(f"{self.bin}/createdb", DATABASE)
        self.sql(
            "CREATE TABLE suppliers (id serial PRIMARY KEY, name text NOT NULL, rating numeric);"
            "INSERT INTO suppliers (name, rating) SELECT 'supplier ' || g, g / 7.0 FROM generate_series(1, 20000) g;"
            'CREATE TABLE "Order Lines" (id bigserial PRIMARY KEY, note text);'
            """INSERT INTO "Order Lines" (note) VALUES ('quoted ''name'''), (NULL);"""
        )
        self.pgbackrest("stanza-create")
        self.pgbackrest("--type=full", "backup")

    def stop(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                f"{self.bin}/pg_ctl",
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )


@pytest.fixture
def cluster():
    if os.geteuid() != 0:
        pytest.fail("the drill runs as the postgres account: run the repository tests as root (make test does)")
    # Not under pytest's tmp_path: its folders are root's alone, and postgres must reach this one.
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="pgbackrest-drill-test-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)


def test_the_drill_restores_backup_plus_wal_identical_row_for_row_while_writes_go_on(cluster):
    stop = threading.Event()
    written = []

    def writer() -> None:
        while not stop.is_set():
            cluster.sql(f"INSERT INTO suppliers (name) VALUES ('during the drill {len(written)}')")
            written.append(time.monotonic())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = cluster.drill()
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical row for row; pg_amcheck found no corruption" in result.stdout
    assert "2 tables" in result.stdout
    assert len(written) > 5  # the writer really ran across the drill
    assert list((cluster.base / "work").iterdir()) == [cluster.base / "work/.pgbackrest-drill.lock"]
    # The scratch server (promoted onto timeline 2) never archived into the repository.
    assert not list((cluster.base / "repo/archive").rglob("00000002*"))


def test_rows_that_a_restore_cannot_bring_back_fail_the_drill(cluster):
    # An unlogged table writes no WAL: its rows are gone after any physical restore.
    cluster.sql("CREATE UNLOGGED TABLE scratchpad (id int); INSERT INTO scratchpad SELECT generate_series(1, 3)")
    result = cluster.drill()
    assert result.returncode == 1
    assert "FAILED: the restore differs from the live database" in result.stderr
    assert "table scratchpad: 3 rows live, 0 restored" in result.stderr


def test_a_damaged_repository_fails_the_drill_at_verify(cluster):
    segment = sorted((cluster.base / "repo/archive").rglob("0000000100000000000000*"))[0]
    clean = cluster.verify()
    assert clean.returncode == 0 and "status: ok" in clean.stdout, clean.stdout + clean.stderr
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = cluster.drill()
    assert result.returncode == 1
    assert "FAILED: pgbackrest verify found damage in the repository" in result.stderr
    assert "total valid WAL" in result.stderr
    # verify alone (on a repository host apart from the database) fails the same way;
    # --skip-verify (the drill on that database host) leaves it to that.
    result = cluster.verify()
    assert result.returncode == 1 and "FAILED: pgbackrest verify found damage" in result.stderr
    skipped = cluster.drill("--skip-verify")
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "verify left to the repository host" in skipped.stdout + skipped.stderr, skipped.stderr[-2000:]


def test_a_server_in_recovery_leaves_the_drill_to_the_one_taking_writes(cluster):
    """A replica (here the server restarted as a standby of nothing) skips with 75, restoring nothing."""
    cluster.stop()
    (cluster.base / "data/standby.signal").touch()
    shutil.chown(cluster.base / "data/standby.signal", "postgres")
    cluster.as_postgres(
        f"{cluster.bin}/pg_ctl", "-D", str(cluster.base / "data"), "-l", str(cluster.base / "pg.log"), "-w", "start"
    )
    assert cluster.sql("SELECT pg_is_in_recovery()").strip() == "t"
    result = cluster.drill()
    assert result.returncode == 75, result.stdout + result.stderr
    assert "skipped: this server is a replica" in result.stdout
    assert not list((cluster.base / "work").glob("pgbackrest-drill.*"))


def test_the_outcome_is_written_for_node_exporter_and_keeps_the_last_success(tmp_path):
    state, textfile = tmp_path / "state", tmp_path / "textfile"
    state.mkdir()
    textfile.mkdir()

    def metrics(result: str) -> dict[str, str]:
        subprocess.run(
            ["/usr/bin/python3", str(DRILL), "metrics", str(state), str(textfile)],
            env={**os.environ, "SERVICE_RESULT": result},
            check=True,
        )
        text = (textfile / "procurement_restore_drill_physical.prom").read_text()
        return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))

    passed = metrics("success")
    assert passed['procurement_restore_drill_last_success{kind="physical"}'] == "1"
    succeeded_at = passed['procurement_restore_drill_last_success_timestamp_seconds{kind="physical"}']
    assert int(succeeded_at) > 0
    failed = metrics("exit-code")
    assert failed['procurement_restore_drill_last_success{kind="physical"}'] == "0"
    assert failed['procurement_restore_drill_last_success_timestamp_seconds{kind="physical"}'] == succeeded_at
    assert oct((textfile / "procurement_restore_drill_physical.prom").stat().st_mode & 0o777) == "0o644"
    # A skipped run (a replica) takes this host's outcome away: the leader's drill reports it.
    subprocess.run(
        ["/usr/bin/python3", str(DRILL), "metrics", str(state), str(textfile)],
        env={**os.environ, "SERVICE_RESULT": "success", "EXIT_STATUS": "75"},
        check=True,
    )
    assert not (textfile / "procurement_restore_drill_physical.prom").exists()
