"""Items, stock on hand, and the stock movements inventory figures come from."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Dict, Optional, Sequence

from sqlalchemy import case, func, select

from procurement.data_access.core import db, fetch_one, paginate
from procurement.models import (
    Item,
    StockMovement,
)

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
    return fetch_one(select(*_ITEM_COLUMNS).where(Item.id == item_id))


def list_items(page: int, per_page: int) -> Dict[str, Any]:
    return paginate(select(*_ITEM_COLUMNS).order_by(Item.id), page, per_page)


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
