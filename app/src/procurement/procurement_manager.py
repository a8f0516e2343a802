"""Business rules of procurement.

Views hand this module an authenticated actor and validated data; it decides
whether the action is allowed, performs it in one transaction, writes the
audit trail, and only then invalidates the caches the change affects (after
commit, so a concurrent reader can never cache the old state under the new
version).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sqlalchemy.exc import IntegrityError

from procurement import data_access as da
from procurement import project_monitor
from procurement.cache import cache
from procurement.errors import ApiError, conflict, not_found
from procurement.models import (
    OPEN_ORDER_STATUSES,
    ROLES,
    GoodsReceipt,
    GoodsReceiptLine,
    Item,
    PurchaseOrder,
    PurchaseOrderLine,
    PurchaseRequest,
    PurchaseRequestLine,
    StockMovement,
    Supplier,
)

Actor = Dict[str, Any]
Render = Optional[Callable[[Any], bytes]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def require_role(actor: Actor, *roles: str) -> None:
    if actor["role"] not in roles:
        raise ApiError(
            403,
            "forbidden",
            f"role {actor['role']!r} may not do this",
            {"allowed_roles": list(roles)},
        )


# -- users and tokens -----------------------------------------------------
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def authenticate(token: str) -> Optional[Actor]:
    """Resolve a bearer token to an active user, or None."""
    if not token or len(token) > 512:
        return None
    token_hash = hash_token(token)
    # The hash, never the token, is the cache key.
    user = cache.get_or_set("default", ("users",), "token:" + token_hash, lambda: _user(token_hash))
    if not user or not user.get("active"):
        return None
    return user


def _user(token_hash: str) -> Optional[Dict[str, Any]]:
    return da.user_by_token_hash(token_hash)


def create_user(actor_name: str, name: str, role: str, token: Optional[str] = None) -> Tuple:
    """Create a user and return it with its token, which is shown only this once."""
    if role not in ROLES:
        raise ApiError(422, "validation_error", "unknown role", {"role": [f"one of {ROLES}"]})
    token = token or new_token()
    if len(token) < 20:
        raise ApiError(422, "validation_error", "token too short", {"token": ["20+ characters"]})
    try:
        with da.transaction():
            if da.user_by_name(name) is not None:
                raise conflict(f"user {name!r} already exists", "user_exists")
            user = da.add_user(name, role, hash_token(token))
            da.add_audit(actor_name, "create", "user", user.id, name=name, role=role)
    except IntegrityError:
        raise conflict(f"user {name!r} or its token already exists", "user_exists") from None
    cache.bump("users")
    return da.user_by_name(name), token


def ensure_user(name: str, role: str, token: Optional[str]) -> Tuple:
    """Idempotent create for automation: returns (user, token or None, created)."""
    existing = da.user_by_name(name)
    if existing is not None:
        return existing, None, False
    user, token = create_user("cli", name, role, token)
    return user, token, True


def list_users() -> List[Dict[str, Any]]:
    return da.list_users()


# -- suppliers ------------------------------------------------------------
def create_supplier(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    with da.transaction():
        supplier = da.add(Supplier(**data))
        da.add_audit(actor["name"], "create", "supplier", supplier.id, **data)
    cache.bump("suppliers")
    return da.get_supplier(supplier.id)


def update_supplier(actor: Actor, supplier_id: int, data: Dict[str, Any]) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    with da.transaction():
        supplier = da.supplier_for_update(supplier_id)
        if supplier is None:
            raise not_found("supplier", supplier_id)
        changes = {}
        for key, value in data.items():
            if getattr(supplier, key) != value:
                changes[key] = {"from": getattr(supplier, key), "to": value}
                setattr(supplier, key, value)
        if changes:
            supplier.updated_at = _now()
            da.add_audit(actor["name"], "update", "supplier", supplier_id, **changes)
    cache.bump("suppliers")
    return da.get_supplier(supplier_id)


def get_supplier(supplier_id: int, render: Render = None) -> Any:
    def compute() -> Dict[str, Any]:
        supplier = da.get_supplier(supplier_id)
        if supplier is None:
            raise not_found("supplier", supplier_id)
        return supplier

    return _cached("supplier_info", ("suppliers",), f"supplier:{supplier_id}", compute, render)


def list_suppliers(args: Dict[str, Any], render: Render = None) -> Any:
    return _cached(
        "supplier_info",
        ("suppliers",),
        "suppliers:" + _key(args),
        lambda: da.list_suppliers(
            args.get("category"),
            args.get("status"),
            args.get("min_on_time_rate"),
            args["page"],
            args["per_page"],
        ),
        render,
    )


def supplier_performance(supplier_id: int, render: Render = None) -> Any:
    def compute() -> Dict[str, Any]:
        supplier = da.get_supplier(supplier_id)
        if supplier is None:
            raise not_found("supplier", supplier_id)
        return {
            "supplier_id": supplier_id,
            "name": supplier["name"],
            "on_time_delivery_rate": supplier["on_time_delivery_rate"],
            "avg_lead_time_days": supplier["avg_lead_time_days"],
            "completed_orders": supplier["completed_orders"],
            "orders_by_status": da.supplier_order_counts(supplier_id),
        }

    return _cached(
        "performance_data", ("suppliers", "orders"), f"supplier:{supplier_id}", compute, render
    )


def _cached(strategy: str, namespaces: Tuple[str, ...], key: str, compute, render: Render):
    """Cache the data, or with ``render`` its final representation (skips re-rendering hits)."""
    if render is None:
        return cache.get_or_set(strategy, namespaces, key, compute)
    return cache.get_or_set(strategy, namespaces, "r:" + key, lambda: render(compute()))


def _key(args: Dict[str, Any]) -> str:
    parts = []
    for name in sorted(args):
        value = args[name]
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, sorted(value)))
        elif isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        parts.append(f"{name}={value}")
    return hashlib.sha256("&".join(parts).encode()).hexdigest()[:32]


# -- items and stock ------------------------------------------------------
def create_item(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    try:
        with da.transaction():
            item = da.add(Item(**data))
            da.add_audit(actor["name"], "create", "item", item.id, **data)
    except IntegrityError:
        raise conflict(f"an item with sku {data['sku']!r} exists", "sku_exists") from None
    cache.bump("items")
    return da.get_item(item.id)


def get_item(item_id: int) -> Dict[str, Any]:
    item = da.get_item(item_id)
    if item is None:
        raise not_found("item", item_id)
    return item


def list_items(args: Dict[str, Any]) -> Dict[str, Any]:
    return da.list_items(args["page"], args["per_page"])


def issue_stock(actor: Actor, item_id: int, quantity: Decimal, note: str) -> Dict[str, Any]:
    """Take goods out of stock at the item's standard cost."""
    require_role(actor, "buyer", "admin")
    with da.transaction():
        items = da.items_for_update([item_id])
        item = items.get(item_id)
        if item is None:
            raise not_found("item", item_id)
        if item.quantity_on_hand < quantity:
            raise conflict(
                "not enough stock",
                "insufficient_stock",
                on_hand=str(item.quantity_on_hand),
                requested=str(quantity),
            )
        item.quantity_on_hand -= quantity
        da.add(
            StockMovement(
                item_id=item_id,
                kind="issue",
                quantity=quantity,
                unit_cost=item.unit_cost,
                note=note,
                actor=actor["name"],
            )
        )
        da.add_audit(actor["name"], "issue", "item", item_id, quantity=quantity, note=note)
    cache.bump("items", "figures")
    return da.get_item(item_id)


def inventory_turnover(start: dt.datetime, end: dt.datetime) -> Dict[str, Any]:
    """Cost of goods issued in [start, end) over the mean of opening and closing stock value."""
    if end <= start:
        raise ApiError(422, "validation_error", "end must be after start", {"end": ["too early"]})

    def compute() -> Dict[str, Any]:
        cogs = da.cost_of_goods_issued(start, end)
        opening = da.inventory_value_at(start)
        closing = da.inventory_value_at(end)
        average = (opening + closing) / 2
        turnover = None if average == 0 else round(cogs / average, 4)
        return {
            "start": start,
            "end": end,
            "cost_of_goods_issued": cogs,
            "opening_inventory_value": opening,
            "closing_inventory_value": closing,
            "average_inventory_value": round(average, 2),
            "turnover": turnover,
        }

    return cache.get_or_set(
        "performance_data",
        ("items", "figures"),
        f"turnover:{start.isoformat()}:{end.isoformat()}",
        compute,
    )


# -- purchase requests ----------------------------------------------------
def create_request(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    lines = data["lines"]
    missing = {line["item_id"] for line in lines} - da.existing_item_ids(
        [line["item_id"] for line in lines]
    )
    if missing:
        raise ApiError(404, "not_found", "unknown items", {"lines": {"item_id": sorted(missing)}})
    with da.transaction():
        req = PurchaseRequest(
            requester=actor["name"],
            justification=data["justification"],
            status="submitted" if data.get("submit") else "draft",
            submitted_at=_now() if data.get("submit") else None,
        )
        req.lines = [
            PurchaseRequestLine(
                line_no=no,
                item_id=line["item_id"],
                quantity=line["quantity"],
                estimated_unit_price=line["estimated_unit_price"],
            )
            for no, line in enumerate(lines, start=1)
        ]
        da.add(req)
        da.add_audit(actor["name"], "create", "purchase_request", req.id, status=req.status)
    cache.bump("requests")
    return da.get_request(req.id)


def get_request(request_id: int) -> Dict[str, Any]:
    req = da.get_request(request_id)
    if req is None:
        raise not_found("purchase request", request_id)
    return req


def list_requests(args: Dict[str, Any], render: Render = None) -> Any:
    return _cached(
        "order_list",
        ("requests",),
        "requests:" + _key(args),
        lambda: da.list_requests(
            args.get("status"),
            args.get("requester"),
            args.get("created_from"),
            args.get("created_to"),
            args["page"],
            args["per_page"],
        ),
        render,
    )


def _transition_request(
    actor: Actor, request_id: int, allowed_from: Sequence[str], action: str, apply
) -> Dict[str, Any]:
    with da.transaction():
        req = da.request_for_update(request_id)
        if req is None:
            raise not_found("purchase request", request_id)
        if req.status not in allowed_from:
            raise conflict(
                f"cannot {action} a request that is {req.status}",
                "invalid_state",
                status=req.status,
            )
        before = req.status
        apply(req)
        da.add_audit(
            actor["name"],
            action,
            "purchase_request",
            request_id,
            status={"from": before, "to": req.status},
        )
    cache.bump("requests")
    return da.get_request(request_id)


def _check_owner(actor: Actor, request_id: int) -> None:
    req = da.get_request(request_id)
    if req is None:
        raise not_found("purchase request", request_id)
    if req["requester"] != actor["name"] and actor["role"] != "admin":
        raise ApiError(403, "forbidden", "only the requester may do this")


def submit_request(actor: Actor, request_id: int) -> Dict[str, Any]:
    _check_owner(actor, request_id)

    def apply(req: PurchaseRequest) -> None:
        req.status = "submitted"
        req.submitted_at = _now()

    return _transition_request(actor, request_id, ("draft",), "submit", apply)


def cancel_request(actor: Actor, request_id: int) -> Dict[str, Any]:
    _check_owner(actor, request_id)

    def apply(req: PurchaseRequest) -> None:
        req.status = "cancelled"
        req.decided_at = _now()
        req.decided_by = actor["name"]

    return _transition_request(actor, request_id, ("draft", "submitted"), "cancel", apply)


def decide_request(actor: Actor, request_id: int, approve: bool, comment: str) -> Dict[str, Any]:
    """Approve or reject; the row lock makes concurrent decisions serialise, one wins."""
    require_role(actor, "approver", "admin")
    req = da.get_request(request_id)
    if req is None:
        raise not_found("purchase request", request_id)
    if req["requester"] == actor["name"]:
        raise ApiError(403, "forbidden", "nobody may decide on their own request")

    def apply(r: PurchaseRequest) -> None:
        r.status = "approved" if approve else "rejected"
        r.decided_at = _now()
        r.decided_by = actor["name"]
        r.decision_comment = comment

    return _transition_request(
        actor, request_id, ("submitted",), "approve" if approve else "reject", apply
    )


# -- purchase orders ------------------------------------------------------
def create_order(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    """Turn one approved request into one order; a second attempt gets 409."""
    require_role(actor, "buyer", "admin")
    request_id = data["request_id"]
    try:
        with da.transaction():
            req = da.request_for_update(request_id)
            if req is None:
                raise not_found("purchase request", request_id)
            if req.status != "approved":
                raise conflict(
                    f"request {request_id} is {req.status}, not approved",
                    "invalid_state",
                    status=req.status,
                )
            existing = da.order_id_for_request(request_id)
            if existing is not None:
                raise conflict(
                    f"request {request_id} already has order {existing}",
                    "order_exists",
                    order_id=existing,
                )
            supplier = da.supplier_for_update(data["supplier_id"])
            if supplier is None:
                raise not_found("supplier", data["supplier_id"])
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
            da.add(order)
            da.add_audit(
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
    return da.get_order(order.id)


def get_order(order_id: int) -> Dict[str, Any]:
    order = da.get_order(order_id)
    if order is None:
        raise not_found("purchase order", order_id)
    return order


def list_orders(args: Dict[str, Any], render: Render = None) -> Any:
    statuses = set(args.get("status") or [])
    if args.get("open"):
        statuses = statuses & set(OPEN_ORDER_STATUSES) if statuses else set(OPEN_ORDER_STATUSES)
        if not statuses:
            statuses = {"none"}  # asked for open orders in closed states: nothing matches
    return _cached(
        "order_list",
        ("orders",),
        "orders:" + _key(args),
        lambda: da.list_orders(
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
    with da.transaction():
        order = da.order_for_update(order_id)
        if order is None:
            raise not_found("purchase order", order_id)
        if order.status not in OPEN_ORDER_STATUSES:
            raise conflict(
                f"cannot receive goods for an order that is {order.status}",
                "invalid_state",
                status=order.status,
            )
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

        items = da.items_for_update([by_no[e["line_no"]].item_id for e in data["lines"]])
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
            da.add(
                StockMovement(
                    item_id=line.item_id,
                    kind="receipt",
                    quantity=entry["quantity"],
                    unit_cost=line.unit_price,
                    order_id=order_id,
                    actor=actor["name"],
                )
            )
        da.add_receipt(receipt)
        before = order.status
        complete = all(line.received_quantity >= line.quantity for line in order.lines)
        order.status = "received" if complete else "partially_received"
        if complete:
            order.received_at = _now()
            order.delivered_on = delivery_date
        da.add_audit(
            actor["name"],
            "receive",
            "purchase_order",
            order_id,
            receipt_id=receipt.id,
            delivery_date=delivery_date,
            status={"from": before, "to": order.status},
        )
        da.db.session.flush()
        if complete:
            da.refresh_supplier_performance(order.supplier_id)
    if complete:
        project_monitor.ORDER_PROCESSING.observe(
            max((order.received_at - order.approved_at).total_seconds(), 0)
        )
    cache.bump("orders", "items", "suppliers", "figures")
    return da.get_order(order_id)


def close_order(actor: Actor, order_id: int) -> Dict[str, Any]:
    return _transition_order(actor, order_id, ("received",), "closed", "close")


def cancel_order(actor: Actor, order_id: int) -> Dict[str, Any]:
    return _transition_order(actor, order_id, ("issued",), "cancelled", "cancel")


def _transition_order(
    actor: Actor, order_id: int, allowed_from: Sequence[str], target: str, action: str
) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    with da.transaction():
        order = da.order_for_update(order_id)
        if order is None:
            raise not_found("purchase order", order_id)
        if order.status not in allowed_from:
            raise conflict(
                f"cannot {action} an order that is {order.status}",
                "invalid_state",
                status=order.status,
            )
        before = order.status
        order.status = target
        if target == "closed":
            order.closed_at = _now()
        else:
            order.cancelled_at = _now()
        da.add_audit(
            actor["name"], action, "purchase_order", order_id, status={"from": before, "to": target}
        )
    cache.bump("orders", "figures")
    return da.get_order(order_id)


# -- reports --------------------------------------------------------------
def business_figures(render: Render = None) -> Any:
    """The manual's business figures, used by /metrics, the API and the dashboard."""

    def compute() -> Dict[str, Any]:
        end = _now()
        start = end - dt.timedelta(days=30)
        return {
            "orders_by_status": da.orders_by_status(),
            "order_processing": da.order_processing_stats(start),
            "supplier_performance": da.overall_supplier_performance(),
            "inventory_turnover": _turnover_uncached(start, end),
        }

    return _cached(
        "performance_data", ("orders", "suppliers", "items", "figures"), "figures", compute, render
    )


def _turnover_uncached(start: dt.datetime, end: dt.datetime) -> Dict[str, Any]:
    cogs = da.cost_of_goods_issued(start, end)
    average = (da.inventory_value_at(start) + da.inventory_value_at(end)) / 2
    return {
        "start": start,
        "end": end,
        "cost_of_goods_issued": cogs,
        "average_inventory_value": round(average, 2),
        "turnover": None if average == 0 else float(round(cogs / average, 4)),
    }


def list_audit(args: Dict[str, Any]) -> Dict[str, Any]:
    return da.list_audit(args.get("entity"), args.get("entity_id"), args["page"], args["per_page"])
