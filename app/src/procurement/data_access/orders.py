"""Purchase orders, their lines and goods receipts."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from procurement.data_access.core import add, attach_lines, db, fetch_one, paginate
from procurement.models import (
    GoodsReceipt,
    PurchaseOrder,
    PurchaseOrderLine,
)

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
    row = fetch_one(select(*_ORDER_COLUMNS).where(PurchaseOrder.id == order_id))
    if row is not None:
        attach_lines([row], _ORDER_LINE_COLUMNS, PurchaseOrderLine.order_id, "order_id")
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
    result = paginate(stmt, page, per_page)
    attach_lines(result["items"], _ORDER_LINE_COLUMNS, PurchaseOrderLine.order_id, "order_id")
    return result


def add_receipt(receipt: GoodsReceipt) -> GoodsReceipt:
    return add(receipt)
