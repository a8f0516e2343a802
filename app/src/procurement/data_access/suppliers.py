"""Suppliers and their stored performance figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Dict, Optional

from sqlalchemy import and_, case, func, select, update

from procurement.data_access.core import db, fetch_one, paginate
from procurement.models import (
    PurchaseOrder,
    Supplier,
)

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
    return fetch_one(select(*_SUPPLIER_COLUMNS).where(Supplier.id == supplier_id))


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
    return paginate(stmt, page, per_page)


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
