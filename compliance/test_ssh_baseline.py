"""dev-sec ssh-baseline: the OpenSSH client (ssh-NN) and server (sshd-NN) controls.

Every control of the published profile (controls/ssh_spec.rb and
controls/sshd_spec.rb: ssh-01 to ssh-22, sshd-01 to sshd-49 without sshd-26,
which dev-sec withdrew) has a test here, written from what the control
requires. The host is read once: one shell script prints the server's
effective configuration (``sshd -T``), the client's (``ssh -G`` over the
system-wide configuration), the files' modes, the moduli, the listener's
command line and the server's identification string, and every test asserts
on the parsed result.

Where dev-sec compares an algorithm list or a number with the value it
computes for an OpenSSH release, the control is met when the host's setting
is at least as strict (no algorithm outside dev-sec's set, a limit no looser),
not when it is equal: the bundle's lists put post-quantum hybrids first and
drop the non-ETM MACs dev-sec still allows. Where a control names an option
that current OpenSSH no longer has (SSH protocol 1, UseLogin,
UsePrivilegeSeparation, the SSHv1 client options, roaming), the test asserts
that the removed behaviour cannot be turned on: the option, forced on the
command line, leaves no trace in the effective configuration.
"""

from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.baseline("ssh-baseline")

# The port sshd must listen on (dev-sec's sshd_custom_port input).
EXPECTED_PORT = os.environ.get("COMPLIANCE_SSH_PORT", "22")
# Any host name: ssh -G only prints the configuration that would apply to it.
PROBE_HOST = "compliance-probe.invalid"

# dev-sec's sets for current OpenSSH (ciphers66, kex66, macs66 in its
# libraries/ssh_crypto.rb); a host may offer fewer, never others.
DEVSEC_CIPHERS = {
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
}
DEVSEC_MACS = {
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "hmac-sha2-512",
    "hmac-sha2-256",
}
# dev-sec's two key exchanges (curve25519-sha256@libssh.org and
# diffie-hellman-group-exchange-sha256), plus ones at least as strong that
# its list predates: curve25519-sha256 (the same exchange under its RFC 8731
# name), the 4096- and 8192-bit groups with SHA-512 (RFC 8268), and the
# post-quantum hybrids built on X25519. No SHA-1, no NIST curves, no
# 2048-bit fixed group.
STRONG_KEX = {
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group-exchange-sha256",
    "curve25519-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "sntrup761x25519-sha512",
    "mlkem768x25519-sha256",
}
HOST_KEYS = {f"/etc/ssh/ssh_host_{kind}_key" for kind in ("rsa", "ecdsa", "ed25519")}

# One round trip: each section starts with a "### name" line. Run as root
# (sshd -T reads the host keys), through sudo where the audit logs in as
# another account.
SCRIPT = r"""
export LC_ALL=C
sec() { printf '\n### %s\n' "$1"; }
sec os; . /etc/os-release 2>/dev/null; echo "$ID $ID_LIKE"
sec sshd_t; sshd -T 2>&1
sec sshd_removed
sshd -T -o UseLogin=yes -o UsePrivilegeSeparation=no -o Protocol=1 2>&1 \
  | grep -iE '^(uselogin|useprivilegeseparation|protocol) |line [0-9]+:'
sec ssh_g; ssh -G -F /etc/ssh/ssh_config PROBE 2>/dev/null
sec ssh_removed
ssh -G -F /etc/ssh/ssh_config -o RhostsRSAAuthentication=yes -o RSAAuthentication=yes -o UseRoaming=yes \
  -o Protocol=1 PROBE 2>&1 | grep -iE '^(rhostsrsaauthentication|rsaauthentication|useroaming|protocol) |line [0-9]+:'
sec ssh_v; ssh -V 2>&1
sec protocols; ssh -Q protocol-version 2>&1
sec stat
for f in /etc/ssh /etc/ssh/ssh_config /etc/ssh/sshd_config /etc/ssh/ssh_config.d/* /etc/ssh/ssh_host_*_key; do
  [ -e "$f" ] && stat -c '%n|%U|%G|%a|%F' "$f"
done
sec moduli; awk '$5 ~ /^[0-9]+$/ { print $5 }' /etc/ssh/moduli 2>&1 | sort -un
sec sshd_config; cat /etc/ssh/sshd_config
sec ssh_config
for f in /etc/ssh/ssh_config /etc/ssh/ssh_config.d/*.conf; do [ -f "$f" ] && { echo "@@ $f"; cat "$f"; }; done
sec listener
pidfile=$(sshd -T 2>/dev/null | awk '$1 == "pidfile" { print $2 }')
pid=$(cat "$pidfile" 2>/dev/null) && ps -o args= -p "$pid"
sec banner
listen=$(sshd -T 2>/dev/null | awk '$1 == "listenaddress" { print $2; exit }')
address=${listen%:*}; port=${listen##*:}; address=${address#[}; address=${address%]}
case "$address" in 0.0.0.0) address=127.0.0.1 ;; ::) address=::1 ;; esac
timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" && head -n 1 <&3' "$address" "$port" | tr -d '\r'
""".replace("PROBE", PROBE_HOST)


def parse_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:].strip(), [])
        elif current is not None and line.strip():
            current.append(line)
    return sections


def keyword_values(lines: list[str]) -> dict[str, list[str]]:
    """keyword (lower case) -> every value in the order printed (sshd -T, ssh -G)."""
    values: dict[str, list[str]] = {}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        values.setdefault(key.lower(), []).append(value.strip())
    return values


def config_keywords(lines: list[str]) -> dict[str, list[str]]:
    """The keywords a configuration file sets explicitly (comments and blank lines left out)."""
    values: dict[str, list[str]] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, *rest = re.split(r"\s*=\s*|\s+", line, maxsplit=1)
        values.setdefault(key.lower(), []).append(rest[0].strip() if rest else "")
    return values


def version(text: str) -> tuple[int, int]:
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", text)
    assert match, f"no OpenSSH version in {text!r}"
    return int(match.group(1)), int(match.group(2))


def first(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


YES = {"yes", "true"}
NO = {"no", "false"}


@pytest.fixture(scope="module")
def ssh(host):
    """The host's SSH facts, read in one command."""
    result = host.run('if [ "$(id -u)" -eq 0 ]; then bash -c %s; else sudo -n bash -c %s; fi', SCRIPT, SCRIPT)
    sections = parse_sections(result.stdout)
    assert sections.get("sshd_t"), (
        f"could not read the SSH configuration: {result.stdout[-500:]} {result.stderr[-500:]}"
    )
    stats = {}
    for line in sections.get("stat", []):
        name, user, group, mode, kind = line.split("|")
        stats[name] = {"user": user, "group": group, "mode": int(mode, 8), "kind": kind}
    client_files: dict[str, list[str]] = {}
    current = None
    for line in sections.get("ssh_config", []):
        if line.startswith("@@ "):
            current = client_files.setdefault(line[3:], [])
        elif current is not None:
            current.append(line)
    return {
        "os": (sections.get("os") or [""])[0].split(),
        "sshd": keyword_values(sections["sshd_t"]),
        "sshd_removed": sections.get("sshd_removed", []),
        "client": keyword_values(sections.get("ssh_g", [])),
        "client_removed": sections.get("ssh_removed", []),
        "client_version": version(" ".join(sections.get("ssh_v", []))),
        "protocols": sections.get("protocols", []),
        "stat": stats,
        "moduli": [int(size) for size in sections.get("moduli", []) if size.isdigit()],
        "moduli_raw": sections.get("moduli", []),
        "sshd_config": config_keywords(sections.get("sshd_config", [])),
        "client_files": {name: config_keywords(lines) for name, lines in client_files.items()},
        "listener": " ".join(sections.get("listener", [])),
        "banner": (sections.get("banner") or [""])[0],
    }


def assert_file(entry: dict | None, path: str, mode: int, kind: str = "regular file") -> None:
    assert entry is not None, f"{path} does not exist"
    assert entry["kind"] == kind, f"{path} is a {entry['kind']}"
    assert (entry["user"], entry["group"]) == ("root", "root"), f"{path} belongs to {entry['user']}:{entry['group']}"
    assert entry["mode"] == mode, f"{path} has mode {entry['mode']:04o}, expected {mode:04o}"


# ---------------------------------------------------------------- client


@pytest.mark.control("ssh-01")
def test_ssh_config_is_root_owned_world_readable_and_only_root_writable(ssh):
    """/etc/ssh/ssh_config is a root:root file readable by all, writable by root only, not executable (0644);
    the drop-ins it includes may be stricter, never looser."""
    assert_file(ssh["stat"].get("/etc/ssh/ssh_config"), "/etc/ssh/ssh_config", 0o644)
    for name, entry in ssh["stat"].items():
        if name.startswith("/etc/ssh/ssh_config.d/") and entry["kind"] == "regular file":
            assert entry["user"] == "root" and entry["mode"] & 0o133 == 0, f"{name}: {entry}"


def client_sets(ssh, keyword: str) -> list[str]:
    return [value for values in ssh["client_files"].values() for value in values.get(keyword, [])]


@pytest.mark.control("ssh-02")
def test_client_address_family_is_specified(ssh):
    """The system-wide client configuration names AddressFamily, and it is inet, inet6 or any."""
    assert client_sets(ssh, "addressfamily"), "no AddressFamily in /etc/ssh/ssh_config or its drop-ins"
    assert first(ssh["client"], "addressfamily") in {"inet", "inet6", "any"}


@pytest.mark.control("ssh-03")
def test_client_port_is_specified_as_22(ssh):
    """The system-wide client configuration names the port explicitly, and connections go to port 22."""
    assert client_sets(ssh, "port"), "no Port in /etc/ssh/ssh_config or its drop-ins"
    assert first(ssh["client"], "port") == "22"


@pytest.mark.control("ssh-04")
def test_client_speaks_protocol_2_only(ssh):
    """The Protocol option is gone (SSH-1 was removed from OpenSSH 7.6): the client supports protocol 2 alone,
    and Protocol=1 forced on the command line changes nothing."""
    assert ssh["protocols"] == ["2"]
    assert "protocol" not in ssh["client"]
    assert not [line for line in ssh["client_removed"] if line.lower().startswith("protocol ")]


@pytest.mark.control("ssh-06")
def test_client_checks_host_ips(ssh):
    """CheckHostIP is yes: the server's address is checked in known_hosts too (DNS spoofing shows)."""
    assert first(ssh["client"], "checkhostip") in YES


@pytest.mark.control("ssh-07")
def test_client_does_not_accept_new_host_keys_silently(ssh):
    """StrictHostKeyChecking is ask or yes, never accept-new or no."""
    assert first(ssh["client"], "stricthostkeychecking") in {"ask", "yes", "true"}


# Client settings that must be off, each with why.
CLIENT_OFF = [
    # Interactive prompts (host-key confirmation) are not suppressed by default.
    pytest.param("batchmode", marks=pytest.mark.control("ssh-05"), id="ssh-05-batchmode"),
    # The agent is not forwarded by default.
    pytest.param("forwardagent", marks=pytest.mark.control("ssh-11"), id="ssh-11-forwardagent"),
    # X11 is not forwarded by default.
    pytest.param("forwardx11", marks=pytest.mark.control("ssh-12"), id="ssh-12-forwardx11"),
    # No host-based login.
    pytest.param("hostbasedauthentication", marks=pytest.mark.control("ssh-13"), id="ssh-13-hostbasedauthentication"),
    # No password login.
    pytest.param("passwordauthentication", marks=pytest.mark.control("ssh-16"), id="ssh-16-passwordauthentication"),
    # No keyboard-interactive login.
    pytest.param(
        "kbdinteractiveauthentication", marks=pytest.mark.control("ssh-16"), id="ssh-16-kbdinteractiveauthentication"
    ),
    # No GSSAPI login (Debian's ssh_config turns it on for every host; the drop-in wins).
    pytest.param("gssapiauthentication", marks=pytest.mark.control("ssh-17"), id="ssh-17-gssapiauthentication"),
    # GSSAPI credentials are not delegated.
    pytest.param(
        "gssapidelegatecredentials", marks=pytest.mark.control("ssh-18"), id="ssh-18-gssapidelegatecredentials"
    ),
    # No tunnel device forwarding (ssh -G prints it as false).
    pytest.param("tunnel", marks=pytest.mark.control("ssh-19"), id="ssh-19-tunnel"),
    # No local command after connecting.
    pytest.param("permitlocalcommand", marks=pytest.mark.control("ssh-20"), id="ssh-20-permitlocalcommand"),
]


@pytest.mark.parametrize("keyword", CLIENT_OFF)
def test_client_setting_is_off(ssh, keyword):
    """ssh-05, 11-13, 16-20: batch mode, agent and X11 forwarding, host-based, password, keyboard-interactive and
    GSSAPI login, credential delegation, tunnels and local commands are off in the client's effective settings."""
    assert first(ssh["client"], keyword) in NO


def assert_within(offered: str | None, allowed: set[str], what: str) -> None:
    assert offered, f"no {what}"
    listed = offered.split(",")
    assert not set(listed) - allowed, f"{what} outside the strong set: {sorted(set(listed) - allowed)}"


@pytest.mark.control("ssh-08")
def test_client_ciphers_are_strong(ssh):
    """Every cipher the client offers is in dev-sec's set (AEAD and CTR modes; no CBC, 3DES, RC4, Blowfish)."""
    assert_within(first(ssh["client"], "ciphers"), DEVSEC_CIPHERS, "client ciphers")


@pytest.mark.control("ssh-09")
def test_client_key_exchanges_are_strong(ssh):
    """Every key exchange the client offers is dev-sec's or stronger (STRONG_KEX): no SHA-1, NIST curve or
    2048-bit fixed group."""
    assert_within(first(ssh["client"], "kexalgorithms"), STRONG_KEX, "client key exchanges")


@pytest.mark.control("ssh-10")
def test_client_macs_are_strong(ssh):
    """Every MAC the client offers is in dev-sec's set (SHA-2 and UMAC-128; no SHA-1, MD5 or UMAC-64)."""
    assert_within(first(ssh["client"], "macs"), DEVSEC_MACS, "client MACs")


def assert_sshv1_option_unsupported(ssh, option: str) -> None:
    assert ssh["client_version"] >= (7, 6), ssh["client_version"]
    assert option not in ssh["client"]
    removed = [line for line in ssh["client_removed"] if option in line.lower()]
    assert removed and all("unsupported" in line.lower() for line in removed), ssh["client_removed"]


@pytest.mark.control("ssh-14")
def test_client_rhosts_rsa_authentication_cannot_be_enabled(ssh):
    """RhostsRSAAuthentication was an SSH-1 method, removed with SSH-1 (OpenSSH 7.6): the client reports the
    option unsupported when it is forced on, and its effective configuration has no such method."""
    assert_sshv1_option_unsupported(ssh, "rhostsrsaauthentication")


@pytest.mark.control("ssh-15")
def test_client_rsa_keys_authenticate_through_protocol_2_public_key_authentication(ssh):
    """RSAAuthentication was SSH-1's RSA login, removed with SSH-1 (OpenSSH 7.6) and reported unsupported;
    RSA keys log in through SSH-2 public-key authentication, which is on."""
    assert_sshv1_option_unsupported(ssh, "rsaauthentication")
    assert first(ssh["client"], "pubkeyauthentication") in YES


@pytest.mark.control("ssh-21")
def test_client_roaming_cannot_be_enabled(ssh):
    """Roaming (CVE-2016-0777/0778) was removed from the client in OpenSSH 7.2: UseRoaming=yes forced on the
    command line leaves no roaming setting in the effective configuration."""
    assert ssh["client_version"] >= (7, 2), ssh["client_version"]
    assert "useroaming" not in ssh["client"]
    assert not [line for line in ssh["client_removed"] if line.lower().startswith("useroaming ")]


@pytest.mark.control("ssh-22")
@pytest.mark.parametrize("keyword", ["ciphers", "kexalgorithms", "macs"])
def test_client_algorithms_come_from_the_ssh_configuration(ssh, keyword):
    """The algorithms the client uses are the ones written in /etc/ssh/ssh_config or its drop-ins, not a
    crypto policy's (EL includes one from 50-redhat.conf) nor the built-in defaults; ssh-08 to ssh-10 check
    that they are strong."""
    configured = client_sets(ssh, keyword)
    assert configured, f"no {keyword} in /etc/ssh/ssh_config or its drop-ins"
    assert first(ssh["client"], keyword) in configured


# ---------------------------------------------------------------- server


def sshd(ssh, key: str) -> str | None:
    return first(ssh["sshd"], key)


@pytest.mark.control("sshd-01")
def test_server_ciphers_are_strong(ssh):
    """Every cipher sshd offers is in dev-sec's set (AEAD and CTR modes; no CBC, 3DES, RC4, Blowfish)."""
    assert_within(sshd(ssh, "ciphers"), DEVSEC_CIPHERS, "sshd ciphers")


@pytest.mark.control("sshd-02")
def test_server_key_exchanges_are_strong(ssh):
    """Every key exchange sshd offers is dev-sec's or stronger (STRONG_KEX): no SHA-1, NIST curve or 2048-bit
    fixed group; the post-quantum hybrids the bundle puts first are allowed."""
    assert_within(sshd(ssh, "kexalgorithms"), STRONG_KEX, "sshd key exchanges")


@pytest.mark.control("sshd-03")
def test_server_macs_are_strong(ssh):
    """Every MAC sshd offers is in dev-sec's set (SHA-2 and UMAC-128; no SHA-1, MD5 or UMAC-64)."""
    assert_within(sshd(ssh, "macs"), DEVSEC_MACS, "sshd MACs")


@pytest.mark.control("sshd-04")
def test_ssh_directory_is_root_owned_and_only_root_writable(ssh):
    """/etc/ssh is a root:root directory that all may read and enter and only root may write."""
    entry = ssh["stat"].get("/etc/ssh")
    assert entry is not None and entry["kind"] == "directory", entry
    assert (entry["user"], entry["group"]) == ("root", "root"), entry
    assert entry["mode"] & 0o700 == 0o700, f"{entry['mode']:04o}"
    assert entry["mode"] & 0o044 == 0o044, f"{entry['mode']:04o}"
    assert entry["mode"] & 0o022 == 0, f"{entry['mode']:04o}"


@pytest.mark.control("sshd-05")
def test_sshd_config_is_readable_and_writable_by_root_only(ssh):
    """/etc/ssh/sshd_config is a root:root file of mode 0600."""
    assert_file(ssh["stat"].get("/etc/ssh/sshd_config"), "/etc/ssh/sshd_config", 0o600)


@pytest.mark.control("sshd-06")
def test_root_cannot_log_in_with_a_password(ssh):
    """PermitRootLogin is no (or prohibit-password, which the control also accepts)."""
    assert sshd(ssh, "permitrootlogin") in {"no", "prohibit-password", "without-password"}


@pytest.mark.control("sshd-07")
def test_server_port_is_specified(ssh):
    """sshd_config names the port, and sshd listens on that one port (22, or COMPLIANCE_SSH_PORT)."""
    assert ssh["sshd_config"].get("port"), "no Port in /etc/ssh/sshd_config"
    assert ssh["sshd"].get("port") == [EXPECTED_PORT]


@pytest.mark.control("sshd-08")
def test_server_address_family_is_specified(ssh):
    """sshd_config names AddressFamily, and it is inet, inet6 or any."""
    assert ssh["sshd_config"].get("addressfamily"), "no AddressFamily in /etc/ssh/sshd_config"
    assert sshd(ssh, "addressfamily") in {"inet", "inet6", "any"}


@pytest.mark.control("sshd-09")
def test_server_listen_addresses_are_specified(ssh):
    """sshd_config names its listen addresses (no blank ListenAddress), and sshd listens on those alone.
    Like dev-sec's check, this accepts the wildcard written out (the role's default, since a specific
    address missing at boot would keep sshd down); hardening_ssh_listen_addresses narrows it."""
    configured = ssh["sshd_config"].get("listenaddress") or []
    assert configured and all(value for value in configured), configured
    named = {re.sub(r"^\[?(.*?)\]?(:\d+)?$", r"\1", value.split()[0]) for value in configured}
    effective = {re.sub(r"^\[?(.*?)\]?:\d+$", r"\1", value) for value in ssh["sshd"].get("listenaddress", [])}
    assert effective and effective <= named, (effective, named)


@pytest.mark.control("sshd-10")
def test_server_speaks_protocol_2_only(ssh):
    """SSH-1 is gone from sshd (OpenSSH 7.4 dropped it): the server identifies as SSH-2.0 (a server that
    also spoke SSH-1 would say SSH-1.99), and Protocol=1 forced on the command line changes nothing."""
    assert ssh["banner"].startswith("SSH-2.0-"), ssh["banner"]
    assert "protocol" not in ssh["sshd"]
    assert not [line for line in ssh["sshd_removed"] if line.lower().startswith("protocol ")]


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        pytest.param("strictmodes", "yes", marks=pytest.mark.control("sshd-11"), id="sshd-11"),
        pytest.param("syslogfacility", "AUTH", marks=pytest.mark.control("sshd-12"), id="sshd-12"),
        pytest.param("loglevel", "VERBOSE", marks=pytest.mark.control("sshd-13"), id="sshd-13"),
        pytest.param("permituserenvironment", "no", marks=pytest.mark.control("sshd-17"), id="sshd-17"),
        pytest.param("pubkeyauthentication", "yes", marks=pytest.mark.control("sshd-22"), id="sshd-22"),
        pytest.param("ignorerhosts", "yes", marks=pytest.mark.control("sshd-23"), id="sshd-23"),
        pytest.param("ignoreuserknownhosts", "yes", marks=pytest.mark.control("sshd-24"), id="sshd-24"),
        pytest.param("hostbasedauthentication", "no", marks=pytest.mark.control("sshd-25"), id="sshd-25"),
        pytest.param("passwordauthentication", "no", marks=pytest.mark.control("sshd-27"), id="sshd-27"),
        pytest.param("permitemptypasswords", "no", marks=pytest.mark.control("sshd-28"), id="sshd-28"),
        pytest.param("kerberosauthentication", "no", marks=pytest.mark.control("sshd-30"), id="sshd-30"),
        pytest.param("kerberosorlocalpasswd", "no", marks=pytest.mark.control("sshd-31"), id="sshd-31"),
        pytest.param("kerberosticketcleanup", "yes", marks=pytest.mark.control("sshd-32"), id="sshd-32"),
        pytest.param("gssapiauthentication", "no", marks=pytest.mark.control("sshd-33"), id="sshd-33"),
        pytest.param("gssapicleanupcredentials", "yes", marks=pytest.mark.control("sshd-34"), id="sshd-34"),
        pytest.param("tcpkeepalive", "no", marks=pytest.mark.control("sshd-35"), id="sshd-35"),
        pytest.param("permittunnel", "no", marks=pytest.mark.control("sshd-38"), id="sshd-38"),
        pytest.param("allowtcpforwarding", "no", marks=pytest.mark.control("sshd-39"), id="sshd-39"),
        pytest.param("allowagentforwarding", "no", marks=pytest.mark.control("sshd-40"), id="sshd-40"),
        pytest.param("gatewayports", "no", marks=pytest.mark.control("sshd-41"), id="sshd-41"),
        pytest.param("x11forwarding", "no", marks=pytest.mark.control("sshd-42"), id="sshd-42"),
        pytest.param("x11uselocalhost", "yes", marks=pytest.mark.control("sshd-43"), id="sshd-43"),
        pytest.param("printmotd", "no", marks=pytest.mark.control("sshd-44"), id="sshd-44"),
        pytest.param("printlastlog", "no", marks=pytest.mark.control("sshd-45"), id="sshd-45"),
        pytest.param("banner", "none", marks=pytest.mark.control("sshd-46"), id="sshd-46"),
    ],
)
def test_server_setting(ssh, keyword, expected):
    """sshd's effective value of the keyword (after includes and defaults) is the one the control requires."""
    assert sshd(ssh, keyword) == expected


@pytest.mark.control("sshd-14")
def test_server_host_keys_are_specified_and_none_is_dsa(ssh):
    """sshd_config names its host keys; sshd serves exactly those, each an RSA, ECDSA or Ed25519 key in
    /etc/ssh (dev-sec's set, never DSA), present, owned by root and readable by root only."""
    configured = set(ssh["sshd_config"].get("hostkey") or [])
    effective = set(ssh["sshd"].get("hostkey") or [])
    assert configured, "no HostKey in /etc/ssh/sshd_config"
    assert effective == configured, (effective, configured)
    assert effective <= HOST_KEYS, sorted(effective - HOST_KEYS)
    for key in effective:
        assert_file(ssh["stat"].get(key), key, 0o600)
    assert "ssh-dss" not in (sshd(ssh, "hostkeyalgorithms") or "").split(",")


@pytest.mark.control("sshd-15")
def test_use_login_cannot_be_enabled(ssh):
    """UseLogin was removed in OpenSSH 7.4: UseLogin=yes forced on the command line is reported deprecated
    and leaves no UseLogin in the effective configuration."""
    assert version(ssh["banner"]) >= (7, 4), ssh["banner"]
    assert "uselogin" not in ssh["sshd"]
    assert not [line for line in ssh["sshd_removed"] if line.lower().startswith("uselogin ")]
    assert [line for line in ssh["sshd_removed"] if "uselogin" in line.lower()], ssh["sshd_removed"]


@pytest.mark.control("sshd-16")
def test_privilege_separation_cannot_be_turned_off(ssh):
    """Privilege separation is mandatory since OpenSSH 7.5: UsePrivilegeSeparation=no forced on the command
    line is reported deprecated and leaves no such setting in the effective configuration."""
    assert version(ssh["banner"]) >= (7, 5), ssh["banner"]
    assert "useprivilegeseparation" not in ssh["sshd"]
    assert not [line for line in ssh["sshd_removed"] if line.lower().startswith("useprivilegeseparation ")]
    assert [line for line in ssh["sshd_removed"] if "useprivilegeseparation" in line.lower()], ssh["sshd_removed"]


def number(ssh, key: str) -> int:
    value = sshd(ssh, key)
    assert value is not None and value.isdigit(), f"{key} = {value!r}"
    return int(value)


@pytest.mark.control("sshd-18")
def test_login_grace_time_is_at_most_30_seconds(ssh):
    """LoginGraceTime is at most 30 s (dev-sec's value) and not 0, which would mean no limit."""
    assert 0 < number(ssh, "logingracetime") <= 30


@pytest.mark.control("sshd-19")
def test_max_auth_tries_is_at_most_2(ssh):
    """MaxAuthTries is at most 2 (dev-sec's default) and at least 1."""
    assert 1 <= number(ssh, "maxauthtries") <= 2


@pytest.mark.control("sshd-20")
def test_max_sessions_is_at_most_10(ssh):
    """MaxSessions is at most 10 (dev-sec's value) and at least 1."""
    assert 1 <= number(ssh, "maxsessions") <= 10


@pytest.mark.control("sshd-21")
def test_max_startups_limits_unauthenticated_connections(ssh):
    """MaxStartups is no looser than dev-sec's 10:30:100: random drops start at 10 or fewer unauthenticated
    connections, with at least a 30 % chance, and every one is refused at 100 or fewer."""
    value = sshd(ssh, "maxstartups") or ""
    parts = [int(part) for part in value.split(":")]
    start, rate, full = parts if len(parts) == 3 else (parts[0], 100, parts[0])
    assert start <= 10 and rate >= 30 and full <= 100, value


@pytest.mark.control("sshd-29")
def test_challenge_response_authentication_is_off(ssh):
    """ChallengeResponseAuthentication is no. Since OpenSSH 8.7 it is an alias of KbdInteractiveAuthentication,
    which sshd -T prints instead; whichever the release prints is no."""
    keys = ("challengeresponseauthentication", "kbdinteractiveauthentication")
    printed = [ssh["sshd"][key][0] for key in keys if key in ssh["sshd"]]
    assert printed and set(printed) == {"no"}, printed


@pytest.mark.control("sshd-36")
def test_client_alive_interval_is_at_most_300_seconds(ssh):
    """ClientAliveInterval is at most 300 s (dev-sec's value) and not 0, which would turn the probes off."""
    assert 0 < number(ssh, "clientaliveinterval") <= 300


@pytest.mark.control("sshd-37")
def test_client_alive_count_max_is_at_most_3(ssh):
    """ClientAliveCountMax is at most 3 (dev-sec's value) and at least 1 (0 never disconnects)."""
    assert 1 <= number(ssh, "clientalivecountmax") <= 3


@pytest.mark.control("sshd-47")
def test_server_version_string_does_not_name_the_distribution(ssh):
    """The identification string is SSH-2.0-OpenSSH_x.y with no distribution release after it. On Debian and
    Ubuntu that takes DebianBanner no (set in sshd_config, and effective where sshd -T prints it); elsewhere
    sshd_config does not mention DebianBanner, which those builds do not know."""
    assert re.fullmatch(r"SSH-2\.0-OpenSSH_[0-9A-Za-z.]+", ssh["banner"]), ssh["banner"]
    if {"debian", "ubuntu"} & set(ssh["os"]):
        assert ssh["sshd_config"].get("debianbanner") == ["no"]
        assert sshd(ssh, "debianbanner") in (None, "no")
    else:
        assert "debianbanner" not in ssh["sshd_config"]


@pytest.mark.control("sshd-48")
def test_dh_group_exchange_primes_are_at_least_2048_bits(ssh):
    """Every prime in /etc/ssh/moduli is at least 2048 bits (the file lists size - 1, so at least 2047)."""
    assert ssh["moduli"], f"no primes read from /etc/ssh/moduli: {ssh['moduli_raw']}"
    assert min(ssh["moduli"]) >= 2047, sorted(set(ssh["moduli"]))


@pytest.mark.control("sshd-49")
def test_no_crypto_policy_overrides_sshd_config_on_the_command_line(ssh):
    """The running sshd (the process in its pid file) was started without -oCiphers, -oMACs, -oKexAlgorithms
    or -oHostKeyAlgorithms (EL 8's crypto policy), so sshd_config's algorithms are the ones in force."""
    assert "sshd" in ssh["listener"], f"no sshd listener found: {ssh['listener']!r}"
    overrides = re.findall(r"-o\s*(Ciphers|MACs|KexAlgorithms|HostKeyAlgorithms)", ssh["listener"], re.I)
    assert not overrides, ssh["listener"]
