"""Alembic, driven from the package so an installed wheel can migrate itself."""

from __future__ import annotations

from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, pool

from procurement.config_manager import ConfigManager
from procurement.data_access.core import allow_previous_password

# An arbitrary constant shared by every process that migrates this schema;
# env.py takes it as a transaction-level advisory lock around the upgrade.
MIGRATION_LOCK_ID = 0x50524F43  # "PROC"


def alembic_config() -> Config:
    """The migration scripts; the connection is always ours (``_with_connection``)."""
    cfg = Config()
    cfg.set_main_option("script_location", "procurement:migrations")
    return cfg


def _engine(url: Optional[str]) -> Engine:
    """An engine for one command, falling back on the previous password as the service does."""
    if url is not None:
        return create_engine(url, poolclass=pool.NullPool)
    config = ConfigManager()
    engine = create_engine(
        config.database_url, poolclass=pool.NullPool, connect_args=config.db_connect_args
    )
    allow_previous_password(engine, config.db_password_previous)
    return engine


def _with_connection(action, revision: str, url: Optional[str]) -> None:
    # Alembic runs on a connection of ours, so that it logs in as the service does.
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            action(cfg, revision)
    finally:
        engine.dispose()


def upgrade(revision: str = "head", url: Optional[str] = None) -> None:
    _with_connection(command.upgrade, revision, url)


def downgrade(revision: str = "-1", url: Optional[str] = None) -> None:
    _with_connection(command.downgrade, revision, url)


def current(url: Optional[str] = None) -> Optional[str]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
