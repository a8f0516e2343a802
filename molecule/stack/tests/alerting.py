"""Helpers for test_monitoring.py: Prometheus, Alertmanager's messages and the service, read from inside the host."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any, Callable

import pytest
from conftest import SERVER_NAME

PROMETHEUS = "http://127.0.0.1:9090"
# Where the webhook receiver of prepare.yml writes each message it gets.
RECEIVED = "/var/lib/alert-receiver/alerts.jsonl"


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 2.0, what: str = "condition") -> Any:
    """Call check until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout:.0f}s (last: {last!r})")


class Prometheus:
    """Prometheus's HTTP API, called with curl on the host (it listens on loopback)."""

    def __init__(self, host):
        self.host = host

    def get(self, path: str, **params: str) -> Any:
        args = " ".join(f"--data-urlencode {shlex.quote(f'{k}={v}')}" for k, v in params.items())
        out = self.host.check_output(f"curl -sf -G {args} {PROMETHEUS}{path}")
        body = json.loads(out)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.get("/api/v1/query", query=expr)["result"]

    def alerts(self, name: str, state: str = "firing") -> list:
        return [
            a for a in self.get("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name and a["state"] == state
        ]


class Receiver:
    """What the test webhook receiver (prepare.yml) recorded from Alertmanager."""

    def __init__(self, host):
        self.host = host

    def messages(self) -> list:
        text = self.host.run(f"cat {RECEIVED} 2>/dev/null").stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def alerts(self, name: str, status: str, since: float = 0.0) -> list:
        """Alerts named name with the given status, from messages received after since."""
        return [
            alert
            for message in self.messages()
            if message["received"] >= since
            for alert in message["body"].get("alerts", [])
            if alert["labels"].get("alertname") == name and alert["status"] == status
        ]

    def now(self) -> float:
        return float(self.host.check_output("date +%s.%N"))


def https_status(host, path: str) -> int:
    """GET path through nginx over HTTPS, as a client of the site would."""
    out = host.check_output(
        f"curl -sk -o /dev/null -w '%{{http_code}}' --resolve {SERVER_NAME}:443:127.0.0.1 https://{SERVER_NAME}{path}"
    )
    return int(out)
