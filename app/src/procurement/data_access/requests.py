"""Purchase requests and their lines."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional, Sequence

from psycopg.errors import ForeignKeyViolation
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from procurement.data_access.core import attach_lines, db, fetch_one, paginate, transaction
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


# A new request, its lines and its audit entry in one statement, in the
# request's session and transaction: BEGIN, this, COMMIT, where the ORM took
# ten round trips (BEGIN, the item check, three INSERTs, COMMIT, then BEGIN,
# two SELECTs and ROLLBACK to read the request back). An unknown item fails
# the statement, so nothing of it is written. The rows come back as stored
# (numeric rounding, server defaults), one per line.
_CREATE_REQUEST = text("""
WITH request AS (
    INSERT INTO purchase_requests (requester, justification, status, submitted_at)
    VALUES (:requester, :justification, :status, :submitted_at)
    RETURNING id, requester, justification, status, created_at, submitted_at, decided_at,
              decided_by, decision_comment
), line AS (
    INSERT INTO purchase_request_lines
        (request_id, line_no, item_id, quantity, estimated_unit_price)
    SELECT request.id, given.line_no, given.item_id, given.quantity, given.price
    FROM request,
         unnest(CAST(:line_nos AS integer[]), CAST(:item_ids AS integer[]),
                CAST(:quantities AS numeric[]), CAST(:prices AS numeric[]))
             AS given (line_no, item_id, quantity, price)
    RETURNING line_no, item_id, quantity, estimated_unit_price
), audit AS (
    INSERT INTO audit_log (actor, action, entity, entity_id, details)
    SELECT request.requester, 'create', 'purchase_request', request.id,
           jsonb_build_object('status', request.status)
    FROM request
)
SELECT request.*, line.line_no, line.item_id, line.quantity, line.estimated_unit_price
FROM request CROSS JOIN line
ORDER BY line.line_no
""")
_LINE_KEYS = ("line_no", "item_id", "quantity", "estimated_unit_price")


def create_request(
    requester: str,
    justification: str,
    status: str,
    submitted_at: Optional[dt.datetime],
    lines: Sequence[Dict[str, Any]],
) -> Optional[Dict[str, Any]]:
    """Write a request with its lines (numbered from 1) and its audit entry; None, with nothing
    written, when a line names an item (or the requester a user) that does not exist."""
    params = {
        "requester": requester,
        "justification": justification,
        "status": status,
        "submitted_at": submitted_at,
        "line_nos": list(range(1, len(lines) + 1)),
        "item_ids": [line["item_id"] for line in lines],
        "quantities": [line["quantity"] for line in lines],
        "prices": [line["estimated_unit_price"] for line in lines],
    }
    try:
        with transaction() as session:
            rows = session.execute(_CREATE_REQUEST, params).mappings().all()
    except IntegrityError as exc:
        if isinstance(exc.orig, ForeignKeyViolation):
            return None
        raise
    created = {k: v for k, v in rows[0].items() if k not in _LINE_KEYS}
    created["lines"] = [{k: row[k] for k in _LINE_KEYS} for row in rows]
    return created


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
