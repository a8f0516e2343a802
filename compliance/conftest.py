"""The compliance suite: the dev-sec baselines' controls, as our own testinfra tests.

Every test carries the id of the control it proves (``@pytest.mark.control("os-01")``);
a control passes when every test carrying its id passes. Controls the bundle does
not meet on purpose are listed in ``waivers.yml`` with a reason and the date the
waiver was last reviewed; their tests still run, and one that starts passing is
reported so that its waiver can go.

Run against any deployed host (scripts/audit.py does, for ``make audit``)::

    pytest compliance --hosts=docker://stack-debian12 --compliance-report=report.json
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
WAIVERS = HERE / "waivers.yml"
# A waiver nobody has looked at for a year is no longer a decision.
WAIVER_MAX_AGE = dt.timedelta(days=365)
# The controls each baseline publishes today. ssh-baseline counts 70: ssh-01..22
# and sshd-01..49 without sshd-26 ("UsePAM no"), which dev-sec withdrew in 2.2.0.
# linux-baseline counts 60: os-01..16 with os-03b and os-05b (18), package-01..09
# without the reserved package-04 (8), sysctl-01..34 with 31a/31b and without
# sysctl-18 ("disable IPv6"), which dev-sec withdrew (34).
BASELINES = {"linux-baseline": 60, "ssh-baseline": 70, "nginx-baseline": 16, "postgres-baseline": 19}


def load_waivers(path: Path = WAIVERS, today: dt.date | None = None) -> dict[str, dict]:
    """The waivers by control id; refuses an entry without a reason or with a stale review date."""
    today = today or dt.date.today()
    entries = yaml.safe_load(path.read_text()) or []
    waivers: dict[str, dict] = {}
    for entry in entries:
        control = entry.get("control")
        reason = str(entry.get("reason") or "").strip()
        reviewed = entry.get("reviewed")
        if not control or not reason or not isinstance(reviewed, dt.date):
            raise pytest.UsageError(f"{path}: every waiver needs control, reason and reviewed (a date): {entry!r}")
        if today - reviewed > WAIVER_MAX_AGE:
            raise pytest.UsageError(f"{path}: the waiver of {control} was last reviewed on {reviewed}; review it again")
        if control in waivers:
            raise pytest.UsageError(f"{path}: {control} is waived twice")
        waivers[control] = {"reason": reason, "reviewed": reviewed.isoformat()}
    return waivers


def pytest_addoption(parser):
    parser.addoption("--compliance-report", help="write each control's outcome to this JSON file")


def pytest_configure(config):
    config.addinivalue_line("markers", "control(id): the baseline control this test proves, e.g. os-01")
    config.addinivalue_line("markers", "baseline(name): the baseline a test module covers, e.g. linux-baseline")
    config._compliance_waivers = load_waivers()
    config._compliance_outcomes = defaultdict(list)
    config._compliance_controls = {}


def control_of(item) -> str:
    marker = item.get_closest_marker("control")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{item.nodeid} carries no control id (@pytest.mark.control)")
    return marker.args[0]


def pytest_collection_modifyitems(config, items):
    waivers = config._compliance_waivers
    for item in items:
        control = control_of(item)
        baseline = item.get_closest_marker("baseline")
        if baseline is None:
            raise pytest.UsageError(f"{item.nodeid} belongs to no baseline (pytestmark = pytest.mark.baseline(...))")
        config._compliance_controls[control] = baseline.args[0]
        if control in waivers:
            item.add_marker(pytest.mark.xfail(reason=f"waived: {waivers[control]['reason']}", strict=False))
    # Only a run of the whole suite can tell that a waiver names no test.
    whole = set(config._compliance_controls.values()) == set(BASELINES)
    unknown = set(waivers) - set(config._compliance_controls)
    if unknown and whole and not config.option.keyword and not config.option.markexpr:
        raise pytest.UsageError(f"{WAIVERS}: waivers for controls no test carries: {sorted(unknown)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    # The call phase decides; a setup that fails (the host unreachable) or
    # skips (the component is not on this host) decides too.
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            seen = "waived_passing" if report.outcome == "passed" else "waived"
        else:
            seen = report.outcome
        item.config._compliance_outcomes[control_of(item)].append(seen)


def summarise(outcomes: dict[str, list[str]], waivers: dict[str, dict], controls: dict[str, str]) -> dict:
    """One outcome per control: failed beats waived beats skipped beats passed.

    ``controls`` maps every collected control id to its baseline, run or not.
    """
    per_control = {}
    for control, seen in outcomes.items():
        if "failed" in seen:
            per_control[control] = "failed"
        elif control in waivers:
            per_control[control] = "waived_passing" if set(seen) == {"waived_passing"} else "waived"
        elif set(seen) == {"skipped"}:
            per_control[control] = "not_applicable"
        else:
            per_control[control] = "passed"
    counted = {c: o for c, o in per_control.items() if o != "not_applicable"}
    collected: dict[str, int] = defaultdict(int)
    for baseline in controls.values():
        collected[baseline] += 1
    by_baseline: dict[str, int] = defaultdict(int)
    for control in counted:
        by_baseline[controls[control]] += 1
    return {
        "total": len(counted),
        "passed": sum(o == "passed" for o in counted.values()),
        "waived": sum(o.startswith("waived") for o in counted.values()),
        "waived_passing": sorted(c for c, o in counted.items() if o == "waived_passing"),
        "failed": sorted(c for c, o in counted.items() if o == "failed"),
        "not_applicable": sorted(c for c, o in per_control.items() if o == "not_applicable"),
        "by_baseline": dict(by_baseline),
        "collected": dict(collected),
        "controls": per_control,
        "waivers": {c: w for c, w in waivers.items() if c in per_control},
    }


def pytest_sessionfinish(session):
    config = session.config
    summary = summarise(config._compliance_outcomes, config._compliance_waivers, config._compliance_controls)
    path = config.getoption("--compliance-report")
    if path:
        Path(path).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def pytest_terminal_summary(terminalreporter, config):
    summary = summarise(config._compliance_outcomes, config._compliance_waivers, config._compliance_controls)
    terminalreporter.write_line(
        f"compliance: {summary['total']} controls, {summary['passed']} passed, {summary['waived']} waived, "
        f"{len(summary['failed'])} failed {summary['failed']}; not applicable: {summary['not_applicable']}; "
        f"waived but passing: {summary['waived_passing']}"
    )
