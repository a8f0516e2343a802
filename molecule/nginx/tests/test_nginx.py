"""The procurement site behaves as a hardened TLS reverse proxy."""

from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime

import pytest

HTTPS = "https://127.0.0.1"
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "camera=(), geolocation=(), microphone=(), payment=(), usb=()",
}


def curl(host, *args: str, vhost: str = "procurement.example.com") -> tuple[int, dict[str, list[str]], str]:
    """Run curl on the host; return (status, headers by lower-case name, body)."""
    cmd = host.run(f"curl -sk --max-time 10 -D /dev/stderr -H 'Host: {vhost}' " + " ".join(args))
    assert cmd.rc == 0, cmd.stderr
    blocks = [b for b in cmd.stderr.replace("\r", "").split("\n\n") if b.startswith("HTTP/")]
    lines = blocks[-1].splitlines()
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, cmd.stdout


def test_http_redirects_permanently_to_https(host):
    status, headers, _ = curl(host, "http://127.0.0.1/orders?page=2")
    assert status == 301
    assert headers["location"] == ["https://procurement.example.com/orders?page=2"]


@pytest.mark.parametrize("path", ["/", "/api/orders", "/static/app.css", "/metrics"])
def test_https_answers_carry_the_security_headers(host, path):
    _, headers, _ = curl(host, HTTPS + path)
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == [value], name


def test_server_header_reveals_no_version(host):
    _, headers, _ = curl(host, HTTPS + "/")
    assert headers["server"] == ["nginx"]


@pytest.mark.parametrize("protocol", ["-tls1", "-tls1_1"])
def test_old_tls_versions_are_refused(host, protocol):
    # SECLEVEL=0 lets the client offer the old protocol, so a failure is the server's refusal.
    cmd = host.run(f"openssl s_client -connect 127.0.0.1:443 {protocol} -cipher 'DEFAULT:@SECLEVEL=0' < /dev/null")
    assert cmd.rc != 0
    assert "no protocols available" not in cmd.stdout + cmd.stderr
    assert re.search(r"alert protocol version|unsupported protocol|wrong version", cmd.stdout + cmd.stderr)


@pytest.mark.parametrize("protocol,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_1_2_and_1_3_are_accepted(host, protocol, name):
    cmd = host.run(
        f"openssl s_client -connect 127.0.0.1:443 {protocol} -servername procurement.example.com < /dev/null"
    )
    assert cmd.rc == 0, cmd.stderr
    assert f"Protocol  : {name}" in cmd.stdout or f"New, {name}" in cmd.stdout


def test_static_files_are_cached_for_a_year_as_immutable(host):
    status, headers, body = curl(host, HTTPS + "/static/app.css")
    assert status == 200
    assert body == "body { color: #222; }\n"
    assert "public, immutable" in headers["cache-control"]
    assert "max-age=31536000" in headers["cache-control"]
    expires = parsedate_to_datetime(headers["expires"][0])
    served = parsedate_to_datetime(headers["date"][0])
    assert (expires - served).days == 365


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics/extra"])
def test_metrics_are_not_served_publicly(host, path):
    # The stand-in app answers every path with 200, /metrics included.
    assert json.loads(host.check_output("curl -s http://127.0.0.1:8000/metrics"))["path"] == "/metrics"
    status, _, body = curl(host, HTTPS + path)
    assert status == 404
    assert '"path"' not in body


def test_api_requests_reach_the_app_with_the_proxy_headers(host):
    status, _, body = curl(host, HTTPS + "/api/orders")
    assert status == 200
    seen = json.loads(body)
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert seen["path"] == "/api/orders"
    assert headers["host"] == "procurement.example.com"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])


def test_api_rate_limit_answers_429_when_exceeded(host):
    # The scenario allows 2 r/s with a burst of 5; 30 back-to-back requests exceed that.
    codes = host.check_output(
        "for i in $(seq 30); do curl -sk -o /dev/null -w '%%{http_code}\\n' -H 'Host: procurement.example.com' %s/api/ping; done",
        HTTPS,
    ).split()
    assert "200" in codes
    assert "429" in codes


def api_codes(host, source: str, tokens: list[str], parallel: int = 1) -> list[str]:
    """Status codes of one /api/ request per bearer token, sent from the address ``source``,
    ``parallel`` at a time (so a slow machine cannot stretch them out below the rate)."""
    host.check_output("printf '%s\\n' " + " ".join(tokens) + " > /tmp/api-tokens")
    return host.check_output(
        f"xargs -P {parallel} -I TOKEN curl -sk --interface {source} -o /dev/null -w '%{{http_code}}\\n' "
        f"-H 'Authorization: Bearer TOKEN' -H 'Host: procurement.example.com' {HTTPS}/api/ping < /tmp/api-tokens"
    ).split()


def test_api_rate_limit_is_per_token_so_an_office_behind_one_address_shares_nothing(host):
    """Clients behind one NAT share an address, not a token: one client over its limit leaves the next alone."""
    first = api_codes(host, "127.0.0.3", ["token-of-the-first-client"] * 30, parallel=10)
    assert "429" in first and "200" in first, first
    second = api_codes(host, "127.0.0.3", ["token-of-the-second-client"] * 5)
    assert second == ["200"] * 5


def test_api_rate_limit_per_address_stops_a_client_inventing_tokens(host):
    codes = api_codes(host, "127.0.0.4", [f"invented-token-{n}" for n in range(120)], parallel=20)
    assert "200" in codes
    assert codes.count("429") >= 20, codes


def test_request_bodies_over_the_limit_are_refused_with_413(host):
    host.run_test("head -c 2097152 /dev/zero > /tmp/two-megabytes")
    status, _, _ = curl(host, "--data-binary @/tmp/two-megabytes", HTTPS + "/api/upload")
    assert status == 413


def test_stub_status_answers_on_loopback_only(host):
    body = host.check_output("curl -s http://127.0.0.1:8080/stub_status")
    assert body.startswith("Active connections:")
    listeners = host.check_output("ss -Hltn 'sport = :8080'")
    assert "127.0.0.1:8080" in listeners
    assert "0.0.0.0:8080" not in listeners


def test_access_log_keeps_method_and_path_in_fields_6_and_7(host):
    curl(host, HTTPS + "/api/log-probe")
    # Nginx writes the line in its log phase, after the response has gone: curl may be done first.
    deadline = time.monotonic() + 10
    while True:
        fields = host.check_output("grep log-probe /var/log/nginx/access.log | tail -1 | awk '{print $6 $7}'")
        if fields or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fields == '"GET/api/log-probe'


def test_default_site_is_gone(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    # Any other name still lands on the procurement site's redirect, not a welcome page.
    status, _, _ = curl(host, "http://127.0.0.1/", vhost="other.example.org")
    assert status == 301


def test_a_stopped_app_gives_a_json_503_until_it_starts_again(host):
    """With nothing on the app's port, nginx answers the app's JSON error shape with 503, not its HTML 502."""
    host.check_output("systemctl stop echo-app")
    try:
        status, headers, body = curl(host, HTTPS + "/api/orders")
        assert status == 503, body
        assert headers["content-type"] == ["application/json"]
        assert headers["retry-after"] == ["30"]
        assert json.loads(body)["error"]["code"] == "service_unavailable"
        for name, value in SECURITY_HEADERS.items():
            assert headers.get(name) == [value], name
    finally:
        host.check_output("systemctl start echo-app")
    host.check_output("timeout 30 sh -c 'until curl -s -o /dev/null http://127.0.0.1:8000/; do sleep 0.5; done'")
    status, _, _ = curl(host, HTTPS + "/api/orders")
    assert status == 200
