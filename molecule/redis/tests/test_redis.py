"""What the Redis host must do for the procurement service."""

from __future__ import annotations

import shlex

import pytest


def _password(host) -> str:
    return host.ansible.get_variables()["redis_password"]


def _redis(host, *args: str, password: str | None = None):
    auth = f"REDISCLI_AUTH={shlex.quote(password)} " if password else ""
    return host.run(f"{auth}redis-cli -h 127.0.0.1 -p 6379 --no-auth-warning " + " ".join(map(shlex.quote, args)))


def test_server_is_enabled_and_running(host):
    service = host.service("redis-server")
    assert service.is_enabled
    assert service.is_running


def test_commands_without_auth_are_refused(host):
    result = _redis(host, "SET", "probe", "1")
    assert "NOAUTH" in result.stdout + result.stderr


def test_commands_with_auth_are_accepted(host):
    assert _redis(host, "SET", "probe", "1", password=_password(host)).stdout.strip() == "OK"
    assert _redis(host, "GET", "probe", password=_password(host)).stdout.strip() == "1"
    _redis(host, "DEL", "probe", password=_password(host))


def test_wrong_password_is_refused(host):
    result = _redis(host, "PING", password="not-the-password")
    assert "PONG" not in result.stdout
    assert "WRONGPASS" in result.stdout + result.stderr or "invalid password" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command", ["FLUSHALL", "FLUSHDB", "CONFIG GET maxmemory", "DEBUG SLEEP 0", "KEYS *", "SHUTDOWN"]
)
def test_dangerous_commands_are_unknown(host, command):
    result = _redis(host, *command.split(), password=_password(host))
    assert "unknown command" in (result.stdout + result.stderr).lower()


def test_memory_is_limited_with_lru_eviction(host):
    info = _redis(host, "INFO", "memory", password=_password(host)).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    assert fields["maxmemory_policy"].strip() == "allkeys-lru"
    assert int(fields["maxmemory"]) == 256 * 1024 * 1024


def test_listens_only_on_configured_addresses(host):
    """molecule.yml binds loopback and the host's own address, nothing else."""
    address = host.check_output("ip -4 -o route get 192.0.2.1").split(" src ")[1].split()[0]
    sockets = host.check_output("ss -H -ltn 'sport = :6379'").splitlines()
    listening = {line.split()[3].rsplit(":", 1)[0] for line in sockets}
    assert listening == {"127.0.0.1", address}


def test_config_file_is_private_to_redis(host):
    config = host.file("/etc/redis/redis.conf")
    assert config.user == "redis"
    assert config.group == "redis"
    assert config.mode == 0o640
