"""Throw-away PostgreSQL, Redis and PgBouncer servers on loopback, and the service itself
under gunicorn, for tests and the benchmark.

PostgreSQL refuses to run as root, so when we are root the cluster is
created and run as an unprivileged user (``nobody`` by default) through
``runuser``; as a normal user it simply runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import psycopg
import redis
import requests

PG_USER = "procurement_user"
PG_PASSWORD = "test-password"
PG_DB = "procurement_db"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    workdir: Path,
    env: dict,
    name: str = "gunicorn",
    port: Optional[int] = None,
    inherit_fd: Optional[int] = None,
) -> tuple[subprocess.Popen, str]:
    """The service as production runs it (``procurement.gunicorn_conf``) on a loopback port.

    ``env`` is the whole environment of the process; PROCUREMENT_BIND is set
    here, to ``port`` or a free one. With ``inherit_fd``, the process gets
    that socket as systemd passes a kept one (fd 3, LISTEN_PID, LISTEN_FDS).
    Returns the process and its base URL once /health/ready answers 200;
    raises with the end of its output if it never does.
    """
    port = port or free_port()
    output = workdir / f"{name}.out"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:procurement.gunicorn_conf",
        "procurement.wsgi:app",
    ]
    pass_fds: tuple = ()
    if inherit_fd is not None:
        # bash keeps the PID across exec, so LISTEN_PID names the gunicorn master.
        script = f'exec 3<&{inherit_fd} {inherit_fd}<&-; export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http; exec "$@"'
        command = ["bash", "-c", script, "bash", *command]
        pass_fds = (inherit_fd,)
    with open(output, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env={**env, "PROCUREMENT_BIND": f"127.0.0.1:{port}"},
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(base + "/health/ready", timeout=5).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(output.read_text()[-3000:])
        time.sleep(0.2)


def stop_gunicorn(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def pg_bindir() -> str:
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries found (apt install postgresql)")
    return os.path.dirname(candidates[-1])


class PostgresServer:
    def __init__(self, run_as: str = "nobody") -> None:
        self.bindir = pg_bindir()
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="procurement-pg-"))
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.run_as = run_as if os.geteuid() == 0 else None
        if self.run_as:
            shutil.chown(self.base, user=self.run_as)

    def _cmd(self, args: List[str]) -> List[str]:
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *args]
        return args

    def _run(self, args: List[str]) -> None:
        subprocess.run(self._cmd(args), check=True, capture_output=True, cwd=self.base)

    def init(self) -> None:
        self._run(
            [
                f"{self.bindir}/initdb",
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        # The application role proves its password over TCP, as on a host;
        # the tests' administrative connections (postgres) stay trusted.
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {PG_USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300 -c shared_buffers=128MB"
        )
        self._run(
            [
                f"{self.bindir}/pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.logfile),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self) -> None:
        self._run([f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def admin_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str = PG_DB) -> str:
        """Create the application role (once) and database; return a SQLAlchemy URL."""
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_USER,)
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
            conn.execute(f'CREATE DATABASE "{name}" OWNER {PG_USER}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, name: str = PG_DB) -> str:
        return f"postgresql+psycopg://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{name}"

    def settings(self, name: str = PG_DB) -> dict:
        return {
            "PROCUREMENT_DB_HOST": "127.0.0.1",
            "PROCUREMENT_DB_PORT": str(self.port),
            "PROCUREMENT_DB_NAME": name,
            "PROCUREMENT_DB_USER": PG_USER,
            "PROCUREMENT_DB_PASSWORD": PG_PASSWORD,
            "PROCUREMENT_DB_SSLMODE": "disable",
        }

    def __enter__(self) -> PostgresServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class PgBouncerServer:
    """Debian's PgBouncer in transaction pooling mode in front of a PostgresServer.

    Clients log in with SCRAM against the application role's own verifier
    (read from the server), which PgBouncer then reuses to log in to
    PostgreSQL, as the bundle's pgbouncer role sets it up.
    """

    def __init__(self, pg: PostgresServer, pool_size: int = 2) -> None:
        self.pg = pg
        self.port = free_port()
        self.pool_size = pool_size
        self.base = Path(tempfile.mkdtemp(prefix="procurement-pgbouncer-"))
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(binary):
            raise RuntimeError("no pgbouncer binary found (apt install pgbouncer)")
        with psycopg.connect(self.pg.admin_url(), autocommit=True) as conn:
            (verifier,) = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (PG_USER,)
            ).fetchone()
        (self.base / "userlist.txt").write_text(f'"{PG_USER}" "{verifier}"\n')
        (self.base / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.pg.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.base}\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {self.base / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 200\n"
            f"logfile = {self.base / 'pgbouncer.log'}\n"
        )
        args = [binary, str(self.base / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(self.base, user="nobody")
            for name in ("userlist.txt", "pgbouncer.ini"):
                shutil.chown(self.base / name, user="nobody")
            args[1:1] = ["-u", "nobody"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("pgbouncer did not start") from None
                time.sleep(0.05)

    def settings(self, name: str = PG_DB) -> dict:
        return {**self.pg.settings(name), "PROCUREMENT_DB_PORT": str(self.port)}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> PgBouncerServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
