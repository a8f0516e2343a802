"""Which app host migrates a database before a roll (roles/app/tasks/migrate_choose_host.yml), run by
ansible-playbook over local hosts: the first of the batch for each database, where loopback is each
host's own server unless app_db_server names the server behind it (HAProxy before a Patroni cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAY = [
    {
        "name": "Choose the migrating hosts",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": "procurement.ops.app", "tasks_from": "migrate_choose_host.yml"}},
            {"ansible.builtin.debug": {"var": "__app_migrates_here"}},
        ],
    }
]


def migrating(tmp_path: Path, hosts: dict[str, dict]) -> set[str]:
    inventory = {
        "all": {"hosts": hosts, "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(PLAY, sort_keys=False))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_COLLECTIONS_PATH": str(ROOT)}
    env.pop("ANSIBLE_CONFIG", None)
    playbook = Path(sys.executable).parent / "ansible-playbook"
    run = subprocess.run(
        [str(playbook), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    report = json.loads(run.stdout[run.stdout.index("{") :])
    chosen = set()
    for task in report["plays"][0]["tasks"]:
        for host, outcome in task["hosts"].items():
            if "__app_migrates_here" in outcome and outcome["__app_migrates_here"] in (True, "True", "true"):
                chosen.add(host)
    return chosen


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        # Two app nodes reaching one primary by its address: the first migrates.
        ({"a1": {"app_db_host": "10.0.0.4"}, "a2": {"app_db_host": "10.0.0.4"}}, {"a1"}),
        # All-in-one hosts side by side: loopback is each one's own server.
        ({"a1": {"app_db_host": "127.0.0.1"}, "a2": {"app_db_host": "127.0.0.1"}}, {"a1", "a2"}),
        # HAProxy on each node's loopback, one Patroni cluster behind: the first migrates for both.
        (
            {
                "a1": {"app_db_host": "127.0.0.1", "app_db_port": 5000, "app_db_server": "patroni:db1,db2"},
                "a2": {"app_db_host": "127.0.0.1", "app_db_port": 5000, "app_db_server": "patroni:db1,db2"},
            },
            {"a1"},
        ),
    ],
    ids=["one-primary", "all-in-one", "patroni"],
)
def test_one_host_migrates_each_database(tmp_path, hosts, expected):
    assert migrating(tmp_path, hosts) == expected
