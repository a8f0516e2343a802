"""What the hardening role makes of a host: SSH, updates, sysctl, and the lockout guard."""

from __future__ import annotations

import json
import os
import re

import pytest
import testinfra
from conftest import converge

OPERATOR = "operator-test"  # created with a key by converge.yml, allowed by molecule.yml
OPERATOR_KEY = "/root/operator-test_ed25519"
SSH_OPTS = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10"


@pytest.fixture(scope="module")
def peer(host):
    """The scenario's other container: a client of this host's sshd from outside."""
    everyone = testinfra.get_hosts([f"ansible://all?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}"])
    return next(h for h in everyone if h.backend.get_hostname() != host.backend.get_hostname())


@pytest.fixture(scope="module")
def client(host, peer):
    """The peer holding this host's operator key: returns ssh(user, extra options) -> result."""
    key = host.file(OPERATOR_KEY).content_string
    path = f"/tmp/key-of-{host.backend.get_hostname()}"
    peer.run(f"install -m 0600 /dev/null {path}")
    peer.run(f"cat > {path} <<'EOF'\n{key}EOF")
    address = host.interface("eth0").addresses[0]

    def ssh(user: str, options: str = "", key_file: str = path):
        return peer.run(f"ssh {SSH_OPTS} {options} -i {key_file} {user}@{address} true")

    yield ssh
    peer.run(f"rm -f {path}")


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("permitrootlogin", "no"),
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("pubkeyauthentication", "yes"),
        ("authenticationmethods", "publickey"),
        ("allowgroups", "ssh-users"),
        ("permitemptypasswords", "no"),
        ("x11forwarding", "no"),
        ("allowtcpforwarding", "no"),
        ("maxauthtries", "2"),
        ("loglevel", "VERBOSE"),
    ],
)
def test_sshd_effective_setting(host, keyword, expected):
    # sshd -T prints what the daemon would use after every include and default.
    effective = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert effective[keyword] == expected


def test_sshd_offers_only_modern_algorithms(host):
    effective = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    kex = effective["kexalgorithms"].split(",")
    ciphers = effective["ciphers"].split(",")
    macs = effective["macs"].split(",")
    assert kex[0] in ("sntrup761x25519-sha512@openssh.com", "mlkem768x25519-sha256")
    assert not [k for k in kex if "sha1" in k or "nistp" in k or k.endswith("group14-sha256")]
    assert not [c for c in ciphers if "cbc" in c or "3des" in c or "arcfour" in c]
    assert all("-etm@openssh.com" in m for m in macs), macs
    assert not [m for m in macs if "sha1" in m or "md5" in m]


def test_sshd_config_is_root_only_and_running(host):
    config = host.file("/etc/ssh/sshd_config")
    assert config.user == "root"
    assert config.mode == 0o600
    assert "Ansible managed" in config.content_string
    assert host.service("ssh").is_running


def test_allowed_user_logs_in_with_its_key(client):
    login = client(OPERATOR)
    assert login.rc == 0, login.stderr


def test_password_login_is_not_offered(client):
    # The server lists the methods it still accepts: publickey alone.
    attempt = client(OPERATOR, "-o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive")
    assert attempt.rc != 0
    assert "Permission denied (publickey)" in attempt.stderr, attempt.stderr


def test_root_cannot_log_in_even_with_an_authorized_key(host, client):
    host.run(f"install -d -m 0700 /root/.ssh && cp {OPERATOR_KEY}.pub /root/.ssh/authorized_keys")
    try:
        attempt = client("root")
    finally:
        host.run("rm -f /root/.ssh/authorized_keys")
    assert attempt.rc != 0
    assert "Permission denied" in attempt.stderr


def test_user_outside_the_ssh_group_cannot_log_in_with_a_key(host, client):
    host.run("id outsider-test >/dev/null 2>&1 || useradd -m -s /bin/bash outsider-test")
    host.run(
        f"install -d -m 0700 -o outsider-test /home/outsider-test/.ssh && "
        f"install -m 0600 -o outsider-test {OPERATOR_KEY}.pub /home/outsider-test/.ssh/authorized_keys"
    )
    try:
        attempt = client("outsider-test")
    finally:
        host.run("userdel -r outsider-test")
    assert attempt.rc != 0
    assert "Permission denied" in attempt.stderr


def test_guard_refuses_when_no_allowed_user_has_a_key(host):
    host.run("id nokey-test >/dev/null 2>&1 || useradd -m -s /bin/bash nokey-test")
    before = host.file("/etc/ssh/sshd_config").sha256sum
    try:
        result, output = converge(
            host, "--tags", "hardening_ssh", "-e", json.dumps({"hardening_ssh_allowed_users": ["nokey-test"]})
        )
    finally:
        host.run("userdel -r nokey-test")
    assert result.returncode != 0, output[-3000:]
    assert "Not disabling SSH password login" in output, output[-3000:]
    assert "no user of hardening_ssh_allowed_users has an authorized key" in output
    assert "hardening_ssh_lockout_guard" in output
    assert host.file("/etc/ssh/sshd_config").sha256sum == before


def test_guard_passes_and_says_why_when_nobody_may_log_in_over_ssh(host):
    # Ansible reaches this host through docker exec, not sshd; with no
    # allowed user there is no SSH login that key-only could take away.
    result, output = converge(
        host, "--check", "--tags", "hardening_ssh", "-e", json.dumps({"hardening_ssh_allowed_users": []})
    )
    assert result.returncode == 0, output[-3000:]
    # The connection as the inventory names it (.config/molecule/config.yml: docker).
    assert re.search(r"Ansible does not connect through sshd \((community\.docker\.)?docker\)", output), output[-3000:]
    assert "no account may log in over SSH (hardening_ssh_allowed_users is empty)" in output


def test_guard_refuses_when_the_allowed_users_key_is_gone(host):
    keys = f"/home/{OPERATOR}/.ssh/authorized_keys"
    host.run(f"mv {keys} {keys}.held")
    try:
        result, output = converge(host, "--tags", "hardening_ssh")
    finally:
        host.run(f"mv {keys}.held {keys}")
    assert result.returncode != 0, output[-3000:]
    assert "no user of hardening_ssh_allowed_users has an authorized key" in output, output[-3000:]


def test_guard_lets_password_login_stay_on_without_checking(host):
    # With password login allowed there is nothing to guard; check mode shows
    # that the role would write PasswordAuthentication yes.
    result, output = converge(
        host,
        "--check",
        "--diff",
        "--tags",
        "hardening_ssh",
        "-e",
        json.dumps({"hardening_ssh_password_authentication": True, "hardening_ssh_allowed_users": []}),
    )
    assert result.returncode == 0, output[-3000:]
    assert "+PasswordAuthentication yes" in result.stdout, result.stdout[-3000:]
    assert "Not disabling SSH password login" not in output


def test_broken_sshd_setting_is_refused_before_reload(host):
    before = host.file("/etc/ssh/sshd_config").sha256sum
    pid = host.check_output("systemctl show -p MainPID --value ssh")
    result, output = converge(
        host, "--tags", "hardening_ssh", "-e", json.dumps({"hardening_ssh_ciphers": ["no-such-cipher"]})
    )
    assert result.returncode != 0
    assert "failed to validate" in output, output[-3000:]
    assert host.file("/etc/ssh/sshd_config").sha256sum == before
    assert host.check_output("systemctl show -p MainPID --value ssh") == pid


def test_sysctl_hardening_is_written_but_not_applied_in_a_container(host):
    assert host.run("systemd-detect-virt --container").rc == 0
    live = host.check_output("cat /proc/sys/net/ipv4/tcp_timestamps")
    result, output = converge(host, "--tags", "hardening_sysctl")
    assert result.returncode == 0, output[-3000:]
    assert "sysctl hardening not applied: this host is a container (docker)" in " ".join(output.split()), output[-3000:]
    conf = host.file("/etc/sysctl.d/90-procurement-hardening.conf")
    assert conf.mode == 0o644 and conf.user == "root"
    assert "net.ipv4.tcp_timestamps = 0" in conf.content_string.splitlines()
    assert "kernel.randomize_va_space = 2" in conf.content_string.splitlines()
    # The machine's kernel is left as it was.
    assert host.check_output("cat /proc/sys/net/ipv4/tcp_timestamps") == live


def test_unattended_upgrades_run_daily_with_security_origins_only(host):
    dump = host.check_output("apt-config dump")
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    origins = re.findall(r'^Unattended-Upgrade::Origins-Pattern:: "([^"]+)";', dump, re.M)
    assert origins, dump
    assert all("label=Debian-Security" in origin for origin in origins), origins
    assert not re.search(r"^Unattended-Upgrade::Allowed-Origins::", dump, re.M)
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump


def test_unattended_upgrade_dry_run_uses_the_security_origins(host):
    # The package timers are enabled; a daily job that happens to run now
    # holds the apt lock the dry run needs, so let it finish first.
    idle = host.run(
        "for i in $(seq 150); do systemctl is-active -q apt-daily.service apt-daily-upgrade.service || exit 0; "
        "sleep 2; done; exit 1"
    )
    assert idle.rc == 0, "apt-daily jobs still running after 5 minutes"
    run = host.run("unattended-upgrade --dry-run --debug")
    assert run.rc == 0, run.stderr[-2000:]
    allowed = re.search(r"^Allowed origins are: (.*)$", run.stdout + run.stderr, re.M)
    assert allowed, (run.stdout + run.stderr)[-2000:]
    assert "-security" in allowed.group(1)
    assert all("Debian-Security" in origin for origin in allowed.group(1).split(", "))


@pytest.mark.parametrize("timer", ["apt-daily.timer", "apt-daily-upgrade.timer"])
def test_package_timers_are_enabled(host, timer):
    assert host.service(timer).is_enabled


def test_fail2ban_when_enabled_watches_sshd(host):
    # Off by default; switched on here for this host only, then checked live.
    result, output = converge(
        host, "--tags", "hardening_fail2ban", "-e", json.dumps({"hardening_fail2ban_enabled": True})
    )
    assert result.returncode == 0, output[-3000:]
    status = host.run("fail2ban-client status sshd")
    assert status.rc == 0, status.stderr
    assert "Currently banned" in status.stdout
    jail = host.check_output("fail2ban-client get sshd maxretry")
    assert jail.strip() == "5"
