"""The engine, the session of each application context, transactions, and the audit trail.

Reads select only the columns a caller shows and return plain dicts (which
also makes them cacheable); writes go through ORM objects fetched with
``FOR UPDATE`` where a state transition depends on what was read."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from procurement import counters
from procurement.models import (
    AuditEntry,
)

# Requests whose session reads in autocommit (Database.session).
SAFE_METHODS = ("GET", "HEAD")


class Database:
    """Flask extension owning the engine and a session per application context."""

    def init_app(self, app: Flask) -> None:
        cfg = app.config["PROCUREMENT"]
        engine = make_engine(
            app.config["SQLALCHEMY_URL"],
            cfg.pool_min,
            cfg.pool_max,
            cfg.pool_timeout,
            cfg.db_password_previous,
            cfg.db_connect_args,
        )
        app.extensions["procurement_db"] = {
            "engine": engine,
            "sessions": sessionmaker(engine, expire_on_commit=False),
            # GET and HEAD requests read in autocommit: no BEGIN before the
            # first statement and no ROLLBACK after the last, two round
            # trips of the three or four a read makes. Each statement sees
            # its own snapshot, as it does in a READ COMMITTED transaction.
            "readers": sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                info={"read_only": True},
            ),
        }
        app.teardown_appcontext(self._close)

    @staticmethod
    def _close(_exc: Optional[BaseException]) -> None:
        session = g.pop("_procurement_session", None)
        if session is not None:
            session.close()

    @property
    def engine(self) -> Engine:
        return current_app.extensions["procurement_db"]["engine"]

    @property
    def session(self) -> Session:
        if "_procurement_session" not in g:
            reading = has_request_context() and request.method in SAFE_METHODS
            kind = "readers" if reading else "sessions"
            g._procurement_session = current_app.extensions["procurement_db"][kind]()
        return g._procurement_session


# How a refused password reads: PostgreSQL's own message, and PgBouncer's
# when it checks a SCRAM proof against its auth file.
PASSWORD_REFUSED = ("password authentication failed", "SASL authentication failed")


def allow_previous_password(engine: Engine, previous: str) -> Engine:
    """Let the engine log in with the previous password when the server refuses the current one.

    A rotation gives the service its new password first and changes the
    role's password afterwards (site.yml's credentials play). In between,
    connections log in with the previous password, so none fails.
    """
    if not previous:
        return engine

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as exc:
            if not any(message in str(exc) for message in PASSWORD_REFUSED):
                raise
            return dialect.connect(*cargs, **{**cparams, "password": previous})

    return engine


def make_engine(
    url: str,
    pool_min: int,
    pool_max: int,
    pool_timeout: int,
    previous_password: str = "",
    connect_args: Optional[Dict[str, Any]] = None,
) -> Engine:
    # pool_pre_ping lets the service recover by itself after a database restart.
    engine = create_engine(
        url,
        connect_args=connect_args or {},
        pool_size=pool_min,
        max_overflow=max(pool_max - pool_min, 0),
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
    event.listen(engine, "checkout", lambda *a: counters.DB_POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *a: counters.DB_POOL_IN_USE.dec())
    event.listen(engine, "connect", lambda *a: counters.DB_POOL_OPEN.inc())
    event.listen(engine, "close", lambda *a: counters.DB_POOL_OPEN.dec())
    event.listen(engine, "close_detached", lambda *a: counters.DB_POOL_OPEN.dec())
    return allow_previous_password(engine, previous_password)


db = Database()


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit everything done inside, or nothing."""
    session = db.session
    if session.info.get("read_only"):
        raise RuntimeError("a GET or HEAD request reads in autocommit and may not write")
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def fetch_all(stmt) -> List[Dict[str, Any]]:
    return [dict(row) for row in db.session.execute(stmt).mappings()]


def fetch_one(stmt) -> Optional[Dict[str, Any]]:
    row = db.session.execute(stmt).mappings().first()
    return dict(row) if row is not None else None


def paginate(stmt, page: int, per_page: int) -> Dict[str, Any]:
    rows = fetch_all(stmt.offset((page - 1) * per_page).limit(per_page + 1))
    return {
        "items": rows[:per_page],
        "meta": {"page": page, "per_page": per_page, "has_next": len(rows) > per_page},
    }


def attach_lines(rows: List[Dict[str, Any]], columns, key_column, key: str) -> None:
    if not rows:
        return
    by_id: Dict[int, List[Dict[str, Any]]] = {row["id"]: [] for row in rows}
    stmt = select(*columns).where(key_column.in_(list(by_id))).order_by(key_column, columns[1])
    for line in fetch_all(stmt):
        by_id[line.pop(key)].append(line)
    for row in rows:
        row["lines"] = by_id[row["id"]]


def ping() -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def schema_revision() -> Optional[str]:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def add(obj: Any) -> Any:
    db.session.add(obj)
    db.session.flush()
    return obj


def add_audit(actor: str, action: str, entity: str, entity_id: int, **details: Any) -> None:
    db.session.add(
        AuditEntry(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            details=_jsonable(details),
        )
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def list_audit(
    entity: Optional[str], entity_id: Optional[int], page: int, per_page: int
) -> Dict[str, Any]:
    stmt = select(AuditEntry.__table__).order_by(AuditEntry.id.desc())
    if entity:
        stmt = stmt.where(AuditEntry.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    return paginate(stmt, page, per_page)
