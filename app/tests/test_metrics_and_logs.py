"""/metrics content and access, and JSON log lines."""

from __future__ import annotations

import datetime as dt
import json
import re

from conftest import approved_request, issue_order


def scrape(client, remote="127.0.0.1"):
    return client.get("/metrics", environ_base={"REMOTE_ADDR": remote})


def sample(text, name, **labels):
    """Value of one sample in the exposition text, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_expose_http_cache_pool_and_business_figures(api, catalogue, client):
    # Counters kept at module level live as long as the test process: compare deltas.
    before = scrape(client).get_data(as_text=True)

    def delta(body, name, **labels):
        return (sample(body, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    order = issue_order(api, catalogue, approved_request(api, catalogue))
    api.ok(
        "POST",
        f"/orders/{order['id']}/receipts",
        "bob",
        {
            "delivery_date": dt.date.today().isoformat(),
            "lines": [{"line_no": 1, "quantity": 10}, {"line_no": 2, "quantity": 2}],
        },
    )
    api.get("/orders/424242", "bob")
    response = scrape(client)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert (
        sample(
            body,
            "http_request_duration_seconds_count",
            endpoint="api.create_order",
            method="POST",
            status="201",
        )
        == 1
    )
    assert (
        sample(
            body,
            "http_request_duration_seconds_bucket",
            endpoint="api.get_order",
            status="404",
            le="+Inf",
        )
        == 1
    )
    assert delta(body, "http_requests_total", endpoint="api.get_order", status="404") == 1
    assert delta(body, "http_requests_total", endpoint="api.create_order", status="201") == 1
    assert delta(body, "procurement_errors_total", code="not_found", status="404") == 1
    assert delta(body, "procurement_cache_requests_total", strategy="default", result="hit") >= 1
    assert delta(body, "procurement_order_processing_seconds_count") == 1
    assert sample(body, "procurement_db_pool_connections_in_use") is not None
    assert sample(body, "procurement_business_metrics_up") == 1
    assert sample(body, "procurement_purchase_orders", status="received") == 1
    assert sample(body, "procurement_supplier_on_time_delivery_rate") == 1.0
    assert sample(body, "procurement_order_processing_avg_seconds") >= 0
    assert sample(body, "procurement_inventory_turnover") == 0.0
    # The scrape itself is not counted as API traffic.
    assert "monitor.metrics" not in body


def test_metrics_refused_outside_allowed_networks(client):
    response = scrape(client, remote="203.0.113.7")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    assert scrape(client, remote="::1").status_code == 200


def test_log_lines_are_json_with_request_id(make_app, tokens, settings):
    from pathlib import Path

    app = make_app(PROCUREMENT_SLOW_REQUEST_SECONDS="0.000001")
    client = app.test_client()
    response = client.get(
        "/api/v1/me",
        headers={"Authorization": f"Bearer {tokens['rita']}", "X-Request-ID": "req-abc-123"},
    )
    assert response.headers["X-Request-ID"] == "req-abc-123"
    generated = client.get("/health/live").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    lines = [
        json.loads(line) for line in Path(settings["PROCUREMENT_LOG_FILE"]).read_text().splitlines()
    ]
    slow = [entry for entry in lines if entry.get("request_id") == "req-abc-123"]
    assert slow and "slow" in slow[0]["message"]
    assert (
        slow[0]["path"] == "/api/v1/me" and slow[0]["status"] == 200 and slow[0]["user"] == "rita"
    )


def test_unexpected_error_is_500_in_error_shape_and_logged(make_app, tokens, settings, monkeypatch):
    from pathlib import Path

    from procurement.services import orders as order_service

    def broken(*_args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(order_service, "list_orders", broken)
    client = make_app().test_client()
    response = client.get("/api/v1/orders", headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "kaboom" not in response.get_data(as_text=True)
    log = Path(settings["PROCUREMENT_LOG_FILE"]).read_text()
    assert re.search(r"(?i)error|exception|failed", log)
    entries = [json.loads(line) for line in log.splitlines()]
    assert any("exception" in e["message"] and "kaboom" in e.get("exception", "") for e in entries)


def test_unwritable_log_file_falls_back_to_stderr(make_app, tokens, capfd):
    app = make_app(PROCUREMENT_LOG_FILE="/nonexistent-dir/procurement.log")
    assert app.test_client().get("/health/live").status_code == 200
    err = capfd.readouterr().err
    assert "failed to open" in err
