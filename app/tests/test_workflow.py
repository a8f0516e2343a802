"""The procurement workflow end to end, through the HTTP API."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from conftest import approved_request, issue_order, order_body, submitted_request


def test_request_to_receipt_updates_stock_orders_and_supplier_performance(api, catalogue):
    supplier_id = catalogue["supplier"]["id"]
    draft = api.ok(
        "POST",
        "/requests",
        "rita",
        {
            "justification": "printer room",
            "lines": [
                {"item_id": catalogue["paper"]["id"], "quantity": 10, "estimated_unit_price": 4.5},
                {"item_id": catalogue["toner"]["id"], "quantity": 2, "estimated_unit_price": 60},
            ],
        },
    )
    assert draft["status"] == "draft"
    assert [line["line_no"] for line in draft["lines"]] == [1, 2]

    submitted = api.ok("POST", f"/requests/{draft['id']}/submit", "rita")
    assert submitted["status"] == "submitted"
    pending = api.ok("GET", "/requests?status=submitted", "alice")
    assert [r["id"] for r in pending["items"]] == [draft["id"]]

    approved = api.ok("POST", f"/requests/{draft['id']}/approve", "alice", {"comment": "fine"})
    assert approved["status"] == "approved"
    assert approved["decided_by"] == "alice"
    assert approved["decision_comment"] == "fine"

    expected = dt.date.today() + dt.timedelta(days=3)
    order = api.ok(
        "POST",
        "/orders",
        "bob",
        {
            "request_id": draft["id"],
            "supplier_id": supplier_id,
            "expected_delivery_date": expected.isoformat(),
        },
    )
    assert order["status"] == "issued"
    assert [(line["quantity"], line["unit_price"]) for line in order["lines"]] == [
        (10.0, 4.5),
        (2.0, 60.0),
    ]

    today = dt.date.today().isoformat()
    partial = api.ok(
        "POST",
        f"/orders/{order['id']}/receipts",
        "bob",
        {"delivery_date": today, "lines": [{"line_no": 1, "quantity": 4}]},
    )
    assert partial["status"] == "partially_received"
    assert partial["lines"][0]["received_quantity"] == 4.0
    assert api.ok("GET", f"/items/{catalogue['paper']['id']}", "bob")["quantity_on_hand"] == 4.0
    perf = api.ok("GET", f"/suppliers/{supplier_id}/performance", "alice")
    assert perf["completed_orders"] == 0
    assert perf["on_time_delivery_rate"] is None

    full = api.ok(
        "POST",
        f"/orders/{order['id']}/receipts",
        "bob",
        {
            "delivery_date": today,
            "lines": [{"line_no": 1, "quantity": 6}, {"line_no": 2, "quantity": 2}],
        },
    )
    assert full["status"] == "received"
    assert full["delivered_on"] == today
    assert full["received_at"] is not None

    perf = api.ok("GET", f"/suppliers/{supplier_id}/performance", "alice")
    assert perf["completed_orders"] == 1
    assert perf["on_time_delivery_rate"] == 1.0
    assert perf["avg_lead_time_days"] == 0.0
    assert perf["orders_by_status"] == {"received": 1}
    assert api.ok("GET", f"/suppliers/{supplier_id}", "bob")["on_time_delivery_rate"] == 1.0

    # A second order delivered late halves the on-time rate.
    second = approved_request(api, catalogue)
    late = api.ok(
        "POST",
        "/orders",
        "bob",
        {
            "request_id": second["id"],
            "supplier_id": supplier_id,
            "expected_delivery_date": (dt.date.today() - dt.timedelta(days=1)).isoformat(),
        },
    )
    api.ok(
        "POST",
        f"/orders/{late['id']}/receipts",
        "bob",
        {
            "delivery_date": today,
            "lines": [{"line_no": 1, "quantity": 10}, {"line_no": 2, "quantity": 2}],
        },
    )
    perf = api.ok("GET", f"/suppliers/{supplier_id}/performance", "alice")
    assert perf["completed_orders"] == 2
    assert perf["on_time_delivery_rate"] == 0.5

    closed = api.ok("POST", f"/orders/{order['id']}/close", "bob")
    assert closed["status"] == "closed"

    figures = api.ok("GET", "/reports/figures", "alice")
    assert figures["orders_by_status"] == {"closed": 1, "received": 1}
    assert figures["order_processing"]["orders"] == 2
    assert figures["order_processing"]["avg_seconds"] >= 0
    assert figures["supplier_performance"]["on_time_delivery_rate"] == 0.5

    audit = api.ok("GET", f"/audit?entity=purchase_order&entity_id={order['id']}", "ada")
    assert [e["action"] for e in audit["items"]] == ["close", "receive", "receive", "create"]
    assert {e["actor"] for e in audit["items"]} == {"bob"}


def test_inventory_turnover_is_cost_of_goods_issued_over_average_inventory(
    api, catalogue, approved, app, database
):
    order = issue_order(api, catalogue, approved, dt.date.today().isoformat())
    today = dt.date.today().isoformat()
    api.ok(
        "POST",
        f"/orders/{order['id']}/receipts",
        "bob",
        {
            "delivery_date": today,
            "lines": [{"line_no": 1, "quantity": 10}, {"line_no": 2, "quantity": 2}],
        },
    )
    # Received stock: 10 x 4.50 + 2 x 60 = 165.00, valued at the order price.
    # Move the receipt before the period so it is the opening stock.
    with database.begin() as conn:
        conn.execute(text("UPDATE stock_movements SET occurred_at = now() - interval '20 days'"))
    paper = catalogue["paper"]["id"]
    item = api.ok("POST", f"/items/{paper}/issues", "bob", {"quantity": 4, "note": "office"})
    assert item["quantity_on_hand"] == 6.0

    result = api.ok("GET", "/reports/inventory-turnover?period_days=10", "alice")
    # Issued 4 x 4.50 = 18.00; opening 165.00, closing 147.00, average 156.00.
    assert result["cost_of_goods_issued"] == 18.0
    assert result["opening_inventory_value"] == 165.0
    assert result["closing_inventory_value"] == 147.0
    assert result["average_inventory_value"] == 156.0
    assert result["turnover"] == pytest.approx(18 / 156, abs=1e-4)

    too_much = api.post(f"/items/{paper}/issues", "bob", {"quantity": 7})
    assert too_much.status_code == 409
    assert too_much.get_json()["error"]["code"] == "insufficient_stock"


def test_cancel_request_before_approval_only(api, catalogue):
    req = approved_request(api, catalogue)
    response = api.post(f"/requests/{req['id']}/cancel", "rita")
    assert response.status_code == 409
    draft = api.ok(
        "POST",
        "/requests",
        "rita",
        {
            "justification": "x",
            "lines": [
                {"item_id": catalogue["paper"]["id"], "quantity": 1, "estimated_unit_price": 1}
            ],
        },
    )
    assert api.ok("POST", f"/requests/{draft['id']}/cancel", "rita")["status"] == "cancelled"


def test_rejected_request_cannot_become_an_order(api, catalogue):
    req = submitted_request(api, catalogue["paper"])
    rejected = api.ok("POST", f"/requests/{req['id']}/reject", "alice", {"comment": "no budget"})
    assert rejected["status"] == "rejected"
    response = api.post("/orders", "bob", order_body(catalogue, req))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "invalid_state"


def test_lists_filter_and_paginate(api, catalogue):
    for _ in range(3):
        approved_request(api, catalogue)
    page1 = api.ok("GET", "/requests?per_page=2", "alice")
    page2 = api.ok("GET", "/requests?per_page=2&page=2", "alice")
    assert page1["meta"] == {"page": 1, "per_page": 2, "has_next": True}
    assert page2["meta"]["has_next"] is False
    ids = [r["id"] for r in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert api.ok("GET", "/requests?requester=rob", "alice")["items"] == []
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert api.ok("GET", f"/requests?created_from={tomorrow}", "alice")["items"] == []
    assert len(api.ok("GET", f"/requests?created_to={tomorrow}", "alice")["items"]) == 3
    assert api.ok("GET", "/suppliers?category=office", "bob")["items"][0]["name"] == "Acme"
    assert api.ok("GET", "/suppliers?category=food", "bob")["items"] == []


def test_a_new_request_answers_as_stored_and_is_audited(api, catalogue):
    """The create answers what a later read returns: rounding, server defaults and line order."""
    created = api.ok(
        "POST",
        "/requests",
        "rita",
        {
            "justification": "rounding",
            "submit": True,
            "lines": [
                {"item_id": catalogue["toner"]["id"], "quantity": 2, "estimated_unit_price": 60},
                {
                    "item_id": catalogue["paper"]["id"],
                    "quantity": 1.25,
                    "estimated_unit_price": 4.5,
                },
            ],
        },
    )
    assert created == api.ok("GET", f"/requests/{created['id']}", "rita")
    assert created["status"] == "submitted" and created["submitted_at"]
    assert [line["line_no"] for line in created["lines"]] == [1, 2]
    assert created["lines"][1]["quantity"] == 1.25
    audit = api.ok("GET", f"/audit?entity=purchase_request&entity_id={created['id']}", "ada")
    assert [(e["action"], e["actor"], e["details"]) for e in audit["items"]] == [
        ("create", "rita", {"status": "submitted"})
    ]
