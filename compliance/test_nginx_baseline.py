"""dev-sec nginx-baseline (nginx-01 .. nginx-16) as our own tests.

The effective configuration is read once with ``nginx -T`` and parsed into a
tree, includes resolved, so every assertion is about what nginx runs, wherever
the directive lives (nginx.conf, a snippet, the site). Where the bundle meets
a control differently but at least as strictly (X-Frame-Options DENY rather
than SAMEORIGIN, a two-year HSTS, TLS 1.2 and 1.3 with AEAD suites only), the
test asserts the property and its docstring says so.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from dataclasses import dataclass, field

import pytest

pytestmark = pytest.mark.baseline("nginx-baseline")

# The suites dev-sec's nginx-12 allows for TLS 1.2 (Mozilla's former "modern" list).
DEVSEC_TLS12_SUITES = {
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
}
# Methods no procurement client sends: tracing, WebDAV, and made-up ones.
UNNEEDED_METHODS = ["TRACE", "TRACK", "DEBUG", "PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "FOO"]
# nginx's built-in values where a directive is not set (64-bit platforms).
NGINX_DEFAULTS = {
    "client_body_buffer_size": ["16k"],
    "client_max_body_size": ["1m"],
    "client_header_buffer_size": ["1k"],
    "large_client_header_buffers": ["4", "8k"],
    "keepalive_timeout": ["75s"],
    "client_body_timeout": ["60s"],
    "client_header_timeout": ["60s"],
    "send_timeout": ["60s"],
    "server_tokens": ["on"],
    "ssl_protocols": ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
    "ssl_session_tickets": ["on"],
    "ssl_prefer_server_ciphers": ["off"],
    "ssl_ciphers": ["HIGH:!aNULL:!MD5"],
}


# --- parsing `nginx -T` -------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None
    parent: Directive | None = field(default=None, repr=False)

    def children(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]


def tokenize(text: str) -> list[str]:
    """nginx's tokens: words and quoted strings (quotes removed), ``{``, ``}`` and ``;``; comments dropped."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            tokens.append(c)
            i += 1
        elif c in "\"'":
            j, out = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    out.append(text[j : j + 2])
                    j += 2
                    continue
                out.append(text[j])
                j += 1
            tokens.append("".join(out))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                # ${var} inside a word is part of it
                if text[j] == "$" and j + 1 < n and text[j + 1] == "{":
                    j = text.index("}", j) + 1
                    continue
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def parse_block(tokens: list[str], pos: int = 0) -> tuple[list[Directive], int]:
    directives: list[Directive] = []
    words: list[str] = []
    while pos < len(tokens):
        token = tokens[pos]
        pos += 1
        if token == ";":
            directives.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            block, pos = parse_block(tokens, pos)
            directives.append(Directive(words[0], words[1:], block))
            words = []
        elif token == "}":
            return directives, pos
        else:
            words.append(token)
    return directives, pos


def split_dump(dump: str) -> dict[str, str]:
    """The files of an ``nginx -T`` dump by path, the main configuration first."""
    parts = re.split(r"^# configuration file (.+):$", dump, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def resolve(directives: list[Directive], files: dict[str, str], prefix: str, parent=None) -> list[Directive]:
    """Splice included files in place, as nginx does, and link each directive to its block."""
    out: list[Directive] = []
    for d in directives:
        if d.name == "include" and d.block is None:
            pattern = d.args[0] if d.args[0].startswith("/") else posixpath.join(prefix, d.args[0])
            for path in sorted(p for p in files if fnmatch.fnmatch(p, pattern)):
                included, _ = parse_block(tokenize(files[path]))
                out.extend(resolve(included, files, prefix, parent))
            continue
        d.parent = parent
        if d.block is not None:
            d.block = resolve(d.block, files, prefix, d)
        out.append(d)
    return out


def effective(d: Directive, name: str) -> list[str]:
    """The arguments of ``name`` in force at ``d``'s block: its own, else the nearest enclosing one's."""
    node: Directive | None = d
    while node is not None:
        found = node.children(name)
        if found:
            return found[-1].args
        node = node.parent
    return NGINX_DEFAULTS.get(name, [])


def effective_headers(d: Directive) -> dict[str, str]:
    """add_header in force at ``d``: a level that sets any add_header replaces all inherited ones."""
    node: Directive | None = d
    while node is not None:
        found = node.children("add_header")
        if found:
            return {h.args[0].lower(): h.args[1] for h in found}
        node = node.parent
    return {}


def contexts(server: Directive) -> list[Directive]:
    """A server and every location (and if) under it: each place an answer can be made."""
    out = [server]
    for child in server.block or []:
        if child.block is not None and child.name in ("location", "if"):
            out.extend(contexts(child))
    return out


def size(value: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    value = value.lower()
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d)?", value):
        total += int(number) * units[unit or "s"]
    return total


def csp(value: str) -> dict[str, list[str]]:
    policy: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            policy.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return policy


@dataclass
class Nginx:
    conf_path: str
    files: dict[str, str]
    main: list[Directive]
    http: Directive

    @property
    def servers(self) -> list[Directive]:
        return self.http.children("server")

    @property
    def tls_servers(self) -> list[Directive]:
        """The servers that answer over TLS: the public site."""
        return [s for s in self.servers if any("ssl" in listen.args for listen in s.children("listen"))]

    def main_directive(self, name: str) -> list[str] | None:
        found = [d for d in self.main if d.name == name]
        return found[-1].args if found else None


@pytest.fixture(scope="module")
def nginx(host) -> Nginx:
    if not host.exists("nginx"):
        pytest.skip("nginx is not installed on this host")
    dump = host.run("nginx -T")
    assert dump.rc == 0, dump.stderr
    files = split_dump(dump.stdout)
    conf_path = next(iter(files))
    prefix = posixpath.dirname(conf_path)
    root = Directive("main", [], [])
    parsed, _ = parse_block(tokenize(files[conf_path]))
    root.block = resolve(parsed, files, prefix, root)
    http = root.children("http")[0]
    return Nginx(conf_path, files, root.block, http)


@pytest.fixture(scope="module")
def files(host, nginx) -> dict[str, tuple[str, str, int, str]]:
    """Owner, group, mode and type of nginx.conf and of the distributions' default sites, where they exist."""
    prefix = posixpath.dirname(nginx.conf_path)
    paths = [nginx.conf_path, f"{prefix}/conf.d/default.conf", f"{prefix}/sites-enabled/default"]
    out = host.run("stat -c '%n|%U|%G|%a|%F' " + " ".join(shlex.quote(p) for p in paths) + " 2>/dev/null").stdout
    result = {}
    for line in out.splitlines():
        name, user, group, mode, kind = line.split("|")
        result[name] = (user, group, int(mode, 8), kind)
    return result


@pytest.fixture(scope="module")
def processes(host) -> list[tuple[str, str]]:
    """(user, command line) of every nginx process."""
    out = host.check_output("ps -eo user:32=,args=")
    rows = [line.split(None, 1) for line in out.splitlines() if line.strip()]
    return [(r[0], r[1]) for r in rows if len(r) == 2 and r[1].startswith("nginx:")]


def tls_endpoint(nginx: Nginx) -> tuple[str, int]:
    """The public site's server name and TLS port."""
    server = nginx.tls_servers[0]
    listen = next(d for d in server.children("listen") if "ssl" in d.args)
    port = int(re.search(r"(\d+)$", listen.args[0]).group(1))
    names = effective(server, "server_name") or ["localhost"]
    return names[0], port


def https(host, nginx: Nginx, *curl_args: str) -> str:
    name, port = tls_endpoint(nginx)
    url = f"https://{name}:{port}"
    return host.check_output(
        f"curl -sk --max-time 10 --resolve {name}:{port}:127.0.0.1 " + " ".join(curl_args).replace("URL", url)
    )


# --- the controls -----------------------------------------------------------


@pytest.mark.control("nginx-01")
def test_workers_run_as_an_unprivileged_user(host, nginx, processes):
    """nginx.conf names a worker user (and group) other than root, the user exists, and the workers run as it."""
    args = nginx.main_directive("user")
    assert args, "nginx.conf sets no worker user"
    user = host.user(args[0])
    assert user.exists
    assert user.uid != 0
    assert (args[1] if len(args) > 1 else user.group) != "root"
    workers = [u for u, cmd in processes if cmd.startswith("nginx: worker")]
    assert workers, "no worker process runs"
    assert set(workers) == {args[0]}


@pytest.mark.control("nginx-02")
def test_main_configuration_is_root_owned_and_closed_to_others(nginx, files):
    """The main configuration is owned by root:root and others can neither read, write nor execute it."""
    user, group, mode, kind = files[nginx.conf_path]
    assert kind == "regular file"
    assert (user, group) == ("root", "root")
    assert mode & 0o007 == 0, oct(mode)
    assert mode & 0o022 == 0, oct(mode)


@pytest.mark.control("nginx-03")
def test_default_sites_are_removed(nginx, files):
    """Neither the distribution's default site (sites-enabled/default) nor nginx.org's conf.d/default.conf exists
    or is loaded; the main configuration is a regular file."""
    prefix = posixpath.dirname(nginx.conf_path)
    for default in (f"{prefix}/conf.d/default.conf", f"{prefix}/sites-enabled/default"):
        assert default not in files, default
        assert default not in nginx.files, default
    assert files[nginx.conf_path][3] == "regular file"


@pytest.mark.control("nginx-04")
def test_one_master_process(processes):
    """Exactly one nginx master process runs on the host."""
    masters = [cmd for _, cmd in processes if cmd.startswith("nginx: master")]
    assert len(masters) == 1, masters


@pytest.mark.control("nginx-05")
def test_server_tokens_off(nginx):
    """server_tokens is off for http{} and no server turns it back on: no version in headers or error pages."""
    assert effective(nginx.http, "server_tokens") == ["off"]
    for server in nginx.servers:
        for place in contexts(server):
            assert effective(place, "server_tokens") == ["off"], effective(place, "server_name")


@pytest.mark.control("nginx-06")
@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("client_body_buffer_size", 1024),
        ("client_max_body_size", 1024),
        ("client_header_buffer_size", 1024),
        ("large_client_header_buffers", 2 * 1024),
    ],
)
def test_client_buffers_are_small(nginx, name, limit):
    """Every TLS server bounds the client's body and header buffers as dev-sec asks (1k each, 2 x 1k large headers)."""
    for server in nginx.tls_servers:
        for place in contexts(server):
            args = effective(place, name)
            total = int(args[0]) * size(args[1]) if len(args) == 2 else size(args[0])
            assert 0 < total <= limit, f"{name} {' '.join(args)}"


@pytest.mark.control("nginx-07")
def test_client_timeouts_are_short(nginx):
    """Keep-alive at most 5 s (and announced), and at most 10 s to send a header, a body chunk or read an answer."""
    for server in nginx.servers:
        keepalive = effective(server, "keepalive_timeout")
        assert 0 < seconds(keepalive[0]) <= 5, keepalive
        assert len(keepalive) == 2 and 0 < seconds(keepalive[1]) <= 5, keepalive
        for name in ("client_body_timeout", "client_header_timeout", "send_timeout"):
            assert 0 < seconds(effective(server, name)[0]) <= 10, name


@pytest.mark.control("nginx-07")
def test_simultaneous_connections_per_address_are_limited(nginx):
    """A limit_conn_zone keyed by the client address, and a limit_conn of at most 5 in force on every TLS server."""
    zones = {
        m.group(1): d.args[0]
        for d in nginx.http.children("limit_conn_zone")
        for m in [re.search(r"zone=([^:]+):", " ".join(d.args))]
        if m
    }
    per_address = {zone for zone, key in zones.items() if key == "$binary_remote_addr"}
    assert per_address, "no limit_conn_zone keyed by $binary_remote_addr"
    for server in nginx.tls_servers:
        for place in contexts(server):
            args = effective(place, "limit_conn")
            assert args and args[0] in per_address and int(args[1]) <= 5, effective(place, "server_name")


def _every_tls_answer(nginx: Nginx):
    for server in nginx.tls_servers:
        for place in contexts(server):
            yield place, effective_headers(place)


@pytest.mark.control("nginx-08")
def test_framing_is_refused(nginx):
    """Every TLS answer carries X-Frame-Options DENY or SAMEORIGIN. The bundle sends DENY (stricter than dev-sec's
    SAMEORIGIN: no framing at all), including in locations that set their own headers."""
    for place, headers in _every_tls_answer(nginx):
        assert headers.get("x-frame-options", "").upper() in ("DENY", "SAMEORIGIN"), place.args


@pytest.mark.control("nginx-09")
def test_reflected_scripts_are_blocked_by_the_content_security_policy(nginx):
    """dev-sec asks for X-XSS-Protection "1; mode=block", the switch of a browser filter that no current browser
    has any more (OWASP now advises against enabling it). The bundle blocks reflected scripts the way browsers
    enforce today: every TLS answer carries a Content-Security-Policy whose script sources (script-src, else
    default-src) allow no inline script, no eval and no other origin. If X-XSS-Protection is sent, it must not
    be a weaker setting than dev-sec's."""
    for place, headers in _every_tls_answer(nginx):
        policy = csp(headers.get("content-security-policy", ""))
        scripts = policy.get("script-src", policy.get("default-src"))
        assert scripts, f"no script-src or default-src in {place.args}"
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(scripts), scripts
        if "x-xss-protection" in headers:
            assert headers["x-xss-protection"] in ("0", "1; mode=block")


@pytest.mark.control("nginx-10")
def test_content_type_sniffing_is_off(nginx):
    """Every TLS answer carries X-Content-Type-Options: nosniff."""
    for place, headers in _every_tls_answer(nginx):
        assert headers.get("x-content-type-options", "").lower() == "nosniff", place.args


@pytest.mark.control("nginx-11")
def test_content_type_sniffing_is_off_everywhere(nginx):
    """nginx-11 repeats nginx-10 (X-Content-Type-Options: nosniff), proved here for every server and location."""
    for place, headers in _every_tls_answer(nginx):
        assert headers.get("x-content-type-options", "").lower() == "nosniff", place.args


@pytest.fixture(scope="module")
def tls12_suites(host, nginx) -> dict[str, list[str]]:
    """Each TLS server's ssl_ciphers string expanded by the host's OpenSSL."""
    strings = {":".join(effective(s, "ssl_ciphers")) for s in nginx.tls_servers}
    # An explicit list of suite names needs no expansion (a web host may have no openssl command); one
    # with aliases (HIGH, !aNULL) is expanded by the host's OpenSSL. OpenSSL lists its TLS 1.3 suites
    # (TLS_*) whatever the string says; ssl_ciphers governs TLS 1.2 only.
    explicit = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)+$")
    expanded = {
        c: c.split(":")
        if all(explicit.match(name) for name in c.split(":"))
        else host.check_output(f"openssl ciphers {shlex.quote(c)}").split(":")
        for c in strings
    }
    return {c: [s for s in suites if not s.startswith("TLS_")] for c, suites in expanded.items()}


@pytest.mark.control("nginx-12")
def test_tls_protocols_and_suites(nginx, tls12_suites):
    """TLS 1.2 (and 1.3, which dev-sec's list predates) only; session tickets off; every TLS 1.2 suite one of
    dev-sec's. The bundle offers only ECDHE with AES-GCM or ChaCha20 (a subset: no CBC), so it needs no DH
    parameters (no DHE suite) and may leave the order to the client (ssl_prefer_server_ciphers off, as Mozilla's
    intermediate profile does): no suite it offers is weak."""
    for server in nginx.tls_servers:
        assert set(effective(server, "ssl_protocols")) <= {"TLSv1.2", "TLSv1.3"}
        assert "TLSv1.2" in effective(server, "ssl_protocols") or "TLSv1.3" in effective(server, "ssl_protocols")
        assert effective(server, "ssl_session_tickets") == ["off"]
        suites = tls12_suites[":".join(effective(server, "ssl_ciphers"))]
        assert suites and set(suites) <= DEVSEC_TLS12_SUITES, set(suites) - DEVSEC_TLS12_SUITES
        if any(s.startswith("DHE-") for s in suites):
            assert effective(server, "ssl_dhparam"), "DHE suites without ssl_dhparam"
        if effective(server, "ssl_prefer_server_ciphers") != ["on"]:
            assert all("GCM" in s or "CHACHA20" in s for s in suites), suites


@pytest.mark.control("nginx-13")
def test_hsts(nginx):
    """Every TLS answer carries Strict-Transport-Security with max-age of at least dev-sec's 15768000 s (six
    months); the bundle sends two years."""
    for place, headers in _every_tls_answer(nginx):
        match = re.search(r"max-age=(\d+)", headers.get("strict-transport-security", ""))
        assert match and int(match.group(1)) >= 15768000, place.args


@pytest.mark.control("nginx-14")
def test_unneeded_http_methods_are_refused(host, nginx):
    """The public site answers 405 to methods the app does not use (tracing, WebDAV, made-up ones), while GET
    still works. dev-sec's example allows GET, HEAD and POST only; the bundle allows the methods its API answers
    (nginx_allowed_methods: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS) and refuses every other."""
    codes = {}
    for method in [*UNNEEDED_METHODS, "GET"]:
        codes[method] = https(host, nginx, f"-o /dev/null -w '%{{http_code}}' -X {method} URL/")
    assert codes.pop("GET") not in ("405", "000")
    assert codes == dict.fromkeys(UNNEEDED_METHODS, "405")


@pytest.mark.control("nginx-15")
def test_content_security_policy(nginx):
    """Every TLS answer carries a Content-Security-Policy at least as strict as dev-sec's "script-src 'self';
    object-src 'self'": scripts from the site's own origin only (script-src, else default-src, is 'self') and
    plugins from the own origin or none (the bundle: object-src 'none')."""
    for place, headers in _every_tls_answer(nginx):
        policy = csp(headers.get("content-security-policy", ""))
        assert policy.get("script-src", policy.get("default-src")) == ["'self'"], place.args
        assert policy.get("object-src", policy.get("default-src")) in (["'self'"], ["'none'"]), place.args


@pytest.mark.control("nginx-16")
def test_cookies_are_httponly_and_secure(host, nginx):
    """dev-sec checks set_cookie_flag, a third-party module no distribution's nginx has. The property it sets,
    every cookie marked HttpOnly and Secure, is the app's own (Flask's SESSION_COOKIE_* with
    app_session_cookie_secure); this proves it through nginx on the cookies the site sets: the page and a failed
    sign-in, which always sets the session cookie."""
    headers = https(host, nginx, "-o /dev/null -D - URL/")
    sign_in = "-o /dev/null -D - -X POST --data 'username=compliance&password=x' URL/login"
    for _ in range(3):
        answer = https(host, nginx, sign_in)
        if answer.split()[1:2] != ["429"]:
            break
        # Sign-in attempts are rate-limited (nginx_login_rate_limit); wait for the next slot.
        host.run("sleep 7")
    headers += answer
    cookies = [line.split(":", 1)[1] for line in headers.splitlines() if line.lower().startswith("set-cookie:")]
    assert cookies, "the site set no cookie"
    for cookie in cookies:
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "secure"} <= flags, cookie
