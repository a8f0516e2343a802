"""The first play of every entry playbook stops a run that would do harm or nothing, before any host is touched."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
_spec = importlib.util.spec_from_file_location(
    "topology", ROOT / "ansible_collections/procurement/ops/plugins/filter/topology.py"
)
topology = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(topology)
ENTRY_PLAYBOOKS = [
    "site.yml",
    "deploy.yml",
    "upgrade.yml",
    "rollback.yml",
    "restore.yml",
    "backup.yml",
    "switchover.yml",
    "remove_member.yml",
]


def env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_VAULT_PASSWORD_FILE": str(ROOT / "inventory/sandbox/vault-password.txt"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FACT_CACHING": "memory",
    }


def run(inventory: str | Path, playbook: str = "site.yml", *extra: str) -> tuple[int, str]:
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / "playbooks" / playbook), *extra],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def sandbox_copy(tmp_path: Path, rename: dict[str, str]) -> Path:
    """The sandbox inventory with some groups renamed, as an operator's typo would leave it."""
    copy = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory/sandbox", copy)  # follows the 00_shared link
    hosts = yaml.safe_load((copy / "hosts.yml").read_text())
    children = hosts["all"]["children"]
    for old, new in rename.items():
        children[new] = children.pop(old)
    (copy / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return copy


def stopped_before_any_host(output: str) -> bool:
    return "The run stops before touching any host:" in output and "Gathering Facts" not in output


@pytest.mark.parametrize("inventory", ["/dev/null", "inventory/sandbx"])
def test_an_empty_or_mistyped_inventory_path_stops_the_run(inventory):
    rc, output = run(inventory)
    assert rc != 0, output[-2000:]
    assert stopped_before_any_host(output), output[-2000:]
    assert f"inventory: no hosts in {ROOT / inventory if inventory.startswith('inventory') else inventory}" in output


def test_a_tier_group_under_a_typo_stops_the_run_before_the_firewall_closes_its_ports(tmp_path):
    rc, output = run(sandbox_copy(tmp_path, {"web": "wbe"}))
    assert rc != 0, output[-2000:]
    assert stopped_before_any_host(output), output[-2000:]
    assert "group web: no hosts, but the inventory has wbe: rename it to web" in output, output[-2000:]


def test_each_playbook_names_the_tiers_it_needs(tmp_path):
    inventory = sandbox_copy(tmp_path, {"backup": "offsite_copies"})
    rc, output = run(inventory, "backup.yml")
    assert rc != 0 and stopped_before_any_host(output), output[-2000:]
    assert "group backup: no hosts; this playbook needs the backup tier" in output, output[-2000:]


@pytest.mark.parametrize("serial", ["0", "-1", "0%", "101%", "abc"])
def test_a_batch_size_that_would_switch_every_node_at_once_is_refused(serial):
    rc, output = run(ROOT / "inventory/sandbox", "deploy.yml", "-e", f"app_serial={serial}")
    assert rc != 0 and stopped_before_any_host(output), output[-2000:]
    assert f"app_serial: '{serial}' is not a batch size" in output, output[-2000:]


@pytest.mark.parametrize("serial", [1, "3", "25%", "100%"])
def test_batch_sizes_of_one_host_or_more_pass(serial):
    groups = {"all": ["a"], "web": ["a"], "app": ["a"], "db": ["a"]}
    assert (
        topology.procurement_preflight(groups, {"required": ["web", "app", "db"], "batches": {"app_serial": serial}})
        == []
    )


def test_a_group_that_resembles_a_tier_on_purpose_can_be_named():
    groups = {"all": ["a", "b"], "web": ["a"], "app": ["a"], "db": ["a"], "backups": ["b"]}
    assert topology.procurement_preflight(groups, {"required": ["web", "app", "db"]}) == [
        "group backup: no hosts, but the inventory has backups: rename it to backup, or list it in preflight_ignored_groups"
    ]
    settings = {"required": ["web", "app", "db"], "ignored_groups": ["backups"]}
    assert topology.procurement_preflight(groups, settings) == []
    # A look-alike beside a tier that has hosts is taken as meant.
    assert topology.procurement_preflight({**groups, "backup": ["b"]}, {"required": ["web"]}) == []


@pytest.mark.parametrize("inventory", ["sandbox", "sandbox-cluster", "production.example"])
def test_the_projects_inventories_pass_every_playbooks_preflight(inventory):
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(ROOT / "inventory" / inventory), "--list"],
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(listed.stdout)
    groups = {name: data[name].get("hosts", []) for name in data if name != "_meta"}
    for name in list(groups):  # hosts of child groups belong to the parent too
        for child in data[name].get("children", []):
            groups[name] = groups[name] + groups.get(child, [])
    groups["all"] = sorted(data["_meta"]["hostvars"])
    for playbook in ENTRY_PLAYBOOKS:
        play = yaml.safe_load((ROOT / "playbooks" / playbook).read_text())[0]
        assert play["ansible.builtin.import_playbook"] == "plays/preflight.yml", playbook
        required = play["vars"]["preflight_required"]
        assert topology.procurement_preflight(groups, {"required": required}) == [], (playbook, groups)


@pytest.mark.parametrize("inventory", ["sandbox", "sandbox-cluster", "production.example"])
def test_the_preflight_play_passes_on_the_projects_inventories(inventory):
    """The real play, every role's argument check included: no false alarm, and the run goes on (rc 0)."""
    rc, output = run(ROOT / "inventory" / inventory, "plays/preflight.yml")
    assert rc == 0, output[-3000:]
    assert "Check every role's arguments as each host sets them" in output


def test_bad_role_arguments_are_named_before_any_host_is_touched():
    rc, output = run(
        ROOT / "inventory/sandbox",
        "site.yml",
        "-e",
        "postgresql_port=abc",
        "-e",
        "app_workers=lots",
        "-e",
        '{"firewall_rules": [{"port": 80}, {"comment": "no port"}], "redis_enabled": "sometimes", "app_log_level": "LOUD"}',
    )
    assert rc != 0 and stopped_before_any_host(output), output[-3000:]
    # Ansible prints the message twice (the task's result and the error summary).
    problems = sorted({line.split(" Correct it")[0] for line in output.split(" - ") if "(role " in line})
    expected = {
        "postgresql_port:": "(role postgresql, on sandbox-aio)",
        "app_workers:": "(role app, on sandbox-aio)",
        "firewall_rules: missing required arguments: port found in firewall_rules": "(role firewall, on sandbox-aio)",
        "redis_enabled:": "(role redis, on sandbox-aio)",
        "app_log_level:": "(role app, on sandbox-aio)",
    }
    for start, where in expected.items():
        assert any(line.startswith(start) and where in line for line in problems), (start, output[-3000:])
    assert len(problems) == len(expected), problems
    # One line each, not the specification dumped after it.
    assert "argument_spec_data" not in output and "Validation of arguments failed" not in output


def test_a_version_with_no_artifact_is_refused_before_anything_is_built():
    dist = sorted(path.name for path in (ROOT / "app/dist").glob("procurement-*.tar.gz"))
    rc, output = run(ROOT / "inventory/sandbox", "deploy.yml", "-e", "app_version=9.9.9")
    assert rc != 0 and stopped_before_any_host(output), output[-2000:]
    source = yaml.safe_load(
        "version: "
        + next(
            line.split("=", 1)[1].strip()
            for line in (ROOT / "app/pyproject.toml").read_text().splitlines()
            if line.startswith("version")
        )
    )["version"]
    assert (
        f"app_version: 9.9.9 has no artifact in {ROOT / 'app/dist'} and is not the source tree's version ({source})"
        in output
    ), output[-2000:]
    # Nothing was built or removed.
    assert sorted(path.name for path in (ROOT / "app/dist").glob("procurement-*.tar.gz")) == dist


def test_a_version_that_is_built_or_buildable_passes():
    groups = {"all": ["a"], "app": ["a"]}
    release = {"source": "1.0.3", "artifacts": ["procurement-1.2.0-py311.tar.gz"], "dir": "/srv/artifacts"}
    for version in ("", "1.0.3", "1.2.0"):
        assert topology.procurement_preflight(groups, {"release": {**release, "version": version}}) == []
    (problem,) = topology.procurement_preflight(groups, {"release": {**release, "version": "1.3.0"}})
    assert "artifacts there: 1.2.0." in problem
