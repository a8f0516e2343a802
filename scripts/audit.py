#!/usr/bin/env python3
"""Measure a deployed host's security baseline and print RESULT key=value lines.

Run by `make audit` against the sandbox (scripts/sandbox.sh up); every
option names another target, so the same script audits any deployed host
(molecule/stack/tests/test_audit.py runs it against the stack scenario).

What is measured, and the goal each must meet (exit 1 when one is missed):

- systemd: `systemd-analyze security` exposure of every procurement*.service
  on the host; procurement.service must score at most --max-exposure, the
  others are reported.
- headers: a score computed with Mozilla HTTP Observatory's published
  method (start at 100; penalties and bonuses for CSP, cookies, CORS,
  redirection, Referrer-Policy, HSTS, SRI, X-Content-Type-Options and
  X-Frame-Options; bonuses count only when the score without them is 90 or
  more); goal: at least --min-header-score (100 is A+).
- TLS: protocols and ciphers the HTTPS port accepts, from sslscan; goal: no
  SSL or TLS below 1.2, and only forward-secret AEAD suites.
- ports: every TCP port the host listens on, on any address (ss), and the
  ports 1-1024, tried from a throwaway container on the deployment's
  network (outside the host); goal: only --allowed-ports answer, and the
  scan must see port 443 (a blind scan fails).
- dependencies: pip-audit over app/requirements.lock (scripts/audit_deps.py);
  goal: no known vulnerability with a fix, no pin left unaudited.
- compliance: the dev-sec linux, ssh, nginx and postgres baselines as our own
  testinfra tests (compliance/), run against the host; goal: no control
  failed, at most --max-waivers waived (compliance/waivers.yml says why).
- secrets: every Vault value of the inventory, searched on the host
  (scripts/leak_scan.py) in files under --leak-roots (gzip and tar archives
  opened: the backups hold the service's .env), the journal, and every
  process's command line and environment; goal: no value outside files of
  mode 0640 or tighter owned by --secret-owners, or those accounts' processes.
- lynis: Lynis (the controller's package, copied to a private temporary folder
  on the host, run there with --quick and removed); goal: hardening index at
  least --min-lynis-index and no Lynis warning; suggestions are listed.
- testssl: testssl.sh from the controller against --tls-target with the
  server name as SNI, vulnerability checks (-U) and certificate (-S); goal:
  no vulnerability flagged and every check judged. The chain of trust is
  reported, not judged: a production certificate is the operator's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import audit_deps  # noqa: E402 - a sibling script, importable once its folder is on the path
import vault_values  # noqa: E402 - a sibling script, as above

SIX_MONTHS = 15768000
# The service accounts that read a secret to do their job: the service, its
# database, cache, pooler, exporters, backups and cluster members.
SECRET_OWNERS = ["root", "procurement", "postgres", "redis", "prometheus", "procurement_backup", "etcd", "pgbouncer"]
# Where a host keeps configuration, data, logs, homes and backups.
LEAK_ROOTS = ["/etc", "/opt", "/srv", "/var", "/home", "/root", "/usr/local", "/run", "/tmp", "/backup"]
SESSION_COOKIE = re.compile(r"sess|sid|login|token|auth", re.I)
PRIVATE_REFERRER = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
UNSAFE_REFERRER = {"origin", "origin-when-cross-origin", "unsafe-url"}
KNOWN_REFERRER = PRIVATE_REFERRER | UNSAFE_REFERRER | {"no-referrer-when-downgrade"}
WEAK_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
STRONG_TLS12 = re.compile(r"^(ECDHE|DHE)-.*(GCM|CHACHA20)")

# Runs inside a throwaway container on the deployment's network: the view of
# a client outside the host. The image needs nothing but python3.
PROBE = r"""
import asyncio, errno, http.client, json, ssl, sys
address, server_name = sys.argv[1], sys.argv[2]
ports = sorted({int(p) for p in sys.argv[3].split(",") if p})
errors = []

async def knock(port, gate):
    async with gate:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 2)
        except asyncio.TimeoutError:
            return None
        except OSError as exc:
            # Refused or unreachable means closed; anything else (no file
            # descriptors left...) means the scan could not tell.
            if exc.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ECONNRESET):
                errors.append(f"{port}: {exc!r}")
            return None
        writer.close()
        return port

async def scan():
    # Hundreds of connections at once to ports the firewall drops stall the
    # scan itself (every one waits out its timeout), so keep the width modest.
    gate = asyncio.Semaphore(500)
    found = await asyncio.gather(*(knock(p, gate) for p in ports))
    return sorted(p for p in found if p)

def fetch(scheme, method, path, headers=None, body=None):
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(address, 443, timeout=15, context=context)
    else:
        connection = http.client.HTTPConnection(address, 80, timeout=15)
    try:
        connection.request(method, path, body=body, headers={"Host": server_name, **(headers or {})})
        response = connection.getresponse()
        return {"status": response.status, "headers": [[k, v] for k, v in response.getheaders()],
                "body": response.read(200000).decode("utf-8", "replace")}
    except OSError as exc:
        return {"error": repr(exc)}
    finally:
        connection.close()

result = {"open_ports": asyncio.run(scan())}
result["scan_errors"] = errors[:20]
result["scan_error_count"] = len(errors)
result["http_root"] = fetch("http", "GET", "/")
chain, path = [], "/"
for _ in range(5):
    answer = fetch("https", "GET", path, {"Origin": "https://audit.invalid"})
    chain.append(answer)
    location = dict((k.lower(), v) for k, v in answer.get("headers", [])).get("location", "")
    if answer.get("status") in (301, 302, 303, 307, 308) and location.startswith("/"):
        path = location
        continue
    if answer.get("status") in (301, 302, 303, 307, 308) and location.startswith("https://" + server_name + "/"):
        path = location[len("https://" + server_name):]
        continue
    break
result["https_chain"] = chain
result["login_failure"] = fetch("https", "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                                "token=not-a-valid-token")
print(json.dumps(result))
"""


class Audit:
    def __init__(self) -> None:
        self.missed: list[str] = []

    def result(self, key: str, value) -> None:
        print(f"RESULT {key}={value}", flush=True)

    def goal(self, ok: bool, what: str) -> None:
        if not ok:
            self.missed.append(what)
            print(f"audit: goal missed: {what}", flush=True)


# -- the host, through Ansible ------------------------------------------------


def on_host(args, command: str) -> str:
    """Run a shell command on the target as root, through the target's own inventory."""
    return run_module(args, "ansible.builtin.shell", command).get("stdout", "")


def run_module(args, module: str, module_args: str) -> dict:
    """Run one Ansible module on the target as root, through its inventory, and return its result."""
    env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = [
        shutil.which("ansible") or str(Path(sys.executable).parent / "ansible"),
        args.host,
        "-i",
        args.inventory,
        "-b",
        "-m",
        module,
    ]
    argv += ["-a", module_args]
    if args.vault_password_file and Path(args.vault_password_file).is_file():
        argv += ["--vault-password-file", args.vault_password_file]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, env=env, cwd=REPO)
    try:
        report, _ = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{") :])
        outcome = report["plays"][0]["tasks"][0]["hosts"][args.host]
    except (ValueError, KeyError, IndexError) as exc:
        raise SystemExit(f"audit: cannot run on {args.host}: {run.stdout[-1500:]}{run.stderr[-1500:]}") from exc
    if outcome.get("unreachable") or outcome.get("failed"):
        raise SystemExit(f"audit: `{module_args}` failed on {args.host}: {outcome.get('stderr') or outcome.get('msg')}")
    return outcome


def audit_systemd(args, audit: Audit) -> None:
    out = on_host(
        args,
        "for unit in $(systemctl list-unit-files --no-legend --type=service 'procurement*.service' "
        "| awk '$1 !~ /@\\.service$/ {print $1}'); do systemd-analyze security --no-pager \"$unit\" | tail -n 1; done",
    )
    scores = {m[1]: float(m[2]) for m in re.finditer(r"Overall exposure level for (\S+): ([0-9.]+)", out)}
    audit.goal("procurement.service" in scores, "procurement.service has an exposure score")
    for unit, score in sorted(scores.items()):
        audit.result(f"systemd_exposure_{unit.removesuffix('.service').replace('-', '_')}", score)
    if "procurement.service" in scores:
        audit.goal(
            scores["procurement.service"] <= args.max_exposure,
            f"procurement.service exposure {scores['procurement.service']} <= {args.max_exposure}",
        )


def audit_listeners(args, audit: Audit) -> list[int]:
    out = on_host(args, "ss -Htln")
    listening = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            address, _, port = fields[3].rpartition(":")
            listening.setdefault(int(port), set()).add(address)
    audit.result("ports_listening", ",".join(str(p) for p in sorted(listening)))
    exposed = [
        p for p, addresses in listening.items() if any(not re.match(r"^(127\.|\[::1\]|::1)", a) for a in addresses)
    ]
    audit.result("ports_listening_beyond_loopback", ",".join(str(p) for p in sorted(exposed)))
    return sorted(listening)


# -- the view from outside -----------------------------------------------------


def probe(args, ports: list[int]) -> dict:
    run = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", args.network, "--entrypoint", "python3", args.probe_image, "-"]
        + [args.address, args.server_name, ",".join(str(p) for p in ports)],
        input=PROBE,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if run.returncode != 0:
        raise SystemExit(f"audit: the probe container failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout)


def audit_ports(args, audit: Audit, seen: dict) -> None:
    open_ports = seen["open_ports"]
    audit.result("ports_reachable_from_outside", ",".join(str(p) for p in open_ports))
    # The scan is not blind: it sees the HTTPS port the header check used,
    # and every port it could not judge is an error.
    audit.goal(443 in open_ports, "the port scan sees port 443")
    audit.goal(not seen["scan_error_count"], f"the port scan judged every port ({seen['scan_errors'][:3]})")
    extra = sorted(set(open_ports) - set(args.allowed_ports))
    audit.goal(not extra, f"only ports {args.allowed_ports} reachable from outside (also: {extra})")


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs))


def parse_csp(value: str) -> dict[str, list[str]] | None:
    policy: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.strip().split()
        if not words:
            continue
        name = words[0].lower()
        if not re.match(r"^[a-z-]+$", name):
            return None
        policy.setdefault(name, [w.lower() for w in words[1:]])
    return policy


def observatory(seen: dict, server_name: str) -> list[tuple[str, int]]:
    """The Observatory's tests and their modifiers for the scanned responses."""
    final = seen["https_chain"][-1]
    headers = {}
    for name, value in final.get("headers", []):
        headers.setdefault(name.lower(), []).append(value)
    first = {name: values[0] for name, values in headers.items()}
    tests: list[tuple[str, int]] = []

    # Content Security Policy
    csp = parse_csp(first["content-security-policy"]) if "content-security-policy" in first else None
    if "content-security-policy" not in first:
        tests.append(("csp-not-implemented", -25))
    elif csp is None:
        tests.append(("csp-header-invalid", -25))
    else:
        script = csp.get("script-src", csp.get("default-src"))
        objects = csp.get("object-src", csp.get("default-src"))
        styles = csp.get("style-src", csp.get("default-src", []))
        broad = {"*", "http:", "https:", "data:", "'unsafe-inline'"}
        if script is None or objects is None or broad & set(script) or {"*", "http:", "https:"} & set(objects):
            tests.append(("csp-implemented-with-unsafe-inline", -20))
        elif any(s.startswith("http:") for s in script + objects):
            tests.append(("csp-implemented-with-insecure-scheme", -20))
        elif "'unsafe-eval'" in script:
            tests.append(("csp-implemented-with-unsafe-eval", -10))
        elif "'unsafe-inline'" in styles:
            tests.append(("csp-implemented-with-unsafe-inline-in-style-src-only", 0))
        elif csp.get("default-src") == ["'none'"]:
            tests.append(("csp-implemented-with-no-unsafe-default-src-none", 10))
        else:
            tests.append(("csp-implemented-with-no-unsafe", 5))

    # Cookies, from every response scanned (the failed sign-in sets the session cookie)
    cookies = []
    for response in [*seen["https_chain"], seen["login_failure"]]:
        cookies += [v for k, v in response.get("headers", []) if k.lower() == "set-cookie"]
    hsts = first.get("strict-transport-security", "")
    hsts_age = re.search(r"max-age=\"?(\d+)", hsts, re.I)
    protected = bool(hsts_age) and int(hsts_age.group(1)) >= SIX_MONTHS
    if not cookies:
        tests.append(("cookies-not-found", 0))
    else:
        worst = ("cookies-secure-with-httponly-sessions-and-samesite", 5)
        for cookie in cookies:
            name = cookie.split("=", 1)[0].strip()
            flags = {f.strip().split("=", 1)[0].lower(): f.strip() for f in cookie.split(";")[1:]}
            session = bool(SESSION_COOKIE.search(name))
            if session and "secure" not in flags:
                outcome = (
                    ("cookies-session-without-secure-flag-but-protected-by-hsts", -10)
                    if protected
                    else (
                        "cookies-session-without-secure-flag",
                        -40,
                    )
                )
            elif session and "httponly" not in flags:
                outcome = ("cookies-session-without-httponly-flag", -30)
            elif "secure" not in flags:
                outcome = (
                    ("cookies-without-secure-flag-but-protected-by-hsts", -5)
                    if protected
                    else (
                        "cookies-without-secure-flag",
                        -20,
                    )
                )
            elif "samesite" not in flags:
                outcome = ("cookies-secure-with-httponly-sessions", 0)
            else:
                outcome = ("cookies-secure-with-httponly-sessions-and-samesite", 5)
            worst = min(worst, outcome, key=lambda item: item[1])
        tests.append(worst)

    # Cross-origin resource sharing (the scan sent Origin: https://audit.invalid)
    allow_origin = first.get("access-control-allow-origin", "")
    if allow_origin in ("*", "https://audit.invalid"):
        tests.append(("cross-origin-resource-sharing-implemented-with-universal-access", -50))
    else:
        tests.append(("cross-origin-resource-sharing-not-implemented", 0))

    # Redirection from http:// to https:// on the same host
    root = seen["http_root"]
    location = {k.lower(): v for k, v in root.get("headers", [])}.get("location", "")
    if root.get("status") not in (301, 302, 303, 307, 308):
        tests.append(("redirection-missing", -20))
    elif not location.startswith("https://"):
        tests.append(("redirection-not-to-https-on-initial-redirection", -10))
    elif urlsplit(location).hostname != server_name:
        tests.append(("redirection-off-host-from-http", -5))
    else:
        tests.append(("redirection-to-https", 0))

    # Referrer-Policy: the last value a browser understands wins
    values = [v.strip().lower() for v in first.get("referrer-policy", "").split(",") if v.strip()]
    known = [v for v in values if v in KNOWN_REFERRER]
    if not values:
        tests.append(("referrer-policy-not-implemented", 0))
    elif not known:
        tests.append(("referrer-policy-header-invalid", -5))
    elif known[-1] in PRIVATE_REFERRER:
        tests.append(("referrer-policy-private", 5))
    elif known[-1] in UNSAFE_REFERRER:
        tests.append(("referrer-policy-unsafe", -5))
    else:
        tests.append(("referrer-policy-no-referrer-when-downgrade", 0))

    # Strict-Transport-Security (preloading cannot be judged from here)
    if not hsts:
        tests.append(("hsts-not-implemented", -20))
    elif not hsts_age:
        tests.append(("hsts-header-invalid", -20))
    elif int(hsts_age.group(1)) < SIX_MONTHS:
        tests.append(("hsts-implemented-max-age-less-than-six-months", -10))
    else:
        tests.append(("hsts-implemented-max-age-at-least-six-months", 0))

    # Subresource Integrity
    content_type = first.get("content-type", "")
    if "html" not in content_type:
        tests.append(("sri-not-implemented-response-not-html", 0))
    else:
        parser = _Scripts()
        parser.feed(final.get("body", ""))
        external = [s for s in parser.scripts if urlsplit(s.get("src") or "").netloc not in ("", server_name)]
        if not parser.scripts:
            tests.append(("sri-not-implemented-but-no-scripts-loaded", 0))
        elif not external:
            tests.append(("sri-not-implemented-but-all-scripts-loaded-from-secure-origin", 0))
        elif any((s.get("src") or "").startswith("http:") for s in external):
            tests.append(("sri-not-implemented-and-external-scripts-not-loaded-securely", -50))
        elif all(s.get("integrity") for s in external):
            tests.append(("sri-implemented-and-external-scripts-loaded-securely", 5))
        else:
            tests.append(("sri-not-implemented-but-external-scripts-loaded-securely", -5))

    # X-Content-Type-Options
    nosniff = first.get("x-content-type-options")
    if nosniff is None:
        tests.append(("x-content-type-options-not-implemented", -5))
    elif nosniff.strip().lower() != "nosniff":
        tests.append(("x-content-type-options-header-invalid", -5))
    else:
        tests.append(("x-content-type-options-nosniff", 0))

    # X-Frame-Options, or CSP frame-ancestors, which supersedes it
    xfo = first.get("x-frame-options", "").strip().upper()
    ancestors = (csp or {}).get("frame-ancestors")
    if ancestors and "*" not in ancestors:
        tests.append(("x-frame-options-implemented-via-csp", 5))
    elif xfo in ("DENY", "SAMEORIGIN"):
        tests.append(("x-frame-options-sameorigin-or-deny", 0))
    elif not xfo:
        tests.append(("x-frame-options-not-implemented", -20))
    else:
        tests.append(("x-frame-options-header-invalid", -20))
    return tests


def observatory_score(tests: list[tuple[str, int]]) -> int:
    """100 plus penalties; bonuses only when the score without them is 90 or more; never below 0."""
    base = 100 + sum(m for _, m in tests if m < 0)
    bonus = sum(m for _, m in tests if m > 0) if base >= 90 else 0
    return max(0, base + bonus)


def grade(score: int) -> str:
    bands = [(100, "A+"), (90, "A"), (85, "A-"), (80, "B+"), (70, "B"), (65, "B-"), (60, "C+"), (50, "C")]
    bands += [(45, "C-"), (40, "D+"), (30, "D"), (25, "D-")]
    return next((letter for floor, letter in bands if score >= floor), "F")


def audit_headers(args, audit: Audit, seen: dict) -> None:
    final = seen["https_chain"][-1]
    audit.goal("error" not in final, f"HTTPS answers ({final.get('error', '')})")
    if "error" in final:
        return
    tests = observatory(seen, args.server_name)
    for name, modifier in tests:
        print(f"audit: observatory {modifier:+d} {name}")
    score = observatory_score(tests)
    audit.result("header_score", score)
    audit.result("header_grade", grade(score))
    audit.goal(score >= args.min_header_score, f"header score {score} >= {args.min_header_score}")


def audit_tls(args, audit: Audit) -> None:
    host, _, port = args.tls_target.rpartition(":")
    run = subprocess.run(
        ["sslscan", "--no-colour", f"--sni-name={args.server_name}", f"{host}:{port}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    protocols = [m[1] for m in re.finditer(r"^(SSLv[23]|TLSv1\.[0-3])\s+enabled", run.stdout, re.M)]
    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(TLSv1\.[0-3]|SSLv[23])\s+\d+ bits\s+(\S+)", run.stdout, re.M)
    audit.goal(run.returncode == 0 and bool(protocols), f"sslscan reads {args.tls_target} ({run.stderr[-300:]})")
    audit.result("tls_protocols", ",".join(protocols))
    audit.result("tls_ciphers", ",".join(sorted({c for _, c in ciphers})))
    weak = sorted(
        {f"{p}:{c}" for p, c in ciphers if p in WEAK_PROTOCOLS or (p == "TLSv1.2" and not STRONG_TLS12.match(c))}
    )
    audit.result("tls_weak", len(weak) + len([p for p in protocols if p in WEAK_PROTOCOLS]))
    audit.goal(not [p for p in protocols if p in WEAK_PROTOCOLS], f"no protocol below TLS 1.2 (offered: {protocols})")
    audit.goal(not weak, f"only forward-secret AEAD suites (weak: {weak})")


def audit_dependencies(args, audit: Audit) -> None:
    summary = audit_deps.audit(args.lock)
    for line in summary["fixable"] + summary["unfixed"] + summary["unaudited"]:
        print(f"audit: pip-audit {line}")
    audit.result("pip_audit_findings", len(summary["fixable"]) + len(summary["unfixed"]))
    audit.result("pip_audit_fixable", len(summary["fixable"]))
    audit.result("pip_audit_unaudited", len(summary["unaudited"]))
    audit.goal(not summary["fixable"], "no known vulnerability with a fix in app/requirements.lock")
    audit.goal(not summary["unaudited"], "every pin of app/requirements.lock audited")


def testinfra_target(args, scratch: Path) -> list[str]:
    """testinfra's options to reach the host as Ansible does: its connection settings, templated by Ansible."""
    if args.testinfra_host:
        return [f"--hosts={args.testinfra_host}"]
    keys = ("ansible_connection", "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file")
    template = "|".join(f"{{{{ {key} | default('') }}}}" for key in keys)
    template += "|{{ ansible_ssh_common_args | default('') }}"
    reply = run_module(args, "ansible.builtin.debug", f"msg={template}")["msg"]
    connection, address, port, user, key, common = reply.split("|", 5)
    if connection == "docker":
        return [f"--hosts=docker://{address or args.host}"]
    if connection == "local":
        return ["--hosts=local://", "--sudo"]
    # Over SSH as Ansible logs in (testinfra takes no SSH arguments, but an
    # SSH configuration), root through sudo.
    lines = [f"Host {args.host}", f"  HostName {address or args.host}"]
    lines += [f"  Port {port}"] if port else []
    lines += [f"  User {user}"] if user else []
    lines += [f"  IdentityFile {key}", "  IdentitiesOnly yes"] if key else []
    words = shlex.split(common)
    lines += [f"  {words[i + 1].replace('=', ' ', 1)}" for i, word in enumerate(words[:-1]) if word == "-o"]
    config = scratch / "ssh_config"
    config.write_text("\n".join(lines) + "\n")
    return [f"--hosts=ssh://{args.host}", f"--ssh-config={config}", "--sudo"]


def audit_compliance(args, audit: Audit) -> None:
    with tempfile.TemporaryDirectory(prefix="compliance-") as scratch:
        report_path = Path(scratch) / "report.json"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            "-rfE",
            str(REPO / "compliance"),
            f"--compliance-report={report_path}",
        ]
        argv += testinfra_target(args, Path(scratch))
        run = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, cwd=REPO)
        if not report_path.is_file():
            audit.goal(False, f"the compliance suite ran ({run.stdout[-2000:]}{run.stderr[-1000:]})")
            return
        report = json.loads(report_path.read_text())
    if run.returncode != 0:
        print(run.stdout[-6000:], flush=True)
    for control in report["failed"]:
        print(f"audit: compliance control failed: {control}", flush=True)
    for control in report["waived_passing"]:
        print(f"audit: compliance control {control} is waived but passes: drop its waiver", flush=True)
    audit.result("compliance_total", report["total"])
    audit.result("compliance_passed", report["passed"])
    audit.result("compliance_waived", report["waived"])
    audit.result("compliance_failed", len(report["failed"]))
    audit.result("compliance_not_applicable", len(report["not_applicable"]))
    audit.goal(report["total"] > 0, "the compliance suite measured at least one control")
    audit.goal(not report["failed"], f"no compliance control failed (failed: {report['failed']})")
    audit.goal(report["waived"] <= args.max_waivers, f"at most {args.max_waivers} controls waived ({report['waived']})")


def vault_secrets(args) -> dict[str, str]:
    """The inventory's Vault values long enough to search for (short ones would match by chance)."""
    vault = Path(args.vault_file or Path(args.inventory) / "group_vars/all/vault.yml")
    password_file = (
        args.vault_password_file if args.vault_password_file and Path(args.vault_password_file).is_file() else None
    )
    try:
        return vault_values.searchable(vault_values.read(vault, password_file, cwd=REPO))
    except RuntimeError as exc:
        raise SystemExit(f"audit: {exc}") from exc


def allowed_place(hit: dict, accounts: set[str]) -> bool:
    """A secret may sit in a file of mode 0640 or tighter, owned by accounts that need it, or in such a process."""
    if hit["kind"] in ("file", "archive"):
        mode = int(hit["mode"], 8)
        return not mode & ~0o640 and hit["owner"] in accounts and hit["group"] in accounts
    if hit["kind"] == "environ":
        return hit["owner"] in accounts
    return False  # a command line is world-readable; the journal is read by the adm group


def audit_secrets(args, audit: Audit) -> None:
    secrets = vault_secrets(args)
    with tempfile.TemporaryDirectory(prefix="leak-") as scratch:
        patterns = Path(scratch) / "patterns"
        patterns.touch(mode=0o600)
        patterns.write_text("".join(f"{name}\t{value}\n" for name, value in secrets.items()))
        remote = "/root/.procurement-leak-scan"
        # The values travel as a file (Ansible's copy), never on a command line.
        run_module(args, "ansible.builtin.file", f"path={remote} state=directory mode=0700 owner=root")
        try:
            run_module(args, "ansible.builtin.copy", f"src={patterns} dest={remote}/patterns mode=0600")
            run_module(args, "ansible.builtin.copy", f"src={REPO / 'scripts/leak_scan.py'} dest={remote}/ mode=0600")
            out = on_host(args, f"python3 {remote}/leak_scan.py {remote}/patterns {' '.join(args.leak_roots)}")
        finally:
            run_module(args, "ansible.builtin.file", f"path={remote} state=absent")
    report = json.loads(out)
    accounts = set(args.secret_owners)
    leaks = [hit for hit in report["hits"] if not allowed_place(hit, accounts)]
    for hit in report["hits"]:
        verdict = "LEAK" if hit in leaks else "kept"
        where = f"{hit['where']} {hit.get('mode', '')} {hit.get('owner', '')}:{hit.get('group', '')}"
        print(f"audit: secret {verdict}: {','.join(hit['secrets'])} in {hit['kind']} {where}", flush=True)
    audit.result("secret_values_searched", len(secrets))
    audit.result("secret_files_scanned", report["files_scanned"])
    audit.result("secret_kept_places", len(report["hits"]) - len(leaks))
    audit.result("secret_canary_hits", len(leaks))
    audit.goal(bool(secrets) and report["files_scanned"] > 0, "the leak search read the Vault and the host")
    audit.goal(not leaks, f"no secret outside 0640-or-tighter files of the accounts that need them ({len(leaks)})")


# Lynis from the controller's package: the program, its tests and database,
# and Debian's default profile with its plugins, laid out as Lynis's own
# standalone tarball is (run with --usecwd).
LYNIS_FILES = {
    "lynis": Path("/usr/sbin/lynis"),
    "include": Path("/usr/share/lynis/include"),
    "db": Path("/usr/share/lynis/db"),
    "default.prf": Path("/etc/lynis/default.prf"),
    "plugins": Path("/etc/lynis/plugins"),
}
# Read by Lynis after default.prf: an audit changes nothing on the host
# (no `apt-get update` before the package tests).
LYNIS_PROFILE = "refresh-repositories=no\n"
# testssl.sh's vulnerability checks (its -U), as named in its JSON output.
TESTSSL_VULNERABILITIES = (
    "heartbleed",
    "CCS",
    "ticketbleed",
    "ROBOT",
    "secure_renego",
    "secure_client_renego",
    "CRIME_TLS",
    "BREACH",
    "POODLE_SSL",
    "fallback_SCSV",
    "SWEET32",
    "FREAK",
    "DROWN",
    "LOGJAM",
    "LOGJAM-common_primes",
    "BEAST",
    "LUCKY13",
    "winshock",
    "RC4",
)
TESTSSL_FLAGGED = {"LOW", "MEDIUM", "HIGH", "CRITICAL"}


def parse_lynis_report(text: str) -> dict:
    """Lynis's report file (key=value, key[]=value): the index, and warnings and suggestions as (id, text, details)."""
    report: dict = {"hardening_index": None, "warnings": [], "suggestions": [], "tests_done": None}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "hardening_index" and value.strip().isdigit():
            report["hardening_index"] = int(value)
        elif key == "lynis_tests_done" and value.strip().isdigit():
            report["tests_done"] = int(value)
        elif key in ("warning[]", "suggestion[]"):
            fields = value.split("|")
            entry = (fields[0], fields[1] if len(fields) > 1 else "", fields[2] if len(fields) > 2 else "-")
            report["warnings" if key == "warning[]" else "suggestions"].append(entry)
    return report


def lynis_archive(path: Path) -> None:
    """A tar.gz of Lynis as the controller's package installed it, every file root's."""
    missing = [str(p) for p in LYNIS_FILES.values() if not p.exists()]
    if missing:
        raise SystemExit(f"audit: Lynis is not installed on the controller (apt-get install lynis): {missing}")

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode &= 0o755  # Lynis refuses files that group or others may write
        return info

    with tarfile.open(path, "w:gz") as archive:
        for name, source in LYNIS_FILES.items():
            archive.add(source, arcname=name, filter=as_root)
        profile = tarfile.TarInfo("custom.prf")
        profile.size, profile.mode = len(LYNIS_PROFILE), 0o644
        archive.addfile(profile, io.BytesIO(LYNIS_PROFILE.encode()))


def audit_lynis(args, audit: Audit) -> None:
    """Lynis runs on the host from a private temporary folder, which is removed after."""
    with tempfile.TemporaryDirectory(prefix="lynis-") as scratch:
        archive = Path(scratch) / "lynis.tar.gz"
        lynis_archive(archive)
        remote = on_host(args, "mktemp -d /tmp/procurement-lynis.XXXXXXXX").strip()
        try:
            run_module(args, "ansible.builtin.unarchive", f"src={archive} dest={remote} owner=root group=root")
            # sh runs it where /tmp is mounted noexec; its exit code is judged
            # by the report it leaves.
            out = on_host(
                args,
                f"cd {remote} && sh ./lynis audit system --usecwd --quick --no-colors --plugindir {remote}/plugins "
                f"--logfile {remote}/lynis.log --report-file {remote}/report.dat >/dev/null 2>&1; "
                f"cat {remote}/report.dat 2>/dev/null || true",
            )
        finally:
            run_module(args, "ansible.builtin.file", f"path={remote} state=absent")
    report = parse_lynis_report(out)
    audit.goal(report["hardening_index"] is not None, "Lynis ran on the host and wrote its report")
    if report["hardening_index"] is None:
        return
    for test, text, details in report["warnings"]:
        print(f"audit: lynis warning {test}: {text} ({details})", flush=True)
    for test, text, details in report["suggestions"]:
        print(f"audit: lynis suggestion {test}: {text} ({details})", flush=True)
    index = report["hardening_index"]
    warnings = sorted({test for test, _, _ in report["warnings"]})
    audit.result("lynis_hardening_index", index)
    audit.result("lynis_tests_done", report["tests_done"])
    audit.result("lynis_warnings", len(report["warnings"]))
    audit.result("lynis_warning_ids", ",".join(warnings))
    audit.result("lynis_suggestions", len(report["suggestions"]))
    audit.goal(index >= args.min_lynis_index, f"Lynis hardening index {index} >= {args.min_lynis_index}")
    audit.goal(not warnings, f"no Lynis warning ({warnings})")


def parse_testssl(findings: list[dict]) -> dict:
    """testssl.sh's flat JSON: the vulnerabilities flagged, those it could not judge, and the chain of trust."""
    by_id = {f.get("id"): f for f in findings}
    checked = [name for name in TESTSSL_VULNERABILITIES if name in by_id]
    flagged = [name for name in checked if by_id[name].get("severity") in TESTSSL_FLAGGED]
    unjudged = [name for name in checked if by_id[name].get("severity") in ("WARN", "FATAL")]
    chain = by_id.get("cert_chain_of_trust", {})
    return {
        "checked": checked,
        "flagged": flagged,
        "unjudged": unjudged,
        "errors": [f.get("finding", "") for f in findings if f.get("severity") == "FATAL"],
        "chain_of_trust": " ".join(f"{chain.get('severity', '')} {chain.get('finding', '')}".split()),
        "findings": {name: by_id[name].get("finding", "") for name in flagged + unjudged},
    }


def audit_testssl(args, audit: Audit) -> None:
    """testssl.sh from the controller: vulnerabilities (-U) and the certificate (-S); sslscan covers the rest."""
    host, _, port = args.tls_target.rpartition(":")
    testssl = shutil.which("testssl") or shutil.which("testssl.sh")
    audit.goal(bool(testssl), "testssl.sh is installed on the controller (apt-get install testssl.sh)")
    if not testssl:
        return
    with tempfile.TemporaryDirectory(prefix="testssl-") as scratch:
        report_path = Path(scratch) / "testssl.json"
        run = subprocess.run(
            [testssl, "--quiet", "--warnings", "batch", "--color", "0", "--connect-timeout", "10"]
            + ["--openssl-timeout", "10", "--jsonfile", str(report_path), "--ip", host, "-U", "-S"]
            + [f"https://{args.server_name}:{port}"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=scratch,
        )
        findings = json.loads(report_path.read_text()) if report_path.is_file() else []
    result = parse_testssl(findings)
    audit.goal(
        bool(result["checked"]) and not result["errors"],
        f"testssl.sh reads {args.tls_target} ({result['errors'][:2]}{run.stdout[-300:]}{run.stderr[-300:]})",
    )
    for name, finding in result["findings"].items():
        print(f"audit: testssl {name}: {finding}", flush=True)
    audit.result("testssl_vulnerability_checks", len(result["checked"]))
    audit.result("testssl_vulnerable", len(result["flagged"]))
    audit.result("testssl_vulnerable_names", ",".join(result["flagged"]))
    audit.result("testssl_unjudged", ",".join(result["unjudged"]))
    # Reported, not a goal: a production certificate is the operator's.
    audit.result("testssl_chain_of_trust", result["chain_of_trust"])
    audit.goal(not result["flagged"], f"testssl.sh flags no vulnerability ({result['flagged']})")
    audit.goal(not result["unjudged"], f"testssl.sh judged every vulnerability check ({result['unjudged']})")


CHECKS = ("systemd", "headers", "tls", "ports", "dependencies", "compliance", "secrets", "lynis", "testssl")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    target = parser.add_argument_group("target (defaults: the sandbox of scripts/sandbox.sh)")
    target.add_argument("--inventory", default=str(REPO / "inventory/sandbox"), help="Ansible inventory of the host")
    target.add_argument("--host", default="sandbox-aio", help="inventory name of the host")
    target.add_argument("--vault-password-file", default=str(REPO / "inventory/sandbox/vault-password.txt"))
    target.add_argument(
        "--vault-file", help="the Vault whose values the leak search looks for (default: the inventory's)"
    )
    target.add_argument("--server-name", default="procurement.sandbox.test", help="the site's name (Host and SNI)")
    target.add_argument("--network", default="procurement-sandbox", help="Docker network the probe container joins")
    target.add_argument("--address", default="procurement-sandbox-aio", help="the host's address on that network")
    target.add_argument(
        "--probe-image", default="procurement-systemd:debian12", help="image with python3 for the probe"
    )
    target.add_argument("--tls-target", default="127.0.0.1:8443", help="host:port where sslscan reaches HTTPS")
    target.add_argument(
        "--testinfra-host",
        help="testinfra's address of the host for the compliance suite, e.g. docker://NAME "
        "(default: reached as Ansible reaches it, with sudo)",
    )
    goals = parser.add_argument_group("goals")
    goals.add_argument("--max-exposure", type=float, default=2.5)
    goals.add_argument("--min-header-score", type=int, default=100)
    goals.add_argument("--min-lynis-index", type=int, default=80, help="Lynis hardening index at least")
    goals.add_argument("--max-waivers", type=int, default=15, help="compliance controls that may be waived")
    goals.add_argument(
        "--allowed-ports",
        type=lambda s: [int(p) for p in s.split(",") if p],
        default=[22, 80, 443],
        help="e.g. 22,80,443",
    )
    leaks = parser.add_argument_group("leak search")
    leaks.add_argument(
        "--leak-roots",
        type=lambda s: s.split(","),
        default=LEAK_ROOTS,
        help="folders searched for secret values (with the journal and every process)",
    )
    leaks.add_argument(
        "--secret-owners",
        type=lambda s: s.split(","),
        default=SECRET_OWNERS,
        help="accounts and groups that may hold a secret (comma-separated)",
    )
    parser.add_argument("--lock", type=Path, default=REPO / "app/requirements.lock")
    parser.add_argument("--only", choices=CHECKS, action="append", help="run only these checks (repeatable)")
    parser.add_argument(
        "--skip", choices=CHECKS, action="append", default=[], help="leave these checks out (repeatable)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checks = [check for check in args.only or CHECKS if check not in args.skip]
    audit = Audit()
    if "systemd" in checks:
        audit_systemd(args, audit)
    # Every port the host listens on, on any address, plus the well-known
    # range: only a listening socket can accept a connection.
    listening = audit_listeners(args, audit) if "ports" in checks else []
    if {"headers", "ports"} & set(checks):
        seen = probe(args, sorted(set(listening) | set(range(1, 1025))))
        if "ports" in checks:
            audit_ports(args, audit, seen)
        if "headers" in checks:
            audit_headers(args, audit, seen)
    standalone = {
        "tls": audit_tls,
        "dependencies": audit_dependencies,
        "compliance": audit_compliance,
        "secrets": audit_secrets,
        "lynis": audit_lynis,
        "testssl": audit_testssl,
    }
    for check, run in standalone.items():
        if check in checks:
            run(args, audit)
    audit.result("goals_missed", len(audit.missed))
    return 1 if audit.missed else 0


if __name__ == "__main__":
    sys.exit(main())
