"""scripts/audit.py scores headers as Mozilla's HTTP Observatory does, so a weak response fails the goal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
spec = importlib.util.spec_from_file_location("audit", SCRIPTS / "audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

NAME = "procurement.test"
GOOD = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; object-src 'none'",
    "Strict-Transport-Security": "max-age=63072000",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Type": "text/html; charset=utf-8",
}
SESSION = "session=abc; Secure; HttpOnly; Path=/; SameSite=Lax"


def seen(headers: dict, cookie: str | None = SESSION, redirect: str = f"https://{NAME}/", body: str = "") -> dict:
    login = {"status": 401, "headers": [["Set-Cookie", cookie]] if cookie else [], "body": ""}
    return {
        "http_root": {"status": 301, "headers": [["Location", redirect]]},
        "https_chain": [{"status": 200, "headers": list(headers.items()), "body": body}],
        "login_failure": login,
    }


def score(observed: dict) -> int:
    return audit.observatory_score(audit.observatory(observed, NAME))


def test_the_deployed_header_set_scores_a_plus():
    assert score(seen(GOOD)) == 120
    assert audit.grade(120) == "A+"


def test_no_headers_at_all_scores_f():
    observed = seen({"Content-Type": "text/html"}, cookie="session=abc; Path=/", redirect="")
    observed["http_root"] = {"status": 200, "headers": []}
    # CSP -25, session cookie without Secure -40, no redirect -20, no HSTS -20,
    # no nosniff -5, no X-Frame-Options -20: far below zero, floored at 0.
    assert score(observed) == 0
    assert audit.grade(0) == "F"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'"}, 80),
        ({"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}, 125),
        ({"Strict-Transport-Security": "max-age=86400"}, 110),
        ({"Referrer-Policy": "unsafe-url"}, 110),
        ({"X-Content-Type-Options": "sniff"}, 115),
    ],
)
def test_each_header_moves_the_score_by_its_modifier(change, expected):
    # Penalties first; the bonuses (+20 for the good set) only from a base of 90.
    assert score(seen({**GOOD, **change})) == expected


def test_bonuses_count_only_from_90_up():
    # Without HSTS (-20) the score before bonuses is 80: the +20 of bonuses is withheld.
    headers = {k: v for k, v in GOOD.items() if k != "Strict-Transport-Security"}
    assert score(seen(headers)) == 80


def test_a_session_cookie_without_httponly_costs_30_and_the_bonuses():
    assert score(seen(GOOD, cookie="session=abc; Secure; SameSite=Lax")) == 70


def test_off_host_redirection_costs_5():
    assert score(seen(GOOD, redirect="https://elsewhere.test/")) == 115


def test_universal_cors_costs_50():
    assert score(seen({**GOOD, "Access-Control-Allow-Origin": "*"})) == 50
