"""gunicorn and systemd's file descriptor store: the listening socket outlives a restart, not a stop.

A datagram socket stands in for systemd's notification socket; the tests
pass the kept socket back the way systemd does (fd 3, LISTEN_PID, LISTEN_FDS).
"""

from __future__ import annotations

import array
import os
import socket

import pytest

from servers import stop_gunicorn
from test_live_server import seed_admin, start_gunicorn

pytestmark = pytest.mark.slow


class Notifications:
    """What the service tells "systemd": each message, with the descriptors that came with it."""

    def __init__(self, path):
        self.path = str(path)
        self.channel = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.channel.bind(self.path)
        self.channel.settimeout(0.5)

    def drain(self) -> list[tuple[str, list[int]]]:
        received = []
        while True:
            try:
                data, ancillary, _, _ = self.channel.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
            except TimeoutError:
                return received
            fds = array.array("i")
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            received.append((data.decode(), list(fds)))

    def close(self):
        self.channel.close()


def kept(messages) -> list[int]:
    return [fd for message, fds in messages if "FDSTORE=1" in message.split("\n") for fd in fds]


def port_of(fd: int) -> int:
    probe = socket.socket(fileno=os.dup(fd))
    try:
        return probe.getsockname()[1]
    finally:
        probe.close()


@pytest.fixture()
def service_env(pg, database, tmp_path):
    seed_admin(database)
    notifications = Notifications(tmp_path / "notify")
    env = {**pg.settings(), "PROCUREMENT_REDIS_URL": "", "NOTIFY_SOCKET": notifications.path}
    yield env, notifications
    notifications.close()


def test_a_restart_takes_the_kept_socket_and_its_queue(service_env, tmp_path):
    env, notifications = service_env
    first, base = start_gunicorn(tmp_path, env)
    port = int(base.rsplit(":", 1)[1])
    messages = notifications.drain()
    assert any("READY=1" in message for message, _ in messages), messages
    (store,) = kept(messages)
    assert any("FDNAME=http" in message for message, fds in messages if fds), messages
    assert port_of(store) == port
    stop_gunicorn(first)

    # Stopped, but the kept socket listens: a client's connection waits in
    # its queue (systemd passes it on only to a restart).
    waiting = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        second, _ = start_gunicorn(tmp_path, env, name="second", port=port, inherit_fd=store)
        try:
            waiting.sendall(b"GET /health/live HTTP/1.0\r\nHost: localhost\r\n\r\n")
            answer = waiting.recv(4096).decode()
            assert answer.startswith("HTTP/1.0 200") or answer.startswith("HTTP/1.1 200"), answer
            # The socket came from the store: nothing new to keep.
            assert kept(notifications.drain()) == []
        finally:
            stop_gunicorn(second)
    finally:
        waiting.close()
        os.close(store)


def test_a_kept_socket_for_another_address_is_let_go(service_env, tmp_path):
    env, notifications = service_env
    old = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    old.bind(("127.0.0.1", 0))
    old.listen()
    try:
        proc, base = start_gunicorn(
            tmp_path, {**env, "PROCUREMENT_WORKERS": "1"}, inherit_fd=old.fileno()
        )
        try:
            messages = notifications.drain()
            assert any(
                message.startswith("FDSTOREREMOVE=1") and "FDNAME=http" in message
                for message, _ in messages
            )
            (store,) = kept(messages)
            assert port_of(store) == int(base.rsplit(":", 1)[1]) != old.getsockname()[1]
            os.close(store)
        finally:
            stop_gunicorn(proc)
    finally:
        old.close()
