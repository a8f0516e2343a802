"""Fixtures in the style of Flask's tutorial, on a real PostgreSQL and Redis.

One PostgreSQL cluster and one Redis server per test session; every test gets
empty tables and an empty Redis, and an app built from a test configuration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))

from procurement import create_app, migrate
from procurement.services import users as user_service
from servers import PostgresServer, RedisServer

TABLES = (
    "audit_log, goods_receipt_lines, goods_receipts, stock_movements, purchase_order_lines, "
    "purchase_orders, purchase_request_lines, purchase_requests, items, suppliers, users"
)


@pytest.fixture(scope="session")
def pg():
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def database(pg):
    url = pg.create_database()
    migrate.upgrade(url=url)
    engine = create_engine(url, pool_pre_ping=True)  # survives the outage test
    yield engine
    engine.dispose()


@pytest.fixture()
def settings(pg, redis_server, database, tmp_path):
    """The test configuration: what .env would hold on a host."""
    with database.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    redis.Redis.from_url(redis_server.url).flushall()
    return {
        **pg.settings(),
        "PROCUREMENT_REDIS_URL": redis_server.url,
        "PROCUREMENT_SECRET_KEY": "test-secret-key-0123456789",
        "PROCUREMENT_LOG_FILE": str(tmp_path / "procurement.log"),
        "PROCUREMENT_LOG_LEVEL": "INFO",
        "PROCUREMENT_SESSION_COOKIE_SECURE": "false",
        "PROCUREMENT_DB_POOL_MIN": "2",
        "PROCUREMENT_DB_POOL_MAX": "10",
        "PROCUREMENT_DB_CONNECT_TIMEOUT": "2",
        "PROCUREMENT_DB_POOL_TIMEOUT": "5",
        "PROCUREMENT_METRICS_CACHE_SECONDS": "0",
    }


@pytest.fixture()
def make_app(settings):
    apps = []

    def build(**overrides):
        app = create_app({**settings, **overrides})
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["procurement_db"]["engine"].dispose()


@pytest.fixture()
def app(make_app):
    return make_app()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


@pytest.fixture()
def tokens(app):
    """One user per role (plus a second approver and requester); name -> token."""
    result = {}
    with app.app_context():
        for name, role in (
            ("rita", "requester"),
            ("rob", "requester"),
            ("alice", "approver"),
            ("arnold", "approver"),
            ("bob", "buyer"),
            ("ada", "admin"),
        ):
            _user, token = user_service.create_user("test", name, role)
            result[name] = token
    return result


class Api:
    """Thin helper: JSON calls as a named user."""

    def __init__(self, client, tokens):
        self.client = client
        self.tokens = tokens

    def call(self, method, path, user=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if user:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        return self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    def get(self, path, user, **kw):
        return self.call("GET", path, user, **kw)

    def post(self, path, user, json=None, **kw):
        return self.call("POST", path, user, json=json if json is not None else {}, **kw)

    def patch(self, path, user, json=None, **kw):
        return self.call("PATCH", path, user, json=json, **kw)

    def ok(self, method, path, user, json=None, status=(200, 201)):
        response = self.call(method, path, user, json=json)
        assert response.status_code in status, (response.status_code, response.get_json())
        return response.get_json()


@pytest.fixture()
def api(client, tokens):
    return Api(client, tokens)


@pytest.fixture()
def catalogue(api):
    """A supplier and two items to order."""
    supplier = api.ok(
        "POST", "/suppliers", "bob", {"name": "Acme", "category": "office", "contact": "a@b.c"}
    )
    paper = api.ok("POST", "/items", "bob", {"sku": "PAPER-A4", "name": "Paper", "unit_cost": 4.5})
    toner = api.ok("POST", "/items", "bob", {"sku": "TONER-K", "name": "Toner", "unit_cost": 60})
    return {"supplier": supplier, "paper": paper, "toner": toner}


def submitted_request(api, item, requester="rita"):
    """A request for one unit of ``item``, submitted by its requester."""
    body = {
        "justification": "x",
        "submit": True,
        "lines": [{"item_id": item["id"], "quantity": 1, "estimated_unit_price": 1}],
    }
    return api.ok("POST", "/requests", requester, body)


def approved_request(api, catalogue, requester="rita", approver="alice"):
    req = api.ok(
        "POST",
        "/requests",
        requester,
        {
            "justification": "restock",
            "submit": True,
            "lines": [
                {"item_id": catalogue["paper"]["id"], "quantity": 10, "estimated_unit_price": 4.5},
                {"item_id": catalogue["toner"]["id"], "quantity": 2, "estimated_unit_price": 60},
            ],
        },
    )
    return api.ok("POST", f"/requests/{req['id']}/approve", approver, {"comment": "ok"})


@pytest.fixture()
def approved(api, catalogue):
    return approved_request(api, catalogue)


def order_body(catalogue, request, expected_delivery_date="2030-01-01"):
    """The API body that orders an approved ``request`` from the catalogue's supplier."""
    return {
        "request_id": request["id"],
        "supplier_id": catalogue["supplier"]["id"],
        "expected_delivery_date": expected_delivery_date,
    }


def issue_order(api, catalogue, request, expected_delivery_date="2030-01-01"):
    """The buyer's purchase order for an approved request."""
    return api.ok("POST", "/orders", "bob", order_body(catalogue, request, expected_delivery_date))


@pytest.fixture()
def order(api, catalogue, approved):
    """An issued order for the approved request."""
    return issue_order(api, catalogue, approved)


def pytest_collection_modifyitems(config, items):
    # Slow, server-level tests last, so quick failures show first.
    items.sort(key=lambda item: 1 if item.get_closest_marker("slow") else 0)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts extra servers or processes")
    os.environ.setdefault("PROCUREMENT_TESTING", "1")
