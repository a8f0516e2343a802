"""Suppliers and their performance."""

from __future__ import annotations

from typing import Any, Dict

from procurement.cache import cache
from procurement.data_access import core as store
from procurement.data_access import suppliers as suppliers_data
from procurement.models import (
    Supplier,
)
from procurement.services.common import (
    Actor,
    Render,
    cache_key,
    cached,
    found,
    now,
    require_role,
)


def create_supplier(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    with store.transaction():
        supplier = store.add(Supplier(**data))
        store.add_audit(actor["name"], "create", "supplier", supplier.id, **data)
    cache.bump("suppliers")
    return suppliers_data.get_supplier(supplier.id)


def update_supplier(actor: Actor, supplier_id: int, data: Dict[str, Any]) -> Dict[str, Any]:
    require_role(actor, "buyer", "admin")
    with store.transaction():
        supplier = found(suppliers_data.supplier_for_update(supplier_id), "supplier", supplier_id)
        changes = {}
        for key, value in data.items():
            if getattr(supplier, key) != value:
                changes[key] = {"from": getattr(supplier, key), "to": value}
                setattr(supplier, key, value)
        if changes:
            supplier.updated_at = now()
            store.add_audit(actor["name"], "update", "supplier", supplier_id, **changes)
    cache.bump("suppliers")
    return suppliers_data.get_supplier(supplier_id)


def get_supplier(supplier_id: int, render: Render = None) -> Any:
    def compute() -> Dict[str, Any]:
        return found(suppliers_data.get_supplier(supplier_id), "supplier", supplier_id)

    return cached("supplier_info", ("suppliers",), f"supplier:{supplier_id}", compute, render)


def list_suppliers(args: Dict[str, Any], render: Render = None) -> Any:
    return cached(
        "supplier_info",
        ("suppliers",),
        "suppliers:" + cache_key(args),
        lambda: suppliers_data.list_suppliers(
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
        supplier = found(suppliers_data.get_supplier(supplier_id), "supplier", supplier_id)
        return {
            "supplier_id": supplier_id,
            "name": supplier["name"],
            "on_time_delivery_rate": supplier["on_time_delivery_rate"],
            "avg_lead_time_days": supplier["avg_lead_time_days"],
            "completed_orders": supplier["completed_orders"],
            "orders_by_status": suppliers_data.supplier_order_counts(supplier_id),
        }

    return cached(
        "performance_data", ("suppliers", "orders"), f"supplier:{supplier_id}", compute, render
    )
