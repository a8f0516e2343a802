"""Figures over all orders and suppliers, for /metrics, the API and the dashboard."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict

from sqlalchemy import func, select

from procurement.data_access.core import db
from procurement.models import (
    PurchaseOrder,
    Supplier,
)


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
