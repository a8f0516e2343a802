"""Reads after writes are never stale, with Redis and with the in-process cache."""

from __future__ import annotations

import pytest

from conftest import submitted_request
from procurement.cache import MemoryBackend, decode, encode


@pytest.fixture(params=["redis", "memory"])
def cached_api(request, make_app, tokens, redis_server):
    from conftest import Api

    overrides = {} if request.param == "redis" else {"PROCUREMENT_REDIS_URL": ""}
    app = make_app(**overrides)
    assert app.extensions["procurement_cache"].backend.name == request.param
    return Api(app.test_client(), tokens)


def test_supplier_read_after_write_is_fresh(cached_api):
    api = cached_api
    supplier = api.ok("POST", "/suppliers", "bob", {"name": "Old", "category": "c"})
    path = f"/suppliers/{supplier['id']}"
    assert api.ok("GET", path, "bob")["name"] == "Old"
    assert api.ok("GET", path, "bob")["name"] == "Old"  # now served from the cache
    api.ok("PATCH", path, "bob", {"name": "New"})
    assert api.ok("GET", path, "bob")["name"] == "New"
    assert api.ok("GET", "/suppliers", "bob")["items"][0]["name"] == "New"


def test_order_list_and_performance_fresh_after_receipt(cached_api):
    api = cached_api
    supplier = api.ok("POST", "/suppliers", "bob", {"name": "S", "category": "c"})
    item = api.ok("POST", "/items", "bob", {"sku": "I", "name": "i", "unit_cost": 1})
    req = submitted_request(api, item)
    assert api.ok("GET", "/requests?status=submitted", "alice")["items"][0]["id"] == req["id"]
    api.ok("POST", f"/requests/{req['id']}/approve", "alice")
    assert api.ok("GET", "/requests?status=submitted", "alice")["items"] == []

    assert api.ok("GET", "/orders?open=true", "bob")["items"] == []
    perf = api.ok("GET", f"/suppliers/{supplier['id']}/performance", "bob")
    assert perf["completed_orders"] == 0
    order = api.ok(
        "POST",
        "/orders",
        "bob",
        {
            "request_id": req["id"],
            "supplier_id": supplier["id"],
            "expected_delivery_date": "2030-01-01",
        },
    )
    assert [o["id"] for o in api.ok("GET", "/orders?open=true", "bob")["items"]] == [order["id"]]
    import datetime as dt

    api.ok(
        "POST",
        f"/orders/{order['id']}/receipts",
        "bob",
        {"delivery_date": dt.date.today().isoformat(), "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert api.ok("GET", "/orders?open=true", "bob")["items"] == []
    assert api.ok("GET", f"/orders/{order['id']}", "bob")["status"] == "received"
    perf = api.ok("GET", f"/suppliers/{supplier['id']}/performance", "bob")
    assert perf["completed_orders"] == 1
    assert api.ok("GET", "/reports/figures", "bob")["orders_by_status"] == {"received": 1}


def test_hits_and_misses_are_counted(cached_api):
    from procurement.counters import CACHE_REQUESTS

    def value(result):
        return CACHE_REQUESTS.labels("supplier_info", result)._value.get()

    api = cached_api
    supplier = api.ok("POST", "/suppliers", "bob", {"name": "S", "category": "c"})
    hits, misses = value("hit"), value("miss")
    api.ok("GET", f"/suppliers/{supplier['id']}", "bob")
    api.ok("GET", f"/suppliers/{supplier['id']}", "bob")
    assert value("miss") == misses + 1
    assert value("hit") == hits + 1


def test_a_disabled_cache_sends_every_read_to_the_database(make_app, tokens, redis_server):
    """PROCUREMENT_CACHE_ENABLED=false: nothing is served from or stored in the cache."""
    from conftest import Api
    from procurement.counters import CACHE_REQUESTS

    def value(result):
        return CACHE_REQUESTS.labels("supplier_info", result)._value.get()

    app = make_app(PROCUREMENT_CACHE_ENABLED="false")
    api = Api(app.test_client(), tokens)
    supplier = api.ok("POST", "/suppliers", "bob", {"name": "S", "category": "c"})
    before = {result: value(result) for result in ("hit", "miss", "off")}
    for _ in range(3):
        assert api.ok("GET", f"/suppliers/{supplier['id']}", "bob")["name"] == "S"
    assert value("off") == before["off"] + 3
    assert (value("hit"), value("miss")) == (before["hit"], before["miss"])


def test_memory_backend_is_bounded_and_expires():
    backend = MemoryBackend(max_size=3)
    for i in range(5):
        backend.set(f"k{i}", b"v", ttl=60)
    assert len(backend) == 3
    assert backend.get("k0") is None and backend.get("k4") == b"v"
    backend.set("short", b"v", ttl=-1)
    assert backend.get("short") is None


def test_codec_round_trips_row_types():
    import datetime as dt
    from decimal import Decimal

    row = {
        "d": dt.date(2024, 1, 2),
        "t": dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.timezone.utc),
        "n": Decimal("1.50"),
        "x": [1, None],
    }
    assert decode(encode(row)) == row
