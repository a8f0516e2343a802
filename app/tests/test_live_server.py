"""The service as deployed: gunicorn with several workers and multi-process metrics.

Also runs Schemathesis against the live OpenAPI document.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from sqlalchemy import text

import procurement
import servers
from conftest import TABLES
from servers import stop_gunicorn

pytestmark = pytest.mark.slow


def seed_admin(database):
    with database.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        admin_token = secrets.token_urlsafe(32)
        conn.execute(
            text("INSERT INTO users (name, role, token_hash) VALUES ('root', 'admin', :h)"),
            {"h": hashlib.sha256(admin_token.encode()).hexdigest()},
        )
        conn.execute(text("INSERT INTO suppliers (name, category) VALUES ('Seed', 'seed')"))
        conn.execute(text("INSERT INTO items (sku, name, unit_cost) VALUES ('SEED', 'seed', 1)"))
    return admin_token


def start_gunicorn(workdir, settings, **options):
    """Run the service as production does, small; return (process, base URL).

    ``options`` go to servers.start_gunicorn (name, port, inherit_fd).
    """
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROCUREMENT_")},
        "PROCUREMENT_SECRET_KEY": "live-secret-key-0123456789",
        "PROCUREMENT_LOG_FILE": str(workdir / "procurement.log"),
        "PROCUREMENT_WORKERS": "2",
        "PROCUREMENT_THREADS": "2",
        "PROCUREMENT_DB_POOL_MIN": "2",
        "PROCUREMENT_DB_POOL_MAX": "5",
        "PROCUREMENT_METRICS_CACHE_SECONDS": "0",
        **settings,
    }
    return servers.start_gunicorn(workdir, env, **options)


@pytest.fixture(scope="module")
def live(pg, redis_server, database, tmp_path_factory):
    admin_token = seed_admin(database)
    workdir = tmp_path_factory.mktemp("live")
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir()
    proc, base = start_gunicorn(
        workdir,
        {
            **pg.settings(),
            "PROCUREMENT_REDIS_URL": redis_server.url,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
    )
    # The user whose account and token the fuzzer may change (never the admin driving it).
    throwaway = requests.post(
        base + "/api/v1/users",
        json={"name": "fuzz target", "role": "requester"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert throwaway.status_code == 201, throwaway.text
    yield {
        "base": base,
        "token": admin_token,
        "throwaway_user": throwaway.json()["user"]["id"],
        "metrics_dir": metrics_dir,
        "proc": proc,
        "workdir": workdir,
    }
    stop_gunicorn(proc)


def refused_in_every_worker_at_once(base, admin_token):
    """A user's token, cached by every worker, is refused by all of them right after the user is
    deactivated, and again right after its token is revoked."""
    admin = {"Authorization": f"Bearer {admin_token}", "Connection": "close"}
    created = requests.post(
        base + "/api/v1/users",
        json={"name": f"temp {secrets.token_hex(4)}", "role": "requester"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    user, token = created.json()["user"]["id"], created.json()["token"]
    auth = {"Authorization": f"Bearer {token}", "Connection": "close"}

    def statuses():
        return {requests.get(base + "/api/v1/me", headers=auth).status_code for _ in range(8)}

    assert statuses() == {200}  # in the cache of each worker now
    deactivate = requests.patch(
        f"{base}/api/v1/users/{user}", json={"active": False}, headers=admin
    )
    assert deactivate.status_code == 200
    assert statuses() == {401}
    activate = requests.patch(f"{base}/api/v1/users/{user}", json={"active": True}, headers=admin)
    assert activate.status_code == 200
    assert statuses() == {200}
    assert requests.delete(f"{base}/api/v1/users/{user}/token", headers=admin).status_code == 200
    assert statuses() == {401}


def test_in_process_cache_stays_fresh_across_workers(pg, database, tmp_path):
    """Without Redis each worker caches in memory; a write in one must reach all, and so must a
    user's deactivation and a revoked token."""
    token = seed_admin(database)
    proc, base = start_gunicorn(tmp_path, {**pg.settings(), "PROCUREMENT_REDIS_URL": ""})
    try:
        refused_in_every_worker_at_once(base, token)
        auth = {"Authorization": f"Bearer {token}", "Connection": "close"}
        url = base + "/api/v1/suppliers/1"
        for _ in range(6):  # warm the caches of both workers
            assert requests.get(url, headers=auth).json()["name"] == "Seed"
        for round_no in range(5):
            name = f"Renamed {round_no}"
            assert requests.patch(url, json={"name": name}, headers=auth).status_code == 200
            seen = {requests.get(url, headers=auth).json()["name"] for _ in range(6)}
            assert seen == {name}
    finally:
        stop_gunicorn(proc)


def test_the_log_file_tells_start_workers_and_stop_at_the_default_level(pg, database, tmp_path):
    """Operators tail procurement.log first: a start and a stop leave their lines there at INFO."""
    seed_admin(database)
    proc, _ = start_gunicorn(
        tmp_path, {**pg.settings(), "PROCUREMENT_REDIS_URL": "", "PROCUREMENT_LOG_LEVEL": "INFO"}
    )
    stop_gunicorn(proc)
    lines = [json.loads(line) for line in (tmp_path / "procurement.log").read_text().splitlines()]
    messages = [line["message"] for line in lines if line["logger"] == "procurement.lifecycle"]
    assert messages[0].startswith(f"starting procurement {procurement.__version__} from ")
    assert "2 workers x 2 threads; configuration check: ok" in messages[0]
    assert sum(message.endswith(" booted") for message in messages) == 2
    assert any(
        message.startswith("procurement ") and " ready on 127.0.0.1:" in message
        for message in messages
    )
    assert sum(message.endswith(" exited") for message in messages) == 2
    assert messages[-1] == f"procurement {procurement.__version__} stopped"
    assert all(
        line["level"] == "INFO" for line in lines if line["logger"] == "procurement.lifecycle"
    )


def test_a_deactivated_user_or_revoked_token_is_refused_by_every_worker_with_redis(live):
    refused_in_every_worker_at_once(live["base"], live["token"])


def test_metrics_merge_all_workers(live):
    auth = {"Authorization": f"Bearer {live['token']}"}
    before = (
        _sample(
            requests.get(live["base"] + "/metrics").text,
            "http_requests_total",
            endpoint="health.live",
            status="200",
        )
        or 0
    )
    for _ in range(40):
        # A new connection per call lets the workers take turns.
        assert (
            requests.get(live["base"] + "/health/live", headers={"Connection": "close"}).status_code
            == 200
        )
    requests.get(live["base"] + "/api/v1/orders", headers=auth)
    body = requests.get(live["base"] + "/metrics").text
    assert _sample(body, "http_requests_total", endpoint="health.live", status="200") == before + 40
    assert (
        _sample(
            body,
            "http_request_duration_seconds_count",
            endpoint="health.live",
            method="GET",
            status="200",
        )
        >= 40
    )
    assert _sample(body, "procurement_inventory_turnover") is not None
    assert _sample(body, "procurement_business_metrics_up") == 1
    assert _sample(body, "procurement_db_pool_connections_open") >= 1
    pids = {
        re.search(r"_(\d+)\.db$", p.name).group(1)
        for p in live["metrics_dir"].glob("*.db")
        if re.search(r"_(\d+)\.db$", p.name)
    }
    assert len(pids) >= 2, "expected samples from more than one worker"


def test_gunicorn_access_log_carries_the_request_id(live):
    response = requests.get(live["base"] + "/health/live", headers={"X-Request-ID": "live-check-1"})
    assert response.headers["X-Request-ID"] == "live-check-1"
    time.sleep(0.5)
    assert "rid=live-check-1" in (live["workdir"] / "gunicorn.out").read_text()


def _sample(text_body, name, **labels):
    for line in text_body.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(live["base"] + "/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case, live):
    user_id = (case.path_parameters or {}).get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool) and user_id >= 1:
        # Deactivating or re-keying the admin whose token drives the run would
        # turn every later call into a 401: a valid id becomes a throwaway
        # user's (invalid ids are left for the app to refuse).
        case.path_parameters["user_id"] = live["throwaway_user"]
    case.call_and_validate(
        base_url=live["base"], headers={"Authorization": f"Bearer {live['token']}"}
    )


def test_openapi_document_is_served_and_complete(live):
    doc = requests.get(live["base"] + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    create = doc["paths"]["/api/v1/requests"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert doc["components"]["schemas"][ref]["additionalProperties"] is False
    assert Path(live["workdir"]).exists()
