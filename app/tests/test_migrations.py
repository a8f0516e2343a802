"""Migrations: up, down and up again on a database holding data; one migrator at a time."""

from __future__ import annotations

import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from procurement import migrate
from procurement.migrate import MIGRATION_LOCK_ID
from procurement.models import Base

MANUAL_INDEXES = {
    "purchase_orders": {"idx_orders_status", "idx_orders_supplier", "idx_orders_created"},
    "purchase_requests": {"idx_requests_requester", "idx_requests_status"},
    "suppliers": {"idx_suppliers_category", "idx_suppliers_performance"},
}


@pytest.fixture()
def scratch_db(pg):
    name = f"migrations_{int(time.time() * 1000)}"
    url = pg.create_database(name)
    engine = create_engine(url)
    yield url, engine
    engine.dispose()
    pg.drop_database(name)


def seed(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (name, role, token_hash) VALUES ('u', 'buyer', 'h')"))
        conn.execute(text("INSERT INTO suppliers (name, category) VALUES ('S', 'c')"))
        conn.execute(text("INSERT INTO items (sku, name, unit_cost) VALUES ('I', 'i', 1)"))
        conn.execute(
            text(
                "INSERT INTO purchase_requests (requester, justification, status, decided_at) VALUES ('u', 'j', 'approved', now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO purchase_orders (request_id, supplier_id, buyer, expected_delivery_date, approved_at) VALUES (1, 1, 'u', '2030-01-01', now())"
            )
        )


def test_upgrade_downgrade_upgrade_keeps_surviving_data(scratch_db):
    url, engine = scratch_db
    migrate.upgrade(url=url)
    assert migrate.current(url=url) == "0006"
    seed(engine)
    indexes = {
        table: {ix["name"] for ix in inspect(engine).get_indexes(table)} for table in MANUAL_INDEXES
    }
    for table, expected in MANUAL_INDEXES.items():
        assert expected <= indexes[table]
    perf = [
        ix
        for ix in inspect(engine).get_indexes("suppliers")
        if ix["name"] == "idx_suppliers_performance"
    ]
    assert perf[0]["column_names"] == ["on_time_delivery_rate"]

    migrate.downgrade("0003", url=url)
    assert migrate.current(url=url) == "0003"
    assert "purchase_orders" not in inspect(engine).get_table_names()
    migrate.upgrade(url=url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM suppliers")).scalar() == "S"
        assert conn.execute(text("SELECT status FROM purchase_requests")).scalar() == "approved"
        assert conn.execute(text("SELECT count(*) FROM purchase_orders")).scalar() == 0

    migrate.downgrade("base", url=url)
    assert migrate.current(url=url) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url=url)
    assert migrate.current(url=url) == "0006"


def test_models_match_migrations(database):
    with database.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_concurrent_upgrade_waits_for_the_advisory_lock(scratch_db):
    url, engine = scratch_db
    done = threading.Event()
    errors = []

    def run():
        try:
            migrate.upgrade(url=url)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        done.set()

    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        thread = threading.Thread(target=run)
        thread.start()
        assert not done.wait(1.5), "upgrade ran while another migrator held the lock"
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
        holder.commit()
    assert done.wait(30)
    thread.join()
    assert errors == []
    assert migrate.current(url=url) == "0006"
