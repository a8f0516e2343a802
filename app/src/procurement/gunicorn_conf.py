"""Gunicorn settings, read from the same environment / .env as the service.

Run as ``gunicorn -c python:procurement.gunicorn_conf procurement.wsgi:app``.
"""

from __future__ import annotations

import array
import logging
import os
import shutil
import socket
import sys

from dotenv import dotenv_values

_ENV_FILE = os.path.join(os.getcwd(), ".env")

# Only PROMETHEUS_MULTIPROC_DIR goes into the master's environment, before
# any worker imports prometheus_client (which reads it at import time). The
# rest of .env is read, not exported: workers inherit the master's
# environment, which outlives a reload (HUP), and an exported value would win
# over a changed .env, such as a rotated password, until a full restart.
_multiproc_dir = (
    dotenv_values(_ENV_FILE).get("PROMETHEUS_MULTIPROC_DIR") if os.path.isfile(_ENV_FILE) else None
)
if _multiproc_dir and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiproc_dir

from procurement import __version__, logs  # noqa: E402 - after PROMETHEUS_MULTIPROC_DIR is set
from procurement.config_manager import ConfigManager  # noqa: E402

_cfg = ConfigManager(env_file=_ENV_FILE)
# Start, stop and worker lines for the service's log file, where operators
# look first (the access log goes to the journal).
_lifecycle = logging.getLogger("procurement.lifecycle")

bind = _cfg.bind
workers = _cfg.workers
# Threads let one worker keep several keep-alive connections busy while it
# waits on PostgreSQL; the app is thread-safe (a session per app context).
worker_class = "gthread"
threads = _cfg.threads
timeout = 60
graceful_timeout = 30
keepalive = 5
# Nginx in front accepts request lines up to 8 KB (large_client_header_buffers
# 4 8k); gunicorn's default of 4 KB would answer the longer ones itself, with
# an HTML 414 instead of the app's JSON 400. 8190 is gunicorn's maximum.
limit_request_line = 8190
max_requests = 10000
max_requests_jitter = 1000
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = (
    _cfg.log_level.lower() if _cfg.log_level in ("DEBUG", "INFO", "WARNING", "ERROR") else "info"
)
forwarded_allow_ips = "127.0.0.1,::1"
# gunicorn 25.1 and later serve `gunicornc` on a control socket, by default
# under $HOME/.gunicorn, which the service's sandbox keeps read-only: the
# unit's runtime directory (RuntimeDirectory=, removed at each stop) holds it
# instead. Older gunicorn releases ignore the setting.
_runtime_dir = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
if _runtime_dir:
    control_socket = os.path.join(_runtime_dir, "gunicorn.ctl")
proc_name = "procurement"


def _release() -> str:
    """The release directory this interpreter runs from (its virtualenv's parent)."""
    return os.path.dirname(os.path.realpath(sys.prefix))


# systemd keeps the listening socket for the service (FileDescriptorStoreMax=
# in procurement.service) under this name: a restart hands it to the next
# gunicorn, so connections wait in the kernel's queue instead of being
# refused, while a stop releases it and the port closes until the next start.
_FD_NAME = "http"


def _notify(message: str, fds: list[int] | None = None) -> None:
    """Send ``message`` (and ``fds``) to systemd's notification socket, if run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as channel:
            channel.connect(address)
            channel.sendmsg([message.encode()], ancillary)
    except OSError as exc:
        # The service still runs; only a restart would refuse connections.
        _lifecycle.warning("could not tell systemd %r: %s", message.split("\n")[0], exc)


def _bound_to(fd: int) -> tuple[str, int]:
    probe = socket.socket(fileno=fd)
    try:
        host, port = probe.getsockname()[:2]
    finally:
        probe.detach()
    return host, port


def _wanted() -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def _release_a_stale_socket() -> None:
    """Let go of a kept socket bound elsewhere than ``bind`` (the address or port changed).

    gunicorn would otherwise serve on the old address; without the
    LISTEN_* variables it binds the new one, which when_ready hands to systemd.
    """
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return
    fds = range(3, 3 + int(os.environ.get("LISTEN_FDS", "0")))
    if all(_bound_to(fd) == _wanted() for fd in fds):
        return
    _lifecycle.info("the kept socket does not match bind %s; binding afresh", bind)
    _notify(f"FDSTOREREMOVE=1\nFDNAME={_FD_NAME}")
    for fd in fds:
        os.close(fd)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)


def on_starting(server) -> None:
    """Prepare shared state in the master, before workers are forked."""
    logs.configure(
        _cfg.log_level if _cfg.log_level in logging._nameToLevel else "INFO", _cfg.log_file
    )
    problems = _cfg.validate()
    _lifecycle.info(
        "starting procurement %s from %s, bind %s, %s workers x %s threads; "
        "configuration check: %s",
        __version__,
        _release(),
        bind,
        workers,
        threads,
        "ok" if not problems else f"{len(problems)} problem(s)",
    )
    for problem in problems:
        _lifecycle.error("configuration problem: %s", problem)
    _release_a_stale_socket()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Samples of a previous run would otherwise be added to this run's.
        if os.path.isdir(directory):
            for entry in os.listdir(directory):
                path = os.path.join(directory, entry)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        else:
            os.makedirs(directory, exist_ok=True)

    from procurement import cache

    cache.enable_shared_versions()


def when_ready(server) -> None:
    if not server.systemd:
        # Bound by this gunicorn: systemd keeps a copy from now on. (Sockets
        # that came from systemd are in its store already.)
        _notify(
            f"FDSTORE=1\nFDNAME={_FD_NAME}", [listener.fileno() for listener in server.LISTENERS]
        )
    _lifecycle.info("procurement %s ready on %s", __version__, bind)


def post_worker_init(worker) -> None:
    _lifecycle.info("worker %s booted", worker.pid)


def on_exit(server) -> None:
    _lifecycle.info("procurement %s stopped", __version__)


def child_exit(server, worker) -> None:
    """Note a worker that exited, and drop its live gauges."""
    _lifecycle.info("worker %s exited", worker.pid)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

        GunicornPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
