"""Purchase requests and their lines."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from procurement.data_access.core import attach_lines, db, fetch_one, paginate
from procurement.models import (
    PurchaseRequest,
    PurchaseRequestLine,
)

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


def get_request(request_id: int) -> Optional[Dict[str, Any]]:
    row = fetch_one(select(*_REQUEST_COLUMNS).where(PurchaseRequest.id == request_id))
    if row is not None:
        attach_lines([row], _REQUEST_LINE_COLUMNS, PurchaseRequestLine.request_id, "request_id")
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
    result = paginate(stmt, page, per_page)
    attach_lines(
        result["items"], _REQUEST_LINE_COLUMNS, PurchaseRequestLine.request_id, "request_id"
    )
    return result
