"""The one module that talks to PostgreSQL.

Reads select only the columns a caller shows and return plain dicts (which
also makes them cacheable); writes go through ORM objects fetched with
``FOR UPDATE`` where a state transition depends on what was read.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional, Sequence

from flask import Flask, current_app, g
from sqlalchemy import Engine, and_, case, create_engine, event, func, select, text, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from procurement import project_monitor
from procurement.models import (
    AuditEntry,
    GoodsReceipt,
    Item,
    PurchaseOrder,
    PurchaseOrderLine,
    PurchaseRequest,
    PurchaseRequestLine,
    StockMovement,
    Supplier,
    User,
)


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
            g._procurement_session = current_app.extensions["procurement_db"]["sessions"]()
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
    event.listen(engine, "checkout", lambda *a: project_monitor.DB_POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *a: project_monitor.DB_POOL_IN_USE.dec())
    event.listen(engine, "connect", lambda *a: project_monitor.DB_POOL_OPEN.inc())
    event.listen(engine, "close", lambda *a: project_monitor.DB_POOL_OPEN.dec())
    event.listen(engine, "close_detached", lambda *a: project_monitor.DB_POOL_OPEN.dec())
    return allow_previous_password(engine, previous_password)


db = Database()


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit everything done inside, or nothing."""
    session = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _rows(stmt) -> List[Dict[str, Any]]:
    return [dict(row) for row in db.session.execute(stmt).mappings()]


def _one(stmt) -> Optional[Dict[str, Any]]:
    row = db.session.execute(stmt).mappings().first()
    return dict(row) if row is not None else None


def _page(stmt, page: int, per_page: int) -> Dict[str, Any]:
    rows = _rows(stmt.offset((page - 1) * per_page).limit(per_page + 1))
    return {
        "items": rows[:per_page],
        "meta": {"page": page, "per_page": per_page, "has_next": len(rows) > per_page},
    }


def ping() -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def schema_revision() -> Optional[str]:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


# -- audit ----------------------------------------------------------------
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
    return _page(stmt, page, per_page)


# -- users ----------------------------------------------------------------
_USER_COLUMNS = (User.id, User.name, User.role, User.active, User.created_at)


def user_by_token_hash(token_hash: str) -> Optional[Dict[str, Any]]:
    return _one(select(*_USER_COLUMNS).where(User.token_hash == token_hash))


def user_by_name(name: str) -> Optional[Dict[str, Any]]:
    return _one(select(*_USER_COLUMNS).where(User.name == name))


def add_user(name: str, role: str, token_hash: str) -> User:
    user = User(name=name, role=role, token_hash=token_hash, active=True)
    db.session.add(user)
    db.session.flush()
    return user


def list_users() -> List[Dict[str, Any]]:
    return _rows(select(*_USER_COLUMNS).order_by(User.id))


# -- suppliers ------------------------------------------------------------
_SUPPLIER_COLUMNS = (
    Supplier.id,
    Supplier.name,
    Supplier.category,
    Supplier.contact,
    Supplier.status,
    Supplier.on_time_delivery_rate,
    Supplier.avg_lead_time_days,
    Supplier.completed_orders,
    Supplier.created_at,
    Supplier.updated_at,
)


def get_supplier(supplier_id: int) -> Optional[Dict[str, Any]]:
    return _one(select(*_SUPPLIER_COLUMNS).where(Supplier.id == supplier_id))


def supplier_for_update(supplier_id: int) -> Optional[Supplier]:
    return db.session.get(Supplier, supplier_id, with_for_update=True)


def list_suppliers(
    category: Optional[str],
    status: Optional[str],
    min_on_time_rate: Optional[Decimal],
    page: int,
    per_page: int,
) -> Dict[str, Any]:
    stmt = select(*_SUPPLIER_COLUMNS).order_by(Supplier.id)
    if category:
        stmt = stmt.where(Supplier.category == category)
    if status:
        stmt = stmt.where(Supplier.status == status)
    if min_on_time_rate is not None:
        stmt = stmt.where(Supplier.on_time_delivery_rate >= min_on_time_rate)
    return _page(stmt, page, per_page)


def add(obj: Any) -> Any:
    db.session.add(obj)
    db.session.flush()
    return obj


def refresh_supplier_performance(supplier_id: int) -> None:
    """Recompute the stored performance columns from the supplier's completed orders."""
    completed = and_(
        PurchaseOrder.supplier_id == supplier_id,
        PurchaseOrder.status.in_(("received", "closed")),
        PurchaseOrder.delivered_on.is_not(None),
    )
    on_time = func.avg(
        case((PurchaseOrder.delivered_on <= PurchaseOrder.expected_delivery_date, 1.0), else_=0.0)
    )
    lead = func.avg(PurchaseOrder.delivered_on - func.date(PurchaseOrder.created_at))
    stats = db.session.execute(
        select(func.count(), on_time, lead).select_from(PurchaseOrder).where(completed)
    ).one()
    count, rate, lead_days = stats
    db.session.execute(
        update(Supplier)
        .where(Supplier.id == supplier_id)
        .values(
            completed_orders=count,
            on_time_delivery_rate=None if rate is None else round(Decimal(rate), 4),
            avg_lead_time_days=None if lead_days is None else round(Decimal(lead_days), 2),
            updated_at=func.now(),
        )
    )


def supplier_order_counts(supplier_id: int) -> Dict[str, int]:
    stmt = (
        select(PurchaseOrder.status, func.count())
        .where(PurchaseOrder.supplier_id == supplier_id)
        .group_by(PurchaseOrder.status)
    )
    return dict(db.session.execute(stmt).tuples().all())


# -- items and stock --------------------------------------------------------
_ITEM_COLUMNS = (
    Item.id,
    Item.sku,
    Item.name,
    Item.unit,
    Item.unit_cost,
    Item.quantity_on_hand,
    Item.created_at,
)


def get_item(item_id: int) -> Optional[Dict[str, Any]]:
    return _one(select(*_ITEM_COLUMNS).where(Item.id == item_id))


def list_items(page: int, per_page: int) -> Dict[str, Any]:
    return _page(select(*_ITEM_COLUMNS).order_by(Item.id), page, per_page)


def existing_item_ids(item_ids: Sequence[int]) -> set:
    return set(db.session.scalars(select(Item.id).where(Item.id.in_(set(item_ids)))))


def items_for_update(item_ids: Sequence[int]) -> Dict[int, Item]:
    # Locked in id order so concurrent receipts cannot deadlock.
    stmt = select(Item).where(Item.id.in_(set(item_ids))).order_by(Item.id).with_for_update()
    return {item.id: item for item in db.session.scalars(stmt)}


def inventory_value_at(moment: dt.datetime) -> Decimal:
    signed = case(
        (StockMovement.kind == "receipt", StockMovement.quantity), else_=-StockMovement.quantity
    )
    stmt = select(func.coalesce(func.sum(signed * StockMovement.unit_cost), 0)).where(
        StockMovement.occurred_at < moment
    )
    return Decimal(db.session.execute(stmt).scalar_one())


def cost_of_goods_issued(start: dt.datetime, end: dt.datetime) -> Decimal:
    stmt = select(
        func.coalesce(func.sum(StockMovement.quantity * StockMovement.unit_cost), 0)
    ).where(
        StockMovement.kind == "issue",
        StockMovement.occurred_at >= start,
        StockMovement.occurred_at < end,
    )
    return Decimal(db.session.execute(stmt).scalar_one())


# -- purchase requests ----------------------------------------------------
_REQUEST_COLUMNS = (
    PurchaseRequest.id,
    PurchaseRequest.requester,
    PurchaseRequest.justification,
    PurchaseRequest.status,
    PurchaseRequest.created_at,
    PurchaseRequest.submitted_at,
    PurchaseRequest.decided_at,
    PurchaseRequest.decided_by,
    PurchaseRequest.decision_comment,
)
_REQUEST_LINE_COLUMNS = (
    PurchaseRequestLine.request_id,
    PurchaseRequestLine.line_no,
    PurchaseRequestLine.item_id,
    PurchaseRequestLine.quantity,
    PurchaseRequestLine.estimated_unit_price,
)


def request_for_update(request_id: int) -> Optional[PurchaseRequest]:
    stmt = (
        select(PurchaseRequest)
        .where(PurchaseRequest.id == request_id)
        .options(selectinload(PurchaseRequest.lines))
        .with_for_update(of=PurchaseRequest)
    )
    return db.session.scalars(stmt).first()


def _attach_lines(rows: List[Dict[str, Any]], columns, key_column, key: str) -> None:
    if not rows:
        return
    by_id: Dict[int, List[Dict[str, Any]]] = {row["id"]: [] for row in rows}
    stmt = select(*columns).where(key_column.in_(list(by_id))).order_by(key_column, columns[1])
    for line in _rows(stmt):
        by_id[line.pop(key)].append(line)
    for row in rows:
        row["lines"] = by_id[row["id"]]


def get_request(request_id: int) -> Optional[Dict[str, Any]]:
    row = _one(select(*_REQUEST_COLUMNS).where(PurchaseRequest.id == request_id))
    if row is not None:
        _attach_lines([row], _REQUEST_LINE_COLUMNS, PurchaseRequestLine.request_id, "request_id")
    return row


def list_requests(
    status: Optional[str],
    requester: Optional[str],
    created_from: Optional[dt.datetime],
    created_to: Optional[dt.datetime],
    page: int,
    per_page: int,
) -> Dict[str, Any]:
    stmt = select(*_REQUEST_COLUMNS).order_by(
        PurchaseRequest.created_at.desc(), PurchaseRequest.id.desc()
    )
    if status:
        stmt = stmt.where(PurchaseRequest.status == status)
    if requester:
        stmt = stmt.where(PurchaseRequest.requester == requester)
    if created_from:
        stmt = stmt.where(PurchaseRequest.created_at >= created_from)
    if created_to:
        stmt = stmt.where(PurchaseRequest.created_at < created_to)
    result = _page(stmt, page, per_page)
    _attach_lines(
        result["items"], _REQUEST_LINE_COLUMNS, PurchaseRequestLine.request_id, "request_id"
    )
    return result


# -- purchase orders ------------------------------------------------------
_ORDER_COLUMNS = (
    PurchaseOrder.id,
    PurchaseOrder.request_id,
    PurchaseOrder.supplier_id,
    PurchaseOrder.buyer,
    PurchaseOrder.status,
    PurchaseOrder.expected_delivery_date,
    PurchaseOrder.approved_at,
    PurchaseOrder.created_at,
    PurchaseOrder.received_at,
    PurchaseOrder.delivered_on,
    PurchaseOrder.closed_at,
    PurchaseOrder.cancelled_at,
)
_ORDER_LINE_COLUMNS = (
    PurchaseOrderLine.order_id,
    PurchaseOrderLine.line_no,
    PurchaseOrderLine.id,
    PurchaseOrderLine.item_id,
    PurchaseOrderLine.quantity,
    PurchaseOrderLine.unit_price,
    PurchaseOrderLine.received_quantity,
)


def order_for_update(order_id: int) -> Optional[PurchaseOrder]:
    stmt = (
        select(PurchaseOrder)
        .where(PurchaseOrder.id == order_id)
        .options(selectinload(PurchaseOrder.lines))
        .with_for_update(of=PurchaseOrder)
    )
    return db.session.scalars(stmt).first()


def order_id_for_request(request_id: int) -> Optional[int]:
    return db.session.scalar(select(PurchaseOrder.id).where(PurchaseOrder.request_id == request_id))


def get_order(order_id: int) -> Optional[Dict[str, Any]]:
    row = _one(select(*_ORDER_COLUMNS).where(PurchaseOrder.id == order_id))
    if row is not None:
        _attach_lines([row], _ORDER_LINE_COLUMNS, PurchaseOrderLine.order_id, "order_id")
    return row


def list_orders(
    statuses: Sequence[str],
    supplier_id: Optional[int],
    created_from: Optional[dt.datetime],
    created_to: Optional[dt.datetime],
    page: int,
    per_page: int,
) -> Dict[str, Any]:
    stmt = select(*_ORDER_COLUMNS).order_by(
        PurchaseOrder.created_at.desc(), PurchaseOrder.id.desc()
    )
    if statuses:
        stmt = stmt.where(PurchaseOrder.status.in_(list(statuses)))
    if supplier_id is not None:
        stmt = stmt.where(PurchaseOrder.supplier_id == supplier_id)
    if created_from:
        stmt = stmt.where(PurchaseOrder.created_at >= created_from)
    if created_to:
        stmt = stmt.where(PurchaseOrder.created_at < created_to)
    result = _page(stmt, page, per_page)
    _attach_lines(result["items"], _ORDER_LINE_COLUMNS, PurchaseOrderLine.order_id, "order_id")
    return result


def add_receipt(receipt: GoodsReceipt) -> GoodsReceipt:
    return add(receipt)


# -- business figures -----------------------------------------------------
def orders_by_status() -> Dict[str, int]:
    stmt = select(PurchaseOrder.status, func.count()).group_by(PurchaseOrder.status)
    return dict(db.session.execute(stmt).tuples().all())


def order_processing_stats(since: dt.datetime) -> Dict[str, Any]:
    seconds = func.extract("epoch", PurchaseOrder.received_at - PurchaseOrder.approved_at)
    stmt = select(func.count(), func.avg(seconds), func.max(seconds)).where(
        PurchaseOrder.received_at >= since
    )
    count, avg, longest = db.session.execute(stmt).one()
    return {
        "orders": count,
        "avg_seconds": None if avg is None else float(avg),
        "max_seconds": None if longest is None else float(longest),
    }


def overall_supplier_performance() -> Dict[str, Any]:
    weight = Supplier.completed_orders
    stmt = select(
        func.count(),
        func.sum(Supplier.on_time_delivery_rate * weight) / func.nullif(func.sum(weight), 0),
        func.sum(Supplier.avg_lead_time_days * weight) / func.nullif(func.sum(weight), 0),
        func.count().filter(Supplier.on_time_delivery_rate < 0.9),
    ).where(Supplier.completed_orders > 0)
    rated, rate, lead, below = db.session.execute(stmt).one()
    return {
        "rated_suppliers": rated,
        "on_time_delivery_rate": None if rate is None else float(rate),
        "avg_lead_time_days": None if lead is None else float(lead),
        "suppliers_below_90_percent": below,
    }
