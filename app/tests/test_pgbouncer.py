"""The service behind PgBouncer in transaction pooling mode (the cluster's optional pooler)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from conftest import Api, approved_request
from procurement.config_manager import ConfigManager
from procurement.data_access.core import make_engine
from servers import PgBouncerServer

pytestmark = pytest.mark.slow


@pytest.fixture()
def bouncer(pg, database):
    # One server connection: every transaction of every client takes turns on it.
    with PgBouncerServer(pg, pool_size=1) as server:
        yield server


@pytest.mark.parametrize(("prepared", "breaks"), [("true", True), ("false", False)])
def test_server_side_prepares_break_transaction_pooling_unless_switched_off(
    bouncer, prepared, breaks
):
    config = ConfigManager(
        {**bouncer.settings(), "PROCUREMENT_DB_PREPARED_STATEMENTS": prepared}, env_file=None
    )
    engine = make_engine(config.database_url, 2, 2, 5, connect_args=config.db_connect_args)
    errors = []
    try:
        with engine.connect() as first, engine.connect() as second:
            for _ in range(8):
                for conn in (first, second):
                    try:
                        conn.execute(text("SELECT count(*) FROM suppliers")).scalar_one()
                        conn.commit()
                    except DBAPIError as exc:
                        errors.append(str(exc.orig))
                        conn.rollback()
    finally:
        engine.dispose()
    # psycopg names its statements per connection (_pg3_0, ...): the second
    # client's prepare meets the first's on the one server connection.
    assert bool(errors) == breaks, errors
    if breaks:
        assert "prepared statement" in errors[0]


def test_the_service_works_through_pgbouncer_with_prepares_off(
    make_app, bouncer, catalogue, tokens
):
    app = make_app(**bouncer.settings(), PROCUREMENT_DB_PREPARED_STATEMENTS="false")
    api = Api(app.test_client(), tokens)
    ordered = approved_request(api, catalogue)
    assert ordered["status"] == "approved"

    statuses = []

    def reader():
        client = app.test_client()
        for _ in range(15):
            response = client.get(
                "/api/v1/suppliers", headers={"Authorization": f"Bearer {tokens['bob']}"}
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 90
    ready = app.test_client().get("/health/ready")
    assert ready.status_code == 200, ready.get_json()


def test_a_rotated_password_falls_back_to_the_previous_one_through_pgbouncer(make_app, bouncer):
    """PgBouncer words a refused password in its own way; the service still falls back."""
    settings = bouncer.settings()
    app = make_app(
        **{
            **settings,
            "PROCUREMENT_DB_PREPARED_STATEMENTS": "false",
            "PROCUREMENT_DB_PASSWORD": "rotated-not-yet-set",
            "PROCUREMENT_DB_PASSWORD_PREVIOUS": settings["PROCUREMENT_DB_PASSWORD"],
        }
    )
    ready = app.test_client().get("/health/ready")
    assert ready.status_code == 200, ready.get_json()
