"""Point-in-time recovery benchmark: pgBackRest's WAL archive against the nightly dump.

Starts a throw-away PostgreSQL on loopback set as the postgresql and pgbackrest
roles set a host (fsync and synchronous_commit on, archive_mode on,
archive_timeout 60 s, archive_command pushing to an encrypted, compressed
pgBackRest repository), seeds the load benchmark's data at BENCH_ORDERS orders
of one line each (default 1,000,000, as ``make bench-backup``) and takes a
full backup. Then, in one run:

1. **Writer.** The service under gunicorn takes ``POST /api/v1/suppliers`` at
   BENCH_PITR_RATE a second (20) for BENCH_PITR_WRITE_S seconds (130); every
   acknowledged row is recorded with the time it was sent and acknowledged.
   T is the middle of the run.
2. **Host loss.** At the end the server's processes are killed (SIGKILL) and
   its data directory deleted: the host is gone, and only the repository is
   left, as it would be on the backup hosts. The newest state is restored
   from the repository alone into a fresh data directory and started.
   ``lost_acknowledged_rows`` counts acknowledged rows that did not come back;
   ``rpo_s`` is the time from the kill back to the acknowledgement of the
   newest row that did.
3. **Recovery point.** A restore to T: every row acknowledged before T must
   be there and no row sent after T. ``rto_s`` is the time of that restore
   (pgBackRest restore, WAL replay to T, promotion) of the seeded database.
4. **Baseline.** The manual's logical restore (``psql < procurement_db.sql``)
   of the same data into an empty database, timed in the same run.

Prints RESULT lines; the goals (rpo_s <= 60 on one host, rto_s no more than
the logical restore) are printed beside the figures, met or missed.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("BENCH_ORDERS", "1000000")

import psycopg
import requests
from run import ORDERS, seed, start_gunicorn

from servers import (
    PG_DB,
    PG_PASSWORD,
    PG_USER,
    PostgresServer,
    RedisServer,
    free_port,
    stop_gunicorn,
)

STANZA = "bench"
ARCHIVE_TIMEOUT_S = 60  # the postgresql role's postgresql_archive_timeout
RATE = float(os.environ.get("BENCH_PITR_RATE", "20"))
WRITE_S = float(os.environ.get("BENCH_PITR_WRITE_S", "130"))
RPO_GOAL_S = 60
TOKENS = {
    "admin": "bench-admin-token-" + "a" * 30,
    "requester": "bench-requester-token-" + "r" * 30,
}


class ArchivingPostgres(PostgresServer):
    """The test server with the roles' archiving settings and a pgBackRest repository beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.pgbr = self.base / "pgbackrest"
        self.repo = self.pgbr / "repo"
        self.config = self.pgbr / "pgbackrest.conf"

    def init(self) -> None:
        super().init()
        for sub in ("repo", "log", "spool", "lock"):
            (self.pgbr / sub).mkdir(parents=True)
        # As the pgbackrest role writes it (roles/pgbackrest/templates/pgbackrest.conf.j2).
        self.config.write_text(
            "[global]\n"
            f"repo1-path={self.repo}\nrepo1-cipher-type=aes-256-cbc\n"
            "repo1-cipher-pass=bench-pitr-passphrase-0123456789abcdef\n"
            "repo1-retention-full-type=count\nrepo1-retention-full=2\n"
            "compress-type=zst\ncompress-level=3\nprocess-max=2\nstart-fast=y\n"
            f"log-path={self.pgbr / 'log'}\nspool-path={self.pgbr / 'spool'}\nlock-path={self.pgbr / 'lock'}\n"
            f"log-level-console=warn\n[{STANZA}]\npg1-path={self.data}\n"
            f"pg1-port={self.port}\npg1-socket-path={self.base}\npg1-user=postgres\n"
        )
        if self.run_as:
            for path in [self.pgbr, *self.pgbr.rglob("*")]:
                shutil.chown(path, user=self.run_as)

    def options(self, port: int, archive: bool = True) -> str:
        archive_command = f"pgbackrest --config={self.config} --stanza={STANZA} archive-push %p"
        options = (
            f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c shared_buffers=128MB -c fsync=on -c synchronous_commit=on "
        )
        if archive:
            options += f'-c archive_mode=on -c "archive_command={archive_command}" -c archive_timeout={ARCHIVE_TIMEOUT_S}'
        else:
            options += "-c archive_mode=off"
        return options

    def start_at(self, data: Path, port: int, archive: bool) -> None:
        log = data.parent / "postgres.log"
        self._run(
            [
                f"{self.bindir}/pg_ctl",
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                self.options(port, archive),
                "-w",
                "-t",
                "3600",
                "start",
            ]
        )

    def start(self) -> None:
        self.start_at(self.data, self.port, archive=True)

    def pgbackrest(self, *args: str) -> None:
        command = self._cmd(["pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *args])
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.base, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}: {result.stdout}{result.stderr}"
            )

    def lose_the_host(self) -> float:
        """SIGKILL every process of the server, then delete its data directory."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        subprocess.run(["pkill", "-KILL", "-P", str(postmaster)], check=False)
        os.kill(postmaster, signal.SIGKILL)
        killed = time.time()
        shutil.rmtree(self.data)
        return killed

    def restore_into(self, name: str, *args: str) -> tuple[Path, int, float]:
        """Restore from the repository alone into a fresh data directory; start it; wait for promotion."""
        data = self.base / name / "data"
        data.mkdir(parents=True, mode=0o700)
        if self.run_as:
            shutil.chown(data.parent, user=self.run_as)
            shutil.chown(data, user=self.run_as)
        port = free_port()
        started = time.monotonic()
        self.pgbackrest(f"--pg1-path={data}", "--archive-mode=off", *args, "restore")
        self.start_at(data, port, archive=False)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        while True:
            with psycopg.connect(url, autocommit=True) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    break
            time.sleep(0.2)
        return data, port, time.monotonic() - started

    def stop_at(self, data: Path) -> None:
        self._run([f"{self.bindir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            super().stop()


class Writer(threading.Thread):
    """Bounded-rate writes through the API; every acknowledged row with its send and ack times."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.stopping = threading.Event()
        self.acked: dict[str, tuple[float, float]] = {}
        self.sent: dict[str, float] = {}
        self.failed = 0

    def run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKENS['admin']}"
        n = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            name = f"pitr-{n:06d}"
            n += 1
            sent = time.time()
            self.sent[name] = sent
            try:
                response = session.post(
                    self.base + "/api/v1/suppliers",
                    json={"name": name, "category": "bench"},
                    timeout=5,
                )
                if response.status_code == 201:
                    self.acked[name] = (sent, time.time())
                else:
                    self.failed += 1
            except requests.RequestException:
                self.failed += 1
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))


def names_at(port: int) -> set[str]:
    url = f"postgresql://postgres@127.0.0.1:{port}/{PG_DB}"
    with psycopg.connect(url) as conn:
        return {
            row[0] for row in conn.execute("SELECT name FROM suppliers WHERE name LIKE 'pitr-%'")
        }


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    if not shutil.which("pgbackrest"):
        sys.exit(
            "bench-pitr: pgBackRest is not installed here (make deps installs Debian's package)."
        )
    work = Path(tempfile.mkdtemp(prefix="procurement-bench-pitr-"))
    with ArchivingPostgres() as pg, RedisServer() as redis_server:
        try:
            run(pg, redis_server, work)
        finally:
            for sub in ("latest", "pitr"):
                if (pg.base / sub / "data/postmaster.pid").exists():
                    pg.stop_at(pg.base / sub / "data")
            shutil.rmtree(work, ignore_errors=True)


def run(pg: ArchivingPostgres, redis_server: RedisServer, work: Path) -> None:
    pg.pgbackrest("stanza-create")
    seconds = seed(pg, TOKENS)
    with psycopg.connect(pg.admin_url(PG_DB)) as conn:
        lines = conn.execute("SELECT count(*) FROM purchase_order_lines").fetchone()[0]
        db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    print(
        f"seeded {lines} order lines ({db_bytes} bytes) in {seconds:.0f}s, archiving as it went",
        file=sys.stderr,
    )
    started = time.monotonic()
    pg.pgbackrest("--type=full", "backup")
    backup_s = time.monotonic() - started

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROCUREMENT_")},
        **pg.settings(),
        "PROCUREMENT_REDIS_URL": redis_server.url,
        "PROCUREMENT_SECRET_KEY": "bench-secret-key-0123456789abcdef",
    }
    server, base = start_gunicorn(work, "pitr", env)
    writer = Writer(base)
    try:
        writer.start()
        time.sleep(WRITE_S / 2)
        target = time.time()
        time.sleep(WRITE_S / 2)
        killed = pg.lose_the_host()
        time.sleep(2)  # the writer meets the dead server
        writer.stopping.set()
        writer.join(10)
    finally:
        stop_gunicorn(server)
    print(
        f"writer: {len(writer.acked)} rows acknowledged, {writer.failed} failed (after the kill)",
        file=sys.stderr,
    )

    # Host loss: the newest state from the repository alone.
    data, port, latest_s = pg.restore_into("latest")
    recovered = names_at(port)
    pg.stop_at(data)
    lost = sorted(set(writer.acked) - recovered)
    newest_ack = max((writer.acked[n][1] for n in recovered if n in writer.acked), default=0.0)
    rpo_s = killed - newest_ack

    # Recovery point: back to T.
    target_text = datetime.datetime.fromtimestamp(target, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S.%f+00"
    )
    data, port, rto_s = pg.restore_into(
        "pitr", "--type=time", f"--target={target_text}", "--target-action=promote"
    )
    at_target = names_at(port)
    missing_before = sorted(
        n for n, (_, ack) in writer.acked.items() if ack < target and n not in at_target
    )
    present_after = sorted(n for n in at_target if writer.sent[n] > target)

    # Baseline: the manual's logical restore of the same data into an empty database.
    dump = work / "procurement_db.sql"
    with open(dump, "wb") as out:
        subprocess.run(
            ["pg_dump", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", PG_DB],
            stdout=out,
            check=True,
        )
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE logical_restore OWNER {PG_USER}")
    started = time.monotonic()
    with open(dump, "rb") as sql:
        subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                PG_USER,
                "-d",
                "logical_restore",
            ],
            stdin=sql,
            stdout=subprocess.DEVNULL,
            check=True,
            env={**os.environ, "PGPASSWORD": PG_PASSWORD},
        )
    logical_s = time.monotonic() - started
    pg.stop_at(data)
    repo_bytes = tree_bytes(pg.repo)

    rpo_met = rpo_s <= RPO_GOAL_S
    rto_met = rto_s <= logical_s
    window_ok = not missing_before and not present_after
    print(
        f"RESULT bench=pitr order_lines={lines} orders={ORDERS} db_bytes={db_bytes} repo_bytes={repo_bytes} "
        f"archive_timeout_s={ARCHIVE_TIMEOUT_S} write_rate={RATE:g} write_s={WRITE_S:g} "
        f"acknowledged_rows={len(writer.acked)} full_backup_s={backup_s:.1f}"
    )
    print(
        f"RESULT bench=pitr case=host_loss rpo_s={rpo_s:.1f} lost_acknowledged_rows={len(lost)} "
        f"restore_latest_s={latest_s:.1f} goal_rpo_s_max={RPO_GOAL_S} goal_met={'yes' if rpo_met else 'no'}"
    )
    print(
        f"RESULT bench=pitr case=restore_to_time rto_s={rto_s:.1f} baseline_logical_restore_s={logical_s:.1f} "
        f"acknowledged_before_target_missing={len(missing_before)} sent_after_target_present={len(present_after)} "
        f"goal_rto_s_max=baseline goal_met={'yes' if rto_met and window_ok else 'no'}"
    )
    if not window_ok:
        sys.exit(
            f"bench-pitr: the restore to T is wrong: missing {missing_before[:5]}, present {present_after[:5]}"
        )


if __name__ == "__main__":
    main()
