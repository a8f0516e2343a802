"""The manual's business figures and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict

from procurement.data_access import core as store
from procurement.data_access import items as items_data
from procurement.data_access import reports as reports_data
from procurement.services.common import Render, cached, now


def business_figures(render: Render = None) -> Any:
    """The manual's business figures, used by /metrics, the API and the dashboard."""

    def compute() -> Dict[str, Any]:
        end = now()
        start = end - dt.timedelta(days=30)
        return {
            "orders_by_status": reports_data.orders_by_status(),
            "order_processing": reports_data.order_processing_stats(start),
            "supplier_performance": reports_data.overall_supplier_performance(),
            "inventory_turnover": _turnover_uncached(start, end),
        }

    return cached(
        "performance_data", ("orders", "suppliers", "items", "figures"), "figures", compute, render
    )


def _turnover_uncached(start: dt.datetime, end: dt.datetime) -> Dict[str, Any]:
    cogs = items_data.cost_of_goods_issued(start, end)
    average = (items_data.inventory_value_at(start) + items_data.inventory_value_at(end)) / 2
    return {
        "start": start,
        "end": end,
        "cost_of_goods_issued": cogs,
        "average_inventory_value": round(average, 2),
        "turnover": None if average == 0 else float(round(cogs / average, 4)),
    }


def list_audit(args: Dict[str, Any]) -> Dict[str, Any]:
    return store.list_audit(
        args.get("entity"), args.get("entity_id"), args["page"], args["per_page"]
    )
