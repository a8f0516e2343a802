"""The harness boots real systemd hosts."""


def test_systemd_is_pid_one_and_running(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running"


def test_marker(host):
    assert host.file("/etc/harness-marker").content_string == "ok\n"
