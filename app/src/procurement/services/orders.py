"""Purchase orders: issue from an approved request, receive goods, close or cancel."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Sequence

from sqlalchemy.exc import IntegrityError

from procurement import counters
from procurement.cache import cache
from procurement.data_access import core as store
from procurement.data_access import items as items_data
from procurement.data_access import orders as orders_data
from procurement.data_access import requests as requests_data
from procurement.data_access import suppliers as suppliers_data
from procurement.errors import conflict
from procurement.models import (
    OPEN_ORDER_STATUSES,
    GoodsReceipt,
    GoodsReceiptLine,
    PurchaseOrder,
    PurchaseOrderLine,
    StockMovement,
)
from procurement.services.common import (
    Actor,
    Render,
    cache_key,
    cached,
    found,
    in_state,
    now,
    require_role,
)


def create_order(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    """Turn one approved request into one order; a second attempt gets 409."""
    require_role(actor, "buyer", "admin")
    request_id = data["request_id"]
    try:
        with store.transaction():
            req = found(
                requests_data.request_for_update(request_id), "purchase request", request_id
            )
            if req.status != "approved":
                raise conflict(
                    f"request {request_id} is {req.status}, not approved",
                    "invalid_state",
                    status=req.status,
                )
            existing = orders_data.order_id_for_request(request_id)
            if existing is not None:
                raise conflict(
                    f"request {request_id} already has order {existing}",
                    "order_exists",
                    order_id=existing,
                )
            supplier = found(
                suppliers_data.supplier_for_update(data["supplier_id"]),
                "supplier",
                data["supplier_id"],
            )
            if supplier.status != "active":
                raise conflict(f"supplier is {supplier.status}", "supplier_not_active")
            order = PurchaseOrder(
                request_id=request_id,
                supplier_id=supplier.id,
                buyer=actor["name"],
                status="issued",
                expected_delivery_date=data["expected_delivery_date"],
                approved_at=req.decided_at,
            )
            order.lines = [
                PurchaseOrderLine(
                    line_no=line.line_no,
                    item_id=line.item_id,
                    quantity=line.quantity,
                    unit_price=line.estimated_unit_price,
                )
                for line in req.lines
            ]
            store.add(order)
            store.add_audit(
                actor["name"],
                "create",
                "purchase_order",
                order.id,
                request_id=request_id,
                supplier_id=supplier.id,
            )
    except IntegrityError:
        raise conflict(f"request {request_id} already has an order", "order_exists") from None
    cache.bump("orders", "figures")
    return orders_data.get_order(order.id)


def get_order(order_id: int) -> Dict[str, Any]:
    return found(orders_data.get_order(order_id), "purchase order", order_id)


def list_orders(args: Dict[str, Any], render: Render = None) -> Any:
    statuses = set(args.get("status") or [])
    if args.get("open"):
        statuses = statuses & set(OPEN_ORDER_STATUSES) if statuses else set(OPEN_ORDER_STATUSES)
        if not statuses:
            statuses = {"none"}  # asked for open orders in closed states: nothing matches
    return cached(
        "order_list",
        ("orders",),
        "orders:" + cache_key(args),
        lambda: orders_data.list_orders(
            sorted(statuses),
            args.get("supplier_id"),
            args.get("created_from"),
            args.get("created_to"),
            args["page"],
            args["per_page"],
        ),
        render,
    )


def receive_goods(actor: Actor, order_id: int, data: Dict[str, Any]) -> Dict[str, Any]:
    """Record a delivery: stock goes up, the order advances, supplier figures refresh."""
    require_role(actor, "buyer", "admin")
    delivery_date: dt.date = data["delivery_date"]
    with store.transaction():
        order = _locked_order(order_id, OPEN_ORDER_STATUSES, "receive goods for")
        if delivery_date > dt.date.today() + dt.timedelta(days=1):
            raise conflict("a delivery date must not be in the future", "invalid_receipt")
        if delivery_date < order.created_at.date():
            raise conflict("the delivery date precedes the order", "invalid_receipt")
        by_no = {line.line_no: line for line in order.lines}
        seen = set()
        problems: Dict[str, List[str]] = {}
        for entry in data["lines"]:
            line = by_no.get(entry["line_no"])
            if line is None or entry["line_no"] in seen:
                problems.setdefault(str(entry["line_no"]), []).append("unknown or repeated line")
                continue
            seen.add(entry["line_no"])
            outstanding = line.quantity - line.received_quantity
            if entry["quantity"] > outstanding:
                problems.setdefault(str(entry["line_no"]), []).append(
                    f"only {outstanding} outstanding"
                )
        if problems:
            raise conflict(
                "the receipt does not match the order", "invalid_receipt", lines=problems
            )

        items = items_data.items_for_update([by_no[e["line_no"]].item_id for e in data["lines"]])
        receipt = GoodsReceipt(
            order_id=order_id, delivery_date=delivery_date, received_by=actor["name"]
        )
        for entry in data["lines"]:
            line = by_no[entry["line_no"]]
            line.received_quantity += entry["quantity"]
            receipt.lines.append(
                GoodsReceiptLine(order_line_id=line.id, quantity=entry["quantity"])
            )
            items[line.item_id].quantity_on_hand += entry["quantity"]
            store.add(
                StockMovement(
                    item_id=line.item_id,
                    kind="receipt",
                    quantity=entry["quantity"],
                    unit_cost=line.unit_price,
                    order_id=order_id,
                    actor=actor["name"],
                )
            )
        orders_data.add_receipt(receipt)
        before = order.status
        complete = all(line.received_quantity >= line.quantity for line in order.lines)
        order.status = "received" if complete else "partially_received"
        if complete:
            order.received_at = now()
            order.delivered_on = delivery_date
        store.add_audit(
            actor["name"],
            "receive",
            "purchase_order",
            order_id,
            receipt_id=receipt.id,
            delivery_date=delivery_date,
            status={"from": before, "to": order.status},
        )
        store.db.session.flush()
        if complete:
            suppliers_data.refresh_supplier_performance(order.supplier_id)
    if complete:
        counters.ORDER_PROCESSING.observe(
            max((order.received_at - order.approved_at).total_seconds(), 0)
        )
    cache.bump("orders", "items", "suppliers", "figures")
    return orders_data.get_order(order_id)


def close_order(actor: Actor, order_id: int) -> Dict[str, Any]:
    return _transition_order(actor, order_id, ("received",), "closed", "close")


def cancel_order(actor: Actor, order_id: int) -> Dict[str, Any]:
    return _transition_order(actor, order_id, ("issued",), "cancelled", "cancel")


def _transition_order(
    actor: Actor, order_id: int, allowed_from: Sequence[str], target: str, action: str
) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    with store.transaction():
        order = _locked_order(order_id, allowed_from, action)
        before = order.status
        order.status = target
        if target == "closed":
            order.closed_at = now()
        else:
            order.cancelled_at = now()
        store.add_audit(
            actor["name"], action, "purchase_order", order_id, status={"from": before, "to": target}
        )
    cache.bump("orders", "figures")
    return orders_data.get_order(order_id)


def _locked_order(order_id: int, allowed_from: Sequence[str], action: str) -> PurchaseOrder:
    """The order, locked until the transaction ends: 404 when missing, 409 in another state."""
    order = found(orders_data.order_for_update(order_id), "purchase order", order_id)
    in_state(order, allowed_from, action, "an order")
    return order
