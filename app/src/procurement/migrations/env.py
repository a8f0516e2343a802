"""Alembic environment.

Run only through ``procurement.migrate``, which hands Alembic a connection
of its own (logged in as the service, falling back on the previous password
as the service does). The whole upgrade runs in one transaction that first
takes a PostgreSQL advisory lock, so two hosts deploying at once migrate one
after the other instead of racing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from procurement.migrate import MIGRATION_LOCK_ID
from procurement.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_ID})
        context.run_migrations()


run_migrations()
