"""Alembic, driven from the package so an installed wheel can migrate itself."""

from __future__ import annotations

from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool

from procurement.config_manager import ConfigManager

# An arbitrary constant shared by every process that migrates this schema;
# env.py takes it as a transaction-level advisory lock around the upgrade.
MIGRATION_LOCK_ID = 0x50524F43  # "PROC"


def alembic_config(url: Optional[str] = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "procurement:migrations")
    if url:
        # ConfigParser would treat % in a password as interpolation.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _url(url: Optional[str]) -> str:
    return url or ConfigManager().database_url


def upgrade(revision: str = "head", url: Optional[str] = None) -> None:
    command.upgrade(alembic_config(_url(url)), revision)


def downgrade(revision: str = "-1", url: Optional[str] = None) -> None:
    command.downgrade(alembic_config(_url(url)), revision)


def current(url: Optional[str] = None) -> Optional[str]:
    engine = create_engine(_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
