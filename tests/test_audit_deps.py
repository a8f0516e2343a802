"""scripts/audit_deps.py fails on what it must fail on, whatever the network answers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "audit_deps.py"
spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
audit_deps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_deps)


def fake_report(monkeypatch, dependencies, project_pages=None):
    monkeypatch.setattr(audit_deps, "pip_audit", lambda lock: {"dependencies": dependencies, "fixes": []})
    pages = project_pages or {}
    monkeypatch.setattr(audit_deps, "project_page_vulns", lambda name, version: pages.get((name, version)))


def results(capsys) -> dict[str, int]:
    out = capsys.readouterr().out
    return {
        key: int(value)
        for key, _, value in (line.removeprefix("RESULT ").partition("=") for line in out.splitlines())
        if key.startswith("pip_audit_")
    }


def test_a_vulnerability_with_a_fix_fails(monkeypatch, capsys):
    fake_report(
        monkeypatch,
        [
            {"name": "flask", "version": "3.1.3", "vulns": []},
            {"name": "werkzeug", "version": "2.0.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["2.0.1"]}]},
        ],
    )
    assert audit_deps.main([]) == 1
    assert results(capsys) == {
        "pip_audit_dependencies": 2,
        "pip_audit_fixable": 1,
        "pip_audit_unfixed": 0,
        "pip_audit_unaudited": 0,
    }


def test_a_vulnerability_without_a_fix_is_reported_but_passes(monkeypatch, capsys):
    fake_report(monkeypatch, [{"name": "x", "version": "1", "vulns": [{"id": "GHSA-1", "fix_versions": []}]}])
    assert audit_deps.main([]) == 0
    assert results(capsys)["pip_audit_unfixed"] == 1


def test_a_pin_no_source_answers_for_fails_unless_allowed(monkeypatch, capsys):
    skipped = {"name": "redis", "skip_reason": "Dependency not found on PyPI and could not be audited: redis (7.0.1)"}
    fake_report(monkeypatch, [skipped])
    assert audit_deps.main([]) == 1
    assert results(capsys)["pip_audit_unaudited"] == 1
    assert audit_deps.main(["--allow-unaudited"]) == 0


def test_the_project_page_answers_for_the_latest_release(monkeypatch, capsys):
    skipped = {"name": "redis", "skip_reason": "Dependency not found on PyPI and could not be audited: redis (8.1.0)"}
    fake_report(
        monkeypatch, [skipped], {("redis", "8.1.0"): [{"id": "PYSEC-2", "fix_versions": ["8.1.1"], "aliases": []}]}
    )
    assert audit_deps.main([]) == 1
    assert results(capsys) == {
        "pip_audit_dependencies": 1,
        "pip_audit_fixable": 1,
        "pip_audit_unfixed": 0,
        "pip_audit_unaudited": 0,
    }


def test_an_empty_report_fails(monkeypatch, capsys):
    fake_report(monkeypatch, [])
    assert audit_deps.main([]) == 1
