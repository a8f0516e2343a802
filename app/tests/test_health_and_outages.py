"""Health endpoints, and behaviour while PostgreSQL or Redis is down."""

from __future__ import annotations

import pytest
from sqlalchemy import text


def test_live_and_ready(client):
    live = client.get("/health/live")
    assert live.status_code == 200 and live.get_json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.get_json()
    body = ready.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["schema"] == {"ok": True, "current": "0006", "expected": "0006"}
    assert body["checks"]["cache"] == {"backend": "redis", "ok": True}


def test_not_ready_when_schema_is_behind(client, database):
    with database.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    try:
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.get_json()["checks"]["schema"]["ok"] is False
    finally:
        with database.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))


@pytest.mark.slow
def test_database_outage_gives_503_then_recovers_without_restart(api, catalogue, pg, client):
    assert api.get("/orders", "bob").status_code == 200
    pg.stop()
    try:
        response = api.post("/suppliers", "bob", {"name": "during outage", "category": "c"})
        assert response.status_code == 503
        body = response.get_json()
        assert body["error"]["code"] == "database_unavailable"
        assert response.headers["Retry-After"] == "5"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["database"]["ok"] is False
        assert client.get("/health/live").status_code == 200
    finally:
        pg.start()
    assert api.get("/orders", "bob").status_code == 200
    assert api.post("/suppliers", "bob", {"name": "after", "category": "c"}).status_code == 201
    assert client.get("/health/ready").status_code == 200


@pytest.mark.slow
def test_redis_outage_degrades_but_keeps_serving(api, catalogue, redis_server, client):
    from procurement.counters import CACHE_DEGRADED

    supplier = catalogue["supplier"]["id"]
    assert api.get(f"/suppliers/{supplier}", "bob").status_code == 200
    redis_server.stop()
    try:
        for _ in range(3):
            response = api.get(f"/suppliers/{supplier}", "bob")
            assert response.status_code == 200
        # Writes still work, and reads see them.
        api.ok("PATCH", f"/suppliers/{supplier}", "bob", {"name": "Renamed"})
        assert api.ok("GET", f"/suppliers/{supplier}", "bob")["name"] == "Renamed"
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.get_json()["status"] == "degraded"
        assert ready.get_json()["checks"]["cache"]["ok"] is False
        assert CACHE_DEGRADED._value.get() == 1
    finally:
        redis_server.start()
    ready = client.get("/health/ready")
    assert ready.get_json()["status"] == "ok"
    # The rename made during the outage is visible through the cache again.
    assert api.ok("GET", f"/suppliers/{supplier}", "bob")["name"] == "Renamed"
    assert CACHE_DEGRADED._value.get() == 0
