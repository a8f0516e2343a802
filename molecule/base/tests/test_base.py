"""What the base role guarantees on a host, and what it refuses to touch."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
from conftest import converge

RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)\s+.*?failed=(?P<failed>\d+)", re.M)


def run_converge(host, extra_vars: dict) -> tuple[subprocess.CompletedProcess, str]:
    """Run this scenario's converge playbook against one host with overrides."""
    return converge(host, "-e", json.dumps(extra_vars))


def test_preflight_names_every_missing_resource_and_changes_nothing(host):
    result, output = run_converge(
        host,
        {"base_min_cpu_cores": 512, "base_min_memory_mb": 64 * 1024 * 1024, "base_min_disk_gb": 1024 * 1024},
    )
    assert result.returncode != 0, output[-3000:]
    assert "does not meet the requirements" in output, output[-3000:]
    for phrase in (
        "CPU cores",
        "base_min_cpu_cores",
        "memory",
        "base_min_memory_mb",
        "disk size: the filesystem on",
        "base_min_disk_gb",
    ):
        assert phrase in output, f"{phrase!r} missing from:\n{output[-3000:]}"
    # The OS is supported, so it must not be blamed.
    assert "base_supported_os" not in output
    recap = {m["host"]: (int(m["changed"]), int(m["failed"])) for m in RECAP.finditer(result.stdout)}
    assert recap == {host.backend.get_hostname(): (0, 1)}, result.stdout[-3000:]


def test_preflight_measures_the_disk_not_its_free_space_and_warns_when_it_runs_low(host):
    """The manual's 100 GB is a disk: a filesystem of that size passes however full it is, with a warning."""
    size, avail = (int(n) for n in host.check_output("df -B1 --output=size,avail /opt | tail -n 1").split())
    assert avail < size
    # The filesystem's own size (decimal GB), which its free space falls short of.
    figure = size // 1000**3
    extra = {"base_min_disk_gb": figure, "base_warn_free_disk_gb": figure + 1}
    result, output = converge(host, "--tags", "base_preflight", "-e", json.dumps(extra))
    assert result.returncode == 0, output[-3000:]
    assert f"below base_warn_free_disk_gb {figure + 1} GB" in output, output[-3000:]
    assert "WARNING:" in output
    # Above 95% of the filesystem's size, it is refused, naming the variable.
    result, output = run_converge(host, {"base_min_disk_gb": int(figure / 0.95) + 2})
    assert result.returncode != 0
    assert "disk size: the filesystem on" in output and "(base_min_disk_gb)" in output, output[-3000:]


def test_the_old_free_space_setting_is_refused_by_name(host):
    result, output = run_converge(host, {"base_min_free_disk_gb": 100})
    assert result.returncode != 0
    assert "base_min_free_disk_gb is gone: base_min_disk_gb is the size of the filesystem" in output, output[-3000:]


def test_preflight_rejects_an_unsupported_os_by_name(host):
    result, output = run_converge(host, {"base_supported_os": {"Ubuntu": ["24.04"]}})
    version = host.ansible("setup", "filter=ansible_distribution_version")["ansible_facts"][
        "ansible_distribution_version"
    ]
    assert result.returncode != 0, output[-3000:]
    assert f"operating system: Debian {version} is not supported (base_supported_os)" in output, output[-3000:]
    assert "base_min_cpu_cores" not in output


def test_app_user_is_a_system_account_without_login_shell(host):
    entry = host.run("getent passwd procurement")
    assert entry.rc == 0
    _name, _pw, uid, gid, _gecos, home, shell = entry.stdout.strip().split(":")
    assert shell == "/bin/false"
    assert home == "/opt/procurement"
    # System accounts are numbered below UID_MIN, where regular users start.
    uid_min = re.search(r"^UID_MIN\s+(\d+)", host.file("/etc/login.defs").content_string, re.M)
    assert int(uid) < int(uid_min.group(1) if uid_min else 1000)
    assert host.run("getent group procurement").stdout.split(":")[2] == gid


def test_app_user_cannot_log_in(host):
    # Even root's su, which needs no password, ends in /bin/false.
    assert host.run("su procurement -c true").rc != 0
    # And there is no password to log in with.
    assert host.run("passwd -S procurement").stdout.split()[1] == "L"


@pytest.mark.parametrize(
    ("path", "owner", "mode"),
    [
        ("/opt/procurement", "procurement", 0o755),
        ("/var/log/procurement", "procurement", 0o750),
        ("/opt/scripts", "root", 0o755),
    ],
)
def test_directories_have_owner_and_mode(host, path, owner, mode):
    directory = host.file(path)
    assert directory.is_directory
    assert directory.user == owner
    assert directory.group == owner
    assert directory.mode == mode


def test_app_user_can_write_its_logs_and_others_cannot_read_them(host):
    probe = "/var/log/procurement/probe.log"
    write = host.run(f"su -s /bin/sh procurement -c 'echo ok > {probe}'")
    assert write.rc == 0, write.stderr
    other = host.run(f"su -s /bin/sh nobody -c 'cat {probe}'")
    assert other.rc != 0
    host.run(f"rm -f {probe}")


def test_nginx_like_user_can_read_static_files_under_app_home(host):
    # nginx runs as another unprivileged user and serves /opt/procurement/static.
    assert host.run("su -s /bin/sh nobody -c 'ls /opt/procurement'").rc == 0


def test_logrotate_config_is_valid(host):
    check = host.run("logrotate -d /etc/logrotate.d/procurement")
    assert check.rc == 0, check.stderr
    assert "error" not in check.stderr.lower()


def test_logrotate_rotates_app_log_in_place(host):
    log = "/var/log/procurement/procurement.log"
    state = "/tmp/logrotate-test.state"
    host.run(f"rm -f {log}* {state}")
    host.run(f"su -s /bin/sh procurement -c 'echo level=INFO first > {log}'")
    first = host.run(f"logrotate -f -s {state} /etc/logrotate.d/procurement")
    assert first.rc == 0, first.stderr
    # copytruncate: the file the app holds open stays and is emptied.
    assert host.file(log).exists and host.file(log).size == 0
    rotated = host.file(f"{log}.1")
    assert rotated.content_string.strip() == "level=INFO first"
    assert rotated.user == "procurement"
    host.run(f"su -s /bin/sh procurement -c 'echo second >> {log}'")
    second = host.run(f"logrotate -f -s {state} /etc/logrotate.d/procurement")
    assert second.rc == 0, second.stderr
    # delaycompress: the previous rotation is compressed one cycle later.
    assert host.file(f"{log}.2.gz").exists
    host.run(f"rm -f {log}* {state}")


def test_time_sync_is_enabled_and_runs_outside_containers(host):
    # base-debian13 runs EL's daemon, chrony (molecule.yml); on Debian it replaces systemd-timesyncd.
    unit, other = (
        ("chrony", "systemd-timesyncd")
        if host.backend.get_hostname().endswith("13")
        else ("systemd-timesyncd", "chrony")
    )
    assert host.package(unit).is_installed and not host.package(other).is_installed
    assert host.service(unit).is_enabled
    container = host.run("systemd-detect-virt --container").rc == 0
    if container:
        # The unit refuses containers by its own condition; it must not be failed.
        show = host.run(f"systemctl show -p ConditionResult -p ActiveState {unit}").stdout
        assert "ConditionResult=no" in show
        assert "ActiveState=inactive" in show
    else:
        assert host.service(unit).is_running


@pytest.mark.parametrize(
    "command", ["netstat -tlnp", "iostat 1 1", "htop --version", "curl --version", "rsync --version"]
)
def test_troubleshooting_tools_work(host, command):
    result = host.run(command)
    assert result.rc == 0, result.stderr


def test_app_user_can_build_a_virtualenv(host):
    # python3-venv is what the app role will need; acl lets Ansible become the user.
    result = host.run("su -s /bin/sh procurement -c 'python3 -m venv /tmp/venv-probe && /tmp/venv-probe/bin/python -V'")
    assert result.rc == 0, result.stderr
    host.run("rm -rf /tmp/venv-probe")


def test_timezone_is_the_configured_one(host):
    assert host.file("/etc/localtime").linked_to.endswith("/zoneinfo/Europe/Berlin")


def test_the_manuals_system_log_receives_what_the_journal_receives(host):
    """The manual's troubleshooting reads /var/log/syslog: a line sent to the journal lands there."""
    assert host.service("rsyslog").is_enabled and host.service("rsyslog").is_running
    marker = f"procurement-syslog-probe-{uuid.uuid4().hex}"
    host.check_output(f"logger -t procurement-test {marker}")
    host.check_output(f"systemd-cat -t procurement-test echo journal-{marker}")
    seen = host.run(
        f"for _ in $(seq 1 30); do [ $(grep -c -e {marker} /var/log/syslog) -ge 2 ] && break; sleep 1; done;"
        f" grep -c -e {marker} /var/log/syslog"
    )
    assert seen.stdout.strip() == "2", host.run("tail -n 20 /var/log/syslog").stdout
    assert host.file("/var/log/syslog").mode & 0o007 == 0
