"""Races: concurrent approvals and concurrent order creation."""

from __future__ import annotations

import threading

from conftest import approved_request, order_body, submitted_request


def race(make_app, tokens, calls):
    """Run the calls at the same moment in threads, each with its own app and connection."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)
    clients = [make_app().test_client() for _ in calls]

    def run(i, user, path, body):
        barrier.wait()
        response = clients[i].post(
            "/api/v1" + path, json=body, headers={"Authorization": f"Bearer {tokens[user]}"}
        )
        results[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_two_approvers_at_once_one_wins_the_other_gets_409(api, catalogue, make_app, tokens):
    for _ in range(3):  # repeat: a race that passes once may pass by luck
        req = submitted_request(api, catalogue["paper"])
        results = race(
            make_app,
            tokens,
            [
                ("alice", f"/requests/{req['id']}/approve", {}),
                ("arnold", f"/requests/{req['id']}/reject", {}),
            ],
        )
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 409], results
        winner = next(body for status, body in results if status == 200)
        final = api.ok("GET", f"/requests/{req['id']}", "rita")
        assert final["status"] == winner["status"]
        assert final["decided_by"] == winner["decided_by"]


def test_one_request_never_yields_two_orders(api, catalogue, make_app, tokens, database):
    from sqlalchemy import text

    req = approved_request(api, catalogue)
    body = order_body(catalogue, req)
    results = race(
        make_app,
        tokens,
        [("bob", "/orders", body), ("ada", "/orders", body), ("bob", "/orders", body)],
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409, 409], results
    assert {b["error"]["code"] for s, b in results if s == 409} == {"order_exists"}
    with database.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM purchase_orders WHERE request_id = :r"), {"r": req["id"]}
        )
        assert count.scalar() == 1
