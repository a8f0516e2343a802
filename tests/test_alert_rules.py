"""The alert rules are valid PromQL and fire exactly where their unit tests say.

The rules file is an Ansible template (its `for` windows can be overridden),
so it is rendered here by Ansible with the prometheus role's defaults, then
checked and unit-tested by promtool from the distribution's prometheus
package, the same binary family the monitoring hosts run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "prometheus"
TESTS = Path(__file__).resolve().parent / "alerts" / "procurement.rules.test.yml"
PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """The rules file as the role installs it with its defaults."""
    assert PROMTOOL, "promtool is missing: `make deps` installs the prometheus package"
    work = tmp_path_factory.mktemp("rules")
    dest = work / "procurement.rules.yml"
    # A config of its own: the repository's names the sandbox inventory and its Vault.
    (work / "ansible.cfg").write_text("[defaults]\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"@{ROLE / 'defaults' / 'main.yml'}",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={ROLE / 'templates' / 'procurement.rules.yml.j2'} dest={dest} mode=0644",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.copy(TESTS, work / TESTS.name)
    return dest


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False)


def test_rules_file_is_valid_promql(rules):
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_fires_where_its_unit_test_says(rules):
    result = promtool("test", "rules", str(rules.parent / TESTS.name))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_unit_test(rules):
    names = {rule["alert"] for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert names - tested == set(), f"rules without a promtool test: {sorted(names - tested)}"
    assert {"HighErrorRate", "SlowResponse", "DatabaseDown"} <= names


def test_manual_rules_keep_the_manuals_names_windows_and_annotations(rules):
    """The operations manual's 告警规则, as written there."""
    rules_by_name = {
        rule["alert"]: rule for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]
    }
    manual = {
        "HighErrorRate": ("2m", "critical", "高错误率告警", "5分钟内错误率超过5%", "0.05"),
        "SlowResponse": ("5m", "warning", "响应时间过长", "95%分位响应时间超过2秒", "> 2"),
        "DatabaseDown": ("1m", "critical", "数据库不可用", "PostgreSQL服务异常", 'up{job="postgresql"} == 0'),
    }
    for name, (window, severity, summary, description, expr_part) in manual.items():
        rule = rules_by_name[name]
        assert rule["for"] == window, name
        assert rule["labels"] == {"severity": severity}, name
        assert rule["annotations"] == {"summary": summary, "description": description}, name
        assert expr_part in rule["expr"], name
