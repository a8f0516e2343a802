"""The server-rendered dashboard and its fingerprinted static files."""

from __future__ import annotations

import hashlib
import re

from conftest import approved_request
from procurement.web import STATIC_DIR


def login(client, token):
    return client.post("/login", data={"token": token})


def test_pages_need_login(client):
    response = client.get("/dashboard/orders")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_login_sets_a_hardened_session_cookie(make_app, tokens):
    client = make_app(PROCUREMENT_SESSION_COOKIE_SECURE="true").test_client()
    response = login(client, tokens["alice"])
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert tokens["alice"] not in cookie


def test_bad_token_is_refused(client, tokens):
    response = login(client, "nope")
    assert response.status_code == 401
    assert b"not valid" in response.data


def test_pages_show_orders_requests_suppliers_and_figures(api, catalogue, client, tokens):
    approved_request(api, catalogue)
    waiting = api.ok(
        "POST",
        "/requests",
        "rob",
        {
            "justification": "needs approval",
            "submit": True,
            "lines": [
                {"item_id": catalogue["paper"]["id"], "quantity": 3, "estimated_unit_price": 2}
            ],
        },
    )
    assert login(client, tokens["alice"]).status_code == 302
    page = client.get("/dashboard/requests").get_data(as_text=True)
    assert "needs approval" in page and "6.00" in page and f">{waiting['id']}<" in page
    assert "Acme" in client.get("/dashboard/suppliers").get_data(as_text=True)
    assert "Business figures" in client.get("/dashboard/figures").get_data(as_text=True)
    assert "No orders." in client.get("/dashboard/orders?status=open").get_data(as_text=True)
    assert client.post("/logout").status_code == 302
    assert client.get("/dashboard/figures").status_code == 302


def test_static_files_are_fingerprinted_and_served(client, tokens):
    login(client, tokens["alice"])
    page = client.get("/dashboard/figures").get_data(as_text=True)
    css = re.search(r'href="/static/(app\.([0-9a-f]{8})\.css)"', page)
    assert css, page
    digest = hashlib.sha256((STATIC_DIR / "app.css").read_bytes()).hexdigest()[:8]
    assert css.group(2) == digest
    response = client.get("/static/" + css.group(1))
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["Cache-Control"]
    assert client.get("/static/app.00000000.css").status_code == 404


def test_static_collect_writes_fingerprinted_copies(runner, tmp_path):
    from procurement.cli import main

    result = runner.invoke(main, ["static", "collect", str(tmp_path / "static")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "static").iterdir())
    assert len(names) == 2
    assert all(re.fullmatch(r"app\.[0-9a-f]{8}\.(css|js)", n) for n in names)
