"""An all-in-one host deployed by site.yml: its state, and the service working through Nginx."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import (
    SERVER_NAME,
    TARGETS,
    Api,
    concurrent_writes,
    failed_units,
    playbook,
    purchasing_flow,
    stop_postgresql,
    too_many_clients,
    wait_ready,
)

SERVICES = ["postgresql", "redis-server", "nginx", "procurement.service"]


def requests_counted(host) -> dict[tuple[str, str, str], float]:
    """http_requests_total from the app's /metrics, by (method, endpoint, status)."""
    metrics = host.check_output("curl -fsS http://127.0.0.1:8000/metrics")
    counted = {}
    for labels, value in re.findall(r"^http_requests_total\{([^}]*)\} (\S+)$", metrics, re.M):
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counted[(label["method"], label["endpoint"], label["status"])] = float(value)
    return counted


def test_env_file_is_readable_only_by_the_service(host):
    env = host.file("/opt/procurement/.env")
    assert env.user == "procurement"
    assert env.group == "procurement"
    assert env.mode == 0o640


def test_service_account_has_no_login_shell(host):
    user = host.user("procurement")
    assert user.shell in ("/bin/false", "/usr/sbin/nologin")
    assert host.file("/opt/procurement").user == "procurement"


@pytest.mark.parametrize("unit", SERVICES)
def test_services_are_enabled_and_running(host, unit):
    service = host.service(unit)
    assert service.is_enabled
    assert service.is_running


def test_the_host_boots_clean_and_serves_again_after_a_restart(host):
    """After the converge, and after the whole host restarts, systemd reports `running` with no failed
    unit (nothing installed that fails on a host without IPMI or NVMe), and the app is ready again."""
    assert failed_units(host) == ("running", "")
    name = host.backend.get_hostname()
    container = TARGETS.get(name, {}).get("address", name)
    subprocess.run(["docker", "restart", "--time", "60", container], check=True, capture_output=True, timeout=180)
    # Every service comes back on its own (the later tests need them), then the state is read.
    ready = host.run(
        "timeout 240 sh -c 'until curl -sfk -o /dev/null --resolve "
        f"{SERVER_NAME}:443:127.0.0.1 https://{SERVER_NAME}/health/ready; do sleep 2; done'"
    )
    assert ready.rc == 0, "the app did not come back through nginx after the host restarted"
    assert failed_units(host) == ("running", "")


def test_only_ssh_http_and_https_listen_beyond_loopback(host):
    exposed = set()
    for socket in host.socket.get_listening_sockets():
        match = re.match(r"tcp://(.+):(\d+)$", socket)
        if not match:
            continue
        address, port = match.groups()
        if address in ("127.0.0.1", "::1") or address.startswith("127."):
            continue
        exposed.add(int(port))
    assert exposed <= {22, 80, 443}, f"listening beyond loopback: {sorted(exposed)}"
    assert {80, 443} <= exposed


def test_service_unit_exposure_is_at_most_2_5(host):
    out = host.check_output("systemd-analyze security procurement.service --no-pager")
    score = float(re.search(r"Overall exposure level for procurement\.service: ([0-9.]+)", out).group(1))
    assert score <= 2.5, out[-1500:]


def test_purchasing_flow_through_nginx_changes_supplier_performance(host, api, people):
    counted_before = requests_counted(host)

    def check_before(supplier):
        before = api.ok("GET", f"/suppliers/{supplier['id']}/performance", people["approver"])
        assert before["completed_orders"] == 0

    supplier, _ = purchasing_flow(api, people, before_receipt=check_before)
    after = api.ok("GET", f"/suppliers/{supplier['id']}/performance", people["approver"])
    assert after["completed_orders"] == 1
    assert after["on_time_delivery_rate"] == 1.0

    # The app's own /metrics (read on the host, where it is allowed) counted
    # each of the flow's seven writes once, at its own endpoint and with the
    # status it answered, and the two reads of the supplier's performance.
    counted = requests_counted(host)
    delta = {
        key: counted[key] - counted_before.get(key, 0) for key in counted if counted[key] != counted_before.get(key)
    }
    writes = {key: n for key, n in delta.items() if key[0] == "POST"}
    assert sorted(writes.values()) == [1] * 7, delta
    assert len({endpoint for _, endpoint, _ in writes}) == 7, delta
    assert sorted(status for _, _, status in writes) == ["200", "200", "201", "201", "201", "201", "201"], delta
    reads = {key: n for key, n in delta.items() if key[0] == "GET" and key[1].endswith("performance")}
    assert list(reads.values()) == [2] and next(iter(reads))[2] == "200", delta


def test_metrics_are_refused_from_outside(host, peer):
    address = host.interface("eth0").addresses[0]
    through_nginx = peer.run(
        f"curl -sk --resolve {SERVER_NAME}:443:{address} -o /dev/null -w '%{{http_code}}' https://{SERVER_NAME}/metrics"
    )
    assert through_nginx.stdout in ("403", "404")
    direct = peer.run(f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/8000'")
    assert direct.rc != 0


def test_static_files_are_cached_for_a_year_and_immutable(host):
    css = host.check_output("ls /opt/procurement/static | grep -E '\\.[0-9a-f]{8,}\\.css$' | head -1")
    headers = host.check_output(f"curl -skI --resolve {SERVER_NAME}:443:127.0.0.1 https://{SERVER_NAME}/static/{css}")
    assert re.search(r"^HTTP/\S+ 200", headers, re.M)
    assert re.search(r"^cache-control: .*public.*immutable", headers, re.M | re.I)
    assert re.search(r"^cache-control: .*max-age=31536000", headers, re.M | re.I)


def test_http_redirects_to_https(host):
    headers = host.check_output(f"curl -sI --resolve {SERVER_NAME}:80:127.0.0.1 http://{SERVER_NAME}/api/v1/suppliers")
    assert re.search(r"^HTTP/\S+ 301", headers, re.M)
    assert re.search(r"^location: https://", headers, re.M | re.I)


# The operations manual's commands, as written there.
def test_manual_systemctl_status_shows_the_service_running(host):
    out = host.run("systemctl status procurement.service --no-pager")
    assert out.rc == 0
    assert "active (running)" in out.stdout


def test_manual_config_validate_line_works_in_the_app_directory(host):
    out = host.run(
        'cd /opt/procurement && python3 -c "from config_manager import ConfigManager; print(ConfigManager().validate())"'
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_tier_group_typo_stops_site_yml_before_this_host_changes(host):
    """With `web` misspelt `wbe`, site.yml once closed 80 and 443 (the firewall removes the rules it no longer
    lists) and ended with rc 0: its first play stops the run, the firewall keeps its rules and the site answers."""
    source = Path(os.environ["MOLECULE_INVENTORY_FILE"])
    inventory = yaml.safe_load(source.read_text())
    inventory["wbe"] = inventory.pop("web")
    rules = host.check_output("ufw status numbered")
    typo = source.with_name("typo_inventory.yml")  # beside the original, so its group_vars apply
    typo.write_text(yaml.safe_dump(inventory))
    try:
        result = subprocess.run(
            [
                "ansible-playbook",
                "-i",
                str(typo),
                playbook("site"),
                "--limit",
                host.backend.get_hostname(),
            ],
            env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        typo.unlink()
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, said[-3000:]
    assert "group web: no hosts, but the inventory has wbe: rename it to web" in said, said[-3000:]
    assert "Gathering Facts" not in said
    assert host.check_output("ufw status numbered") == rules
    answered = host.run(
        f"curl -sk --resolve {SERVER_NAME}:443:127.0.0.1 -o /dev/null -w '%{{http_code}}' https://{SERVER_NAME}/health/ready"
    )
    assert answered.stdout == "200"


def test_manual_port_check_finds_port_8000(host):
    out = host.run("netstat -tlnp | grep 8000")
    assert out.rc == 0
    assert "127.0.0.1:8000" in out.stdout


def test_manual_journalctl_shows_the_service_log(host):
    out = host.run("journalctl -u procurement.service --no-pager -n 20")
    assert out.rc == 0
    assert "procurement" in out.stdout.lower()


def test_no_socket_unit_of_earlier_versions_is_left(host):
    assert not host.file("/etc/systemd/system/procurement.socket").exists
    assert host.run("systemctl cat procurement.socket").rc != 0


def test_manual_stop_keeps_the_app_stopped_until_the_manual_start(host):
    """After `systemctl stop procurement.service` no connection starts it again: the port is closed and
    nginx answers a JSON 503; `systemctl start` brings it back."""
    api = Api(host)
    host.check_output("systemctl stop procurement.service")
    try:
        for _ in range(5):
            direct = host.run("curl -s -o /dev/null --max-time 5 http://127.0.0.1:8000/health/live")
            assert direct.rc == 7, direct  # curl: could not connect
            status, payload = api.call("GET", "/api/v1/suppliers")
            assert status == 503 and payload["error"]["code"] == "service_unavailable", payload
            time.sleep(1)
        assert host.run("systemctl is-active procurement.service").stdout.strip() == "inactive"
        assert ":8000 " not in host.check_output("ss -Hltn")
    finally:
        host.check_output("systemctl start procurement.service")
    wait_ready(host)


def test_a_restart_refuses_no_connection_and_writes_its_lines_to_the_app_log(host):
    """The manual's restart keeps the port: connections made meanwhile wait and are answered. Its lines
    reach /var/log/procurement/procurement.log (where the manual looks first) at INFO."""
    log = "/var/log/procurement/procurement.log"
    before = int(host.check_output(f"wc -l < {log}"))
    probes = host.check_output(
        "(for i in $(seq 40); do curl -s -o /dev/null -w '%{http_code}\\n' --max-time 60"
        " http://127.0.0.1:8000/health/live; sleep 0.1; done > /tmp/restart-probes) &"
        " sleep 1; systemctl restart procurement.service; wait; cat /tmp/restart-probes"
    ).split()
    assert probes == ["200"] * 40, probes
    workers = int(re.search(r"^PROCUREMENT_WORKERS=(\d+)$", host.file("/opt/procurement/.env").content_string, re.M)[1])
    deadline = time.monotonic() + 60
    while True:
        new = host.check_output(f"tail -n +{before + 1} {log}")
        messages = [json.loads(line)["message"] for line in new.splitlines() if '"procurement.lifecycle"' in line]
        starts = [i for i, m in enumerate(messages) if m.startswith("starting procurement ")]
        booted = sum(m.endswith(" booted") for m in messages[starts[-1] :]) if starts else 0
        if booted >= workers or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert any(m.startswith("procurement ") and m.endswith(" stopped") for m in messages), messages
    assert any(m.startswith("starting procurement ") and "configuration check: ok" in m for m in messages), messages
    assert booted == workers == 9, messages
    assert any(" ready on 127.0.0.1:8000" in m for m in messages), messages


def test_starts_log_no_error_and_gunicornc_reaches_the_running_service(host):
    """gunicorn's control socket lives in the unit's runtime directory: no start logs an error for it (its
    default, under the read-only home, failed at every start), and an operator's gunicornc sees the workers."""
    journal = host.check_output("journalctl -u procurement.service -b --no-pager -o cat")
    assert "Control server error" not in journal
    socket = "/run/procurement/control/gunicorn.ctl"
    assert host.file(socket).is_socket and host.file(socket).user == "procurement"
    shown = host.run(f"/opt/procurement/current/venv/bin/gunicornc -s {socket} -c 'show workers' -j")
    assert shown.rc == 0, shown.stderr
    assert json.loads(shown.stdout)["count"] == 9, shown.stdout


@pytest.fixture(scope="module")
def database_outage(host, people):
    """PostgreSQL stopped under the running app, a write sent through Nginx, then started again.

    Module-scoped: the outage test reads what happened, and the manual's log
    greps find the lines it left, whichever of them runs first.
    """
    api = Api(host)
    pid_before = host.check_output("systemctl show -p MainPID --value procurement.service")
    name = f"Outage Ltd {time.time()}"
    stop_postgresql(host)
    try:
        # A write cannot be answered from the cache.
        status, payload = api.call(
            "POST",
            "/api/v1/suppliers",
            people["buyer"],
            {"name": name, "category": "office", "contact": "o@example.com"},
        )
    finally:
        host.check_output("systemctl start postgresql")
    for _ in range(30):
        if api.call("GET", "/health/ready")[0] == 200:
            break
        time.sleep(1)
    return {"status": status, "payload": payload, "name": name, "pid_before": pid_before}


def test_database_outage_answers_503_and_recovers_without_restart(host, api, people, database_outage):
    assert database_outage["status"] == 503, database_outage["payload"]
    assert database_outage["payload"]["error"]["code"] == "database_unavailable"
    listed = api.ok("GET", "/suppliers?per_page=100", people["buyer"])
    assert database_outage["name"] not in [supplier["name"] for supplier in listed["items"]]
    pid_after = host.check_output("systemctl show -p MainPID --value procurement.service")
    assert pid_after == database_outage["pid_before"]


def test_manual_log_greps_find_errors_and_slow_requests(host, database_outage):
    log = "/var/log/procurement/procurement.log"
    assert host.file(log).exists
    errors = host.run(f'grep -i "error\\|exception\\|failed" {log}')
    assert errors.rc == 0 and "database error" in errors.stdout, "the database outage left no error line"
    # Every request is slow in this scenario (app_slow_request_seconds), the outage's write too.
    slow = host.run(f'grep "slow" {log}')
    assert slow.rc == 0 and "slow request POST /api/v1/suppliers" in slow.stdout, "no request was logged as slow"


def test_manual_access_log_awk_counts_api_calls(host):
    out = host.check_output("awk '{print $6 $7}' /var/log/nginx/access.log | sort | uniq -c | sort -nr")
    assert re.search(r'^\s*\d+ "POST/api/v1/requests', out, re.M), out[:1500]


def test_nine_workers_take_64_concurrent_writers_without_running_out_of_connections(host, secrets):
    """The manual's 4-CPU host runs 9 workers (app_workers in group_vars/all/stack.yml); max_connections fits them all."""
    env = host.file("/opt/procurement/.env").content_string
    assert "PROCUREMENT_WORKERS=9" in env and "PROCUREMENT_DB_POOL_MAX=5" in env
    max_connections = int(host.check_output("runuser -u postgres -- psql -tA -c 'show max_connections'"))
    # 9 workers x 5, and 12 reserved: superuser 3, monitoring 2, migrations 1, operators 5, one backup host.
    assert max_connections == 9 * 5 + 12
    refused_before = too_many_clients(host)
    counts = concurrent_writes(host, "http://127.0.0.1:8000", secrets["vault_app_admin_token"], clients=64, seconds=10)
    # The counts reach the run's log (pytest's warnings summary) for the record.
    warnings.warn(f"{host.backend.get_hostname()}: 64 writers for 10 s straight at gunicorn: {counts}", stacklevel=1)
    assert counts.get("201", 0) > 64, counts
    assert set(counts) == {"201"}, counts
    assert too_many_clients(host) == refused_before
