"""Authentication and per-role authorisation."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from conftest import approved_request, order_body, submitted_request


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-real-token", "Basic dXNlcjpwYXNz", "Token abc"],
)
def test_missing_or_bad_token_is_401_with_challenge(client, tokens, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/orders", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_tokens_are_stored_only_as_sha256(api, tokens, database):
    with database.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM users WHERE name = 'rita'")).scalar()
    assert stored == hashlib.sha256(tokens["rita"].encode()).hexdigest()
    assert tokens["rita"] not in stored
    assert api.ok("GET", "/me", "rita")["role"] == "requester"


def test_deactivated_user_is_rejected(api, database):
    assert api.get("/me", "rob").status_code == 200
    with database.begin() as conn:
        conn.execute(text("UPDATE users SET active = false WHERE name = 'rob'"))
    # The auth cache is namespaced; bump it as a deactivation through the API would.
    from procurement.cache import cache

    with api.client.application.app_context():
        cache.bump("users")
    assert api.get("/me", "rob").status_code == 401


# (user, method, path, body factory) -> expected status; path placeholders filled per test.
ROLE_CASES = [
    ("rita", "POST", "/suppliers", {"name": "S", "category": "c"}, 403),
    ("alice", "POST", "/suppliers", {"name": "S", "category": "c"}, 403),
    ("bob", "POST", "/suppliers", {"name": "S", "category": "c"}, 201),
    ("ada", "POST", "/suppliers", {"name": "S", "category": "c"}, 201),
    ("rita", "POST", "/items", {"sku": "X1", "name": "x", "unit_cost": 1}, 403),
    ("bob", "POST", "/items", {"sku": "X1", "name": "x", "unit_cost": 1}, 201),
    ("rita", "POST", "/requests/{submitted}/approve", {}, 403),
    ("bob", "POST", "/requests/{submitted}/approve", {}, 403),
    ("alice", "POST", "/requests/{submitted}/approve", {}, 200),
    ("ada", "POST", "/requests/{submitted}/reject", {}, 200),
    ("rob", "POST", "/requests/{submitted}/cancel", {}, 403),
    ("rita", "POST", "/requests/{submitted}/cancel", {}, 200),
    ("rita", "POST", "/orders", "order", 403),
    ("alice", "POST", "/orders", "order", 403),
    ("bob", "POST", "/orders", "order", 201),
    ("rita", "GET", "/users", None, 403),
    ("bob", "GET", "/users", None, 403),
    ("ada", "GET", "/users", None, 200),
    ("alice", "POST", "/users", {"name": "new", "role": "buyer"}, 403),
    ("ada", "POST", "/users", {"name": "new", "role": "buyer"}, 201),
    ("bob", "GET", "/audit", None, 403),
    ("ada", "GET", "/audit", None, 200),
    ("rita", "GET", "/orders", None, 200),
]


@pytest.mark.parametrize(("user", "method", "path", "body", "expected"), ROLE_CASES)
def test_roles_are_enforced(api, catalogue, user, method, path, body, expected):
    submitted = submitted_request(api, catalogue["paper"])
    if body == "order":
        body = order_body(catalogue, approved_request(api, catalogue))
    response = api.call(method, path.format(submitted=submitted["id"]), user, json=body)
    assert response.status_code == expected, response.get_json()
    if expected == 403:
        assert response.get_json()["error"]["code"] == "forbidden"


def test_approver_cannot_approve_own_request(api, catalogue):
    own = api.ok(
        "POST",
        "/requests",
        "alice",
        {
            "justification": "for me",
            "submit": True,
            "lines": [
                {"item_id": catalogue["paper"]["id"], "quantity": 1, "estimated_unit_price": 1}
            ],
        },
    )
    response = api.post(f"/requests/{own['id']}/approve", "alice")
    assert response.status_code == 403
    assert api.ok("GET", f"/requests/{own['id']}", "alice")["status"] == "submitted"
    assert api.ok("POST", f"/requests/{own['id']}/approve", "arnold")["status"] == "approved"


def test_admin_creates_user_whose_token_works_once_shown(api):
    created = api.ok("POST", "/users", "ada", {"name": "carol", "role": "buyer"})
    token = created["token"]
    assert len(token) >= 40
    me = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["name"] == "carol"
    listed = api.ok("GET", "/users", "ada")["items"]
    assert all("token" not in u and "token_hash" not in u for u in listed)
    duplicate = api.post("/users", "ada", {"name": "carol", "role": "buyer"})
    assert duplicate.status_code == 409


def test_cors_is_closed_by_default_and_opens_for_configured_origins(make_app, tokens):
    preflight = {
        "Origin": "https://erp.example.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization",
    }
    closed = make_app().test_client().options("/api/v1/orders", headers=preflight)
    assert "Access-Control-Allow-Origin" not in closed.headers
    client = make_app(PROCUREMENT_CORS_ORIGINS="https://erp.example.com").test_client()
    opened = client.options("/api/v1/orders", headers=preflight)
    assert opened.headers["Access-Control-Allow-Origin"] == "https://erp.example.com"
    other = client.options(
        "/api/v1/orders", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in other.headers
