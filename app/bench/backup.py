"""Backup benchmark: the backup script against a bare pg_dump, on a million order lines.

Starts a throw-away PostgreSQL on loopback, seeds it with the load benchmark's
data at BENCH_ORDERS orders of one line each (default 1,000,000), then, in
the same run and alternating so that both see the same machine:

- a bare ``pg_dump -Fc`` into a file (the baseline);
- the role's backup script (dump, row check, configuration, archive, check);
- a restore of the archive's procurement_db.sql into an empty database with
  the manual's psql line.

Each is run BENCH_ROUNDS times; the fastest run counts. Prints RESULT lines,
with the compressor the script used (pigz, as the backup role installs on
every host; ``make deps`` installs it here) and both outputs' sizes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BENCH_ORDERS", "1000000")

import psycopg
from run import ORDERS, seed

from servers import PG_DB, PG_PASSWORD, PG_USER, PostgresServer

SCRIPT = Path(__file__).resolve().parents[2] / "roles/backup/files/backup_procurement.sh"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
GOAL_RATIO = 1.5
PSQL = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]


def timed(args: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(args, check=True, **kwargs)
    return time.monotonic() - started


def main() -> None:
    if not shutil.which("pigz"):
        sys.exit(
            "bench-backup: pigz is not installed. The backup role installs it on every host and the "
            "script compresses with it; without it the script falls back on gzip and this would time "
            "another compressor. Install it (make deps, or apt-get install pigz)."
        )
    work = Path(tempfile.mkdtemp(prefix="procurement-bench-backup-"))
    with PostgresServer() as pg:
        try:
            run(pg, work)
        finally:
            subprocess.run(["rm", "-rf", str(work)], check=False)


def run(pg: PostgresServer, work: Path) -> None:
    seconds = seed(
        pg, {"admin": "bench-admin-" + "a" * 30, "requester": "bench-requester-" + "r" * 30}
    )
    dsn = pg.url().replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        lines = conn.execute("SELECT count(*) FROM purchase_order_lines").fetchone()[0]
        db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    print(f"seeded {lines} order lines ({db_bytes} bytes) in {seconds:.0f}s", file=sys.stderr)

    backups = work / "backups"
    backups.mkdir()
    passfile = work / "pgpass"
    passfile.write_text(f"127.0.0.1:{pg.port}:*:{PG_USER}:{PG_PASSWORD}\n")
    passfile.chmod(0o600)
    config = work / "backup.conf"
    config.write_text(
        f"BACKUP_USER=\nBACKUP_DIR={backups}\nSTATE_DIR={work / 'state'}\nTEXTFILE_DIR=\n"
        f"DB_HOST=127.0.0.1\nDB_PORT={pg.port}\nDB_NAME={PG_DB}\nDB_USER={PG_USER}\n"
        f"DB_SSLMODE=disable\nPGPASSFILE={passfile}\nCONFIG_PATHS=({config})\n"
    )
    env = {**os.environ, "PROCUREMENT_BACKUP_CONFIG": str(config), "PGPASSFILE": str(passfile)}
    bare = ["pg_dump", "-Fc", "-h", "127.0.0.1", "-p", str(pg.port), "-U", PG_USER, PG_DB]

    baseline, script, restore = [], [], []
    for round_no in range(ROUNDS):
        baseline_file = work / "baseline.dump"
        with open(baseline_file, "wb") as out:
            baseline.append(timed(bare, stdout=out, env=env))
        baseline_bytes = baseline_file.stat().st_size
        baseline_file.unlink()
        for old in backups.glob("procurement_backup_*.tar.gz"):
            old.unlink()
        script.append(timed([str(SCRIPT)], env=env, stdout=subprocess.DEVNULL))
        archive = next(backups.glob("procurement_backup_*.tar.gz"))

        target = f"restore_{round_no}"
        with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{target}" OWNER {PG_USER}')
        extract = work / f"extract_{round_no}"
        extract.mkdir()
        started = time.monotonic()
        subprocess.run(
            ["tar", "-xzf", str(archive), "-C", str(extract), "./procurement_db.sql"], check=True
        )
        with open(extract / "procurement_db.sql", "rb") as dump:
            subprocess.run(
                [*PSQL, "-h", "127.0.0.1", "-p", str(pg.port), "-U", PG_USER, "-d", target],
                stdin=dump,
                stdout=subprocess.DEVNULL,
                check=True,
                env=env,
            )
        restore.append(time.monotonic() - started)
        with psycopg.connect(dsn.rsplit("/", 1)[0] + "/" + target) as conn:
            restored = conn.execute("SELECT count(*) FROM purchase_order_lines").fetchone()[0]
        assert restored == lines, (restored, lines)
        sql_bytes = (extract / "procurement_db.sql").stat().st_size
        archive_bytes = archive.stat().st_size
        pg.drop_database(target)
        subprocess.run(["rm", "-rf", str(extract)], check=True)

    ratio = min(script) / min(baseline)
    print(
        f"RESULT bench=backup order_lines={lines} orders={ORDERS} db_bytes={db_bytes} "
        f"dump_sql_bytes={sql_bytes} archive_bytes={archive_bytes} baseline_bytes={baseline_bytes} "
        f"compressor=pigz rounds={ROUNDS}"
    )
    print(
        f"RESULT bench=backup baseline_pg_dump_fc_s={min(baseline):.2f} backup_script_s={min(script):.2f} "
        f"restore_s={min(restore):.2f} ratio_script_to_baseline={ratio:.2f} "
        f"goal_ratio_max={GOAL_RATIO} goal_met={'yes' if ratio <= GOAL_RATIO else 'no'}"
    )


if __name__ == "__main__":
    main()
