"""Bad input yields a 4xx in the one error shape, and writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from conftest import issue_order

COUNTED = ("suppliers", "items", "purchase_requests", "purchase_orders", "audit_log", "users")


def counts(database):
    with database.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in COUNTED}


def assert_error_shape(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


def line(item_id=1, **over):
    return {"item_id": item_id, "quantity": 1, "estimated_unit_price": 1, **over}


BAD_BODIES = [
    ("POST", "/suppliers", "bob", b"{not json", 400, "bad_request"),
    (
        "POST",
        "/suppliers",
        "bob",
        {"name": "S", "category": "c", "rating": 5},
        422,
        "validation_error",
    ),
    ("POST", "/suppliers", "bob", {"name": 7, "category": "c"}, 422, "validation_error"),
    ("POST", "/suppliers", "bob", {"category": "c"}, 422, "validation_error"),
    ("POST", "/suppliers", "bob", {"name": "", "category": "c"}, 422, "validation_error"),
    ("POST", "/suppliers", "bob", {"name": "a\u0000b", "category": "c"}, 422, "validation_error"),
    ("POST", "/suppliers", "bob", {"name": "S", "category": "c", "status": "great"}, 422, None),
    ("POST", "/suppliers", "bob", [1, 2], 422, "validation_error"),
    ("POST", "/items", "bob", {"sku": "A", "name": "a", "unit_cost": "1.5"}, 422, None),
    ("POST", "/items", "bob", {"sku": "A", "name": "a", "unit_cost": -1}, 422, None),
    ("POST", "/items", "bob", {"sku": "A", "name": "a", "unit_cost": 1e12}, 422, None),
    ("POST", "/requests", "rita", {"justification": "x", "lines": []}, 422, None),
    ("POST", "/requests", "rita", {"justification": "x", "lines": [line(quantity=0)]}, 422, None),
    (
        "POST",
        "/requests",
        "rita",
        {"justification": "x", "lines": [line(quantity=True)]},
        422,
        None,
    ),
    ("POST", "/requests", "rita", {"justification": "x", "lines": [line(item_id="1")]}, 422, None),
    (
        "POST",
        "/requests",
        "rita",
        {"justification": "x", "lines": [line()], "submit": "yes"},
        422,
        None,
    ),
    ("POST", "/requests", "rita", {"justification": "x", "lines": [line(extra=1)]}, 422, None),
    (
        "POST",
        "/requests",
        "rita",
        {"justification": "x", "lines": [line(item_id=999)]},
        404,
        "not_found",
    ),
    # A good line before the unknown item: the request, its lines and its
    # audit entry are one statement, so not even the good line is written.
    (
        "POST",
        "/requests",
        "rita",
        {"justification": "x", "lines": [line(), line(item_id=999)]},
        404,
        "not_found",
    ),
    (
        "POST",
        "/orders",
        "bob",
        {"request_id": 1, "supplier_id": 1, "expected_delivery_date": "soon"},
        422,
        None,
    ),
    (
        "POST",
        "/orders",
        "bob",
        {"request_id": 999, "supplier_id": 1, "expected_delivery_date": "2030-01-01"},
        404,
        "not_found",
    ),
    ("POST", "/requests/999/approve", "alice", {}, 404, "not_found"),
    (
        "POST",
        "/orders/999/receipts",
        "bob",
        {"delivery_date": "2030-01-01", "lines": [{"line_no": 1, "quantity": 1}]},
        404,
        None,
    ),
    ("PATCH", "/suppliers/999", "bob", {"name": "x"}, 404, "not_found"),
    ("GET", "/orders?per_page=101", "bob", None, 422, "validation_error"),
    ("GET", "/orders?per_page=0", "bob", None, 422, "validation_error"),
    ("GET", "/orders?page=abc", "bob", None, 422, "validation_error"),
    ("GET", "/orders?status=lost", "bob", None, 422, "validation_error"),
    ("GET", "/orders?colour=red", "bob", None, 422, "validation_error"),
    ("GET", "/orders/99999999999", "bob", None, 404, "not_found"),
    ("GET", "/suppliers/0", "bob", None, 404, "not_found"),
    ("GET", "/nowhere", "bob", None, 404, "not_found"),
    ("DELETE", "/orders", "bob", None, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "path", "user", "body", "status", "code"), BAD_BODIES)
def test_bad_input_is_rejected_without_writes(
    api, catalogue, database, method, path, user, body, status, code
):
    before = counts(database)
    if isinstance(body, bytes):
        response = api.call(method, path, user, data=body, content_type="application/json")
    else:
        response = api.call(method, path, user, json=body)
    assert_error_shape(response, status, code)
    assert counts(database) == before


def test_unknown_route_outside_api_and_405_have_error_shape(client):
    assert_error_shape(client.get("/no/such/page"), 404, "not_found")
    response = client.post("/health/live")
    assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_413(api, catalogue):
    big = b'{"justification": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = api.call("POST", "/requests", "rita", data=big, content_type="application/json")
    assert_error_shape(response, 413, "payload_too_large")


def receipt(api, catalogue, approved, lines, delivery_date="2000-01-01"):
    order = issue_order(api, catalogue, approved)
    return order, api.post(
        f"/orders/{order['id']}/receipts", "bob", {"delivery_date": delivery_date, "lines": lines}
    )


@pytest.mark.parametrize(
    ("lines", "delivery"),
    [
        ([{"line_no": 1, "quantity": 11}], "today"),
        ([{"line_no": 9, "quantity": 1}], "today"),
        ([{"line_no": 1, "quantity": 1}, {"line_no": 1, "quantity": 1}], "today"),
        ([{"line_no": 1, "quantity": 1}], "2000-01-01"),
        ([{"line_no": 1, "quantity": 1}], "2999-01-01"),
    ],
)
def test_impossible_receipts_conflict_and_change_nothing(
    api, catalogue, approved, database, lines, delivery
):
    import datetime as dt

    when = dt.date.today().isoformat() if delivery == "today" else delivery
    order, response = receipt(api, catalogue, approved, lines, when)
    assert_error_shape(response, 409, "invalid_receipt")
    after = api.ok("GET", f"/orders/{order['id']}", "bob")
    assert after["status"] == "issued"
    assert all(line["received_quantity"] == 0 for line in after["lines"])
    with database.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stock_movements")).scalar() == 0


@pytest.mark.parametrize(
    ("action", "user"),
    [("submit", "rita"), ("approve", "alice"), ("reject", "alice")],
)
def test_invalid_request_transitions_conflict(api, approved, action, user):
    response = api.post(f"/requests/{approved['id']}/{action}", user)
    assert_error_shape(response, 409, "invalid_state")
    assert api.ok("GET", f"/requests/{approved['id']}", "rita")["status"] == "approved"


def test_order_transitions_conflict(api, order):
    assert_error_shape(api.post(f"/orders/{order['id']}/close", "bob"), 409, "invalid_state")
    assert api.ok("POST", f"/orders/{order['id']}/cancel", "bob")["status"] == "cancelled"
    assert_error_shape(api.post(f"/orders/{order['id']}/cancel", "bob"), 409, "invalid_state")
    response = api.post(
        f"/orders/{order['id']}/receipts",
        "bob",
        {"delivery_date": "2000-01-01", "lines": [{"line_no": 1, "quantity": 1}]},
    )
    assert_error_shape(response, 409, "invalid_state")
