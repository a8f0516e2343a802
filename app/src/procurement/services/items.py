"""Items, stock issues and inventory turnover."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Dict

from sqlalchemy.exc import IntegrityError

from procurement.cache import cache
from procurement.data_access import core as store
from procurement.data_access import items as items_data
from procurement.errors import ApiError, conflict
from procurement.models import (
    Item,
    StockMovement,
)
from procurement.services.common import Actor, found, require_role


def create_item(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    try:
        with store.transaction():
            item = store.add(Item(**data))
            store.add_audit(actor["name"], "create", "item", item.id, **data)
    except IntegrityError:
        raise conflict(f"an item with sku {data['sku']!r} exists", "sku_exists") from None
    cache.bump("items")
    return items_data.get_item(item.id)


def get_item(item_id: int) -> Dict[str, Any]:
    return found(items_data.get_item(item_id), "item", item_id)


def list_items(args: Dict[str, Any]) -> Dict[str, Any]:
    return items_data.list_items(args["page"], args["per_page"])


def issue_stock(actor: Actor, item_id: int, quantity: Decimal, note: str) -> Dict[str, Any]:
    """Take goods out of stock at the item's standard cost."""
    require_role(actor, "buyer", "admin")
    with store.transaction():
        items = items_data.items_for_update([item_id])
        item = found(items.get(item_id), "item", item_id)
        if item.quantity_on_hand < quantity:
            raise conflict(
                "not enough stock",
                "insufficient_stock",
                on_hand=str(item.quantity_on_hand),
                requested=str(quantity),
            )
        item.quantity_on_hand -= quantity
        store.add(
            StockMovement(
                item_id=item_id,
                kind="issue",
                quantity=quantity,
                unit_cost=item.unit_cost,
                note=note,
                actor=actor["name"],
            )
        )
        store.add_audit(actor["name"], "issue", "item", item_id, quantity=quantity, note=note)
    cache.bump("items", "figures")
    return items_data.get_item(item_id)


def inventory_turnover(start: dt.datetime, end: dt.datetime) -> Dict[str, Any]:
    """Cost of goods issued in [start, end) over the mean of opening and closing stock value."""
    if end <= start:
        raise ApiError(422, "validation_error", "end must be after start", {"end": ["too early"]})

    def compute() -> Dict[str, Any]:
        cogs = items_data.cost_of_goods_issued(start, end)
        opening = items_data.inventory_value_at(start)
        closing = items_data.inventory_value_at(end)
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
