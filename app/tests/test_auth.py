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


def user_id(api, name):
    return next(u["id"] for u in api.ok("GET", "/users", "ada")["items"] if u["name"] == name)


def audit_actions(database, user):
    with database.connect() as conn:
        return (
            conn.execute(
                text(
                    "SELECT action FROM audit_log WHERE entity = 'user' AND entity_id = :id ORDER BY id"
                ),
                {"id": user},
            )
            .scalars()
            .all()
        )


def test_a_deactivated_user_is_refused_at_once_and_can_come_back(api, database):
    rob = user_id(api, "rob")
    assert api.get("/me", "rob").status_code == 200  # now in the auth cache
    changed = api.patch(f"/users/{rob}", "ada", json={"active": False})
    assert changed.status_code == 200 and changed.get_json()["active"] is False
    refused = api.get("/me", "rob")
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
    assert api.ok("PATCH", f"/users/{rob}", "ada", {"active": True})["active"] is True
    assert api.get("/me", "rob").status_code == 200
    assert audit_actions(database, rob)[-2:] == ["deactivate", "activate"]


def test_a_new_token_replaces_the_old_one_at_once(api, database):
    bob = user_id(api, "bob")
    old = api.tokens["bob"]
    assert api.get("/me", "bob").status_code == 200
    issued = api.ok("POST", f"/users/{bob}/token", "ada", status=(201,))
    assert issued["user"]["name"] == "bob" and issued["token"] != old
    assert api.get("/me", "bob").status_code == 401
    api.tokens["bob"] = issued["token"]
    assert api.ok("GET", "/me", "bob")["name"] == "bob"
    with database.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM users WHERE name = 'bob'")).scalar()
    assert stored == hashlib.sha256(issued["token"].encode()).hexdigest()


def test_a_revoked_token_is_refused_at_once(api, database):
    alice = user_id(api, "alice")
    assert api.get("/me", "alice").status_code == 200
    revoked = api.call("DELETE", f"/users/{alice}/token", "ada")
    assert revoked.status_code == 200 and revoked.get_json()["name"] == "alice"
    assert api.get("/me", "alice").status_code == 401
    assert audit_actions(database, alice)[-1] == "revoke_token"


@pytest.mark.parametrize(
    ("user", "method", "path", "body", "status", "code"),
    [
        ("bob", "PATCH", "/users/{rob}", {"active": False}, 403, "forbidden"),
        ("bob", "POST", "/users/{rob}/token", None, 403, "forbidden"),
        ("rita", "DELETE", "/users/{rob}/token", None, 403, "forbidden"),
        ("ada", "PATCH", "/users/999999", {"active": False}, 404, "not_found"),
        ("ada", "POST", "/users/999999/token", None, 404, "not_found"),
        ("ada", "PATCH", "/users/{rob}", {"active": "no"}, 422, "validation_error"),
        ("ada", "PATCH", "/users/{rob}", {}, 422, "validation_error"),
        (
            "ada",
            "PATCH",
            "/users/{rob}",
            {"active": False, "role": "admin"},
            422,
            "validation_error",
        ),
        ("ada", "PATCH", "/users/{ada}", {"active": False}, 409, "last_admin"),
    ],
)
def test_user_changes_refused_with_a_json_error_change_nothing(
    api, user, method, path, body, status, code
):
    ids = {name: user_id(api, name) for name in ("rob", "ada")}
    response = api.call(method, path.format(**ids), user, json=body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    users = {u["name"]: u["active"] for u in api.ok("GET", "/users", "ada")["items"]}
    assert users["rob"] is True and users["ada"] is True
    assert api.get("/me", "rob").status_code == 200


def test_an_admin_may_step_down_while_another_admin_is_active(api):
    second = api.ok("POST", "/users", "ada", {"name": "adele", "role": "admin"}, status=(201,))
    assert (
        api.ok("PATCH", f"/users/{user_id(api, 'ada')}", "ada", {"active": False})["active"]
        is False
    )
    api.tokens["adele"] = second["token"]
    last = api.call("PATCH", f"/users/{second['user']['id']}", "adele", json={"active": False})
    assert last.status_code == 409 and last.get_json()["error"]["code"] == "last_admin"


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
