"""scripts/audit.py reads Lynis's report and testssl.sh's JSON as recorded on the sandbox, and ships Lynis whole."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(SCRIPTS))
spec = importlib.util.spec_from_file_location("audit", SCRIPTS / "audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


@pytest.fixture
def lynis_text() -> str:
    return (FIXTURES / "lynis-report.dat").read_text()


@pytest.fixture
def testssl_findings() -> list[dict]:
    return json.loads((FIXTURES / "testssl-sandbox.json").read_text())


def test_lynis_report_gives_the_index_and_tests_done(lynis_text):
    report = audit.parse_lynis_report(lynis_text)
    assert report["hardening_index"] == 67
    assert report["tests_done"] == 260


def test_lynis_report_lists_the_warning_with_its_text(lynis_text):
    report = audit.parse_lynis_report(lynis_text)
    assert [w[0] for w in report["warnings"]] == ["PKGS-7388"]
    assert "security repository" in report["warnings"][0][1]


def test_lynis_report_lists_suggestions_with_their_details(lynis_text):
    suggestions = audit.parse_lynis_report(lynis_text)["suggestions"]
    ids = [s[0] for s in suggestions]
    assert "BANN-7126" in ids and "KRNL-5820" in ids
    assert ("SSH-7408", "Consider hardening SSH configuration", "AllowTcpForwarding (set YES to NO)") in suggestions
    assert all(s[0] and s[1] for s in suggestions)


def test_lynis_report_without_an_index_reads_as_none():
    report = audit.parse_lynis_report("lynis_tests_done=3\nhardening_index=\nwarning[]=X-1\n")
    assert report["hardening_index"] is None
    assert report["warnings"] == [("X-1", "", "-")]


def test_lynis_goals_miss_on_a_low_index_and_a_warning(lynis_text, monkeypatch, capsys):
    monkeypatch.setattr(
        audit, "on_host", lambda args, command: "/tmp/x" if command.startswith("mktemp") else lynis_text
    )
    monkeypatch.setattr(audit, "run_module", lambda args, module, module_args: {})
    monkeypatch.setattr(audit, "lynis_archive", lambda path: None)
    checker = audit.Audit()
    audit.audit_lynis(audit.parse_args(["--only", "lynis"]), checker)
    out = capsys.readouterr().out
    assert "RESULT lynis_hardening_index=67" in out
    assert "RESULT lynis_warnings=1" in out
    assert "RESULT lynis_warning_ids=PKGS-7388" in out
    assert len(checker.missed) == 2


def test_lynis_archive_holds_the_program_its_tests_and_a_quiet_profile(tmp_path):
    if not audit.LYNIS_FILES["lynis"].exists():
        pytest.skip("lynis is not installed on this machine (apt-get install lynis)")
    archive = tmp_path / "lynis.tar.gz"
    audit.lynis_archive(archive)
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        profile = tar.extractfile("custom.prf").read().decode()
    assert {"lynis", "include/functions", "db/languages/en", "default.prf", "custom.prf"} <= set(members)
    assert any(name.startswith("plugins/") for name in members)
    assert all(m.uid == 0 and m.gid == 0 and not m.mode & 0o022 for m in members.values())
    assert "refresh-repositories=no" in profile


def test_testssl_sandbox_sample_flags_nothing_and_reports_the_chain(testssl_findings):
    result = audit.parse_testssl(testssl_findings)
    assert len(result["checked"]) == 18
    assert result["flagged"] == [] and result["unjudged"] == []
    # Not a vulnerability, and not counted as one: the sandbox's certificate is self-signed.
    assert result["chain_of_trust"] == "CRITICAL failed (self signed)."


def test_testssl_flags_a_vulnerable_check_and_an_unjudged_one(testssl_findings):
    findings = copy.deepcopy(testssl_findings)
    for finding in findings:
        if finding["id"] == "SWEET32":
            finding.update(severity="LOW", finding="VULNERABLE, uses 64 bit block ciphers")
        if finding["id"] == "ROBOT":
            finding.update(severity="WARN", finding="check failed")
    result = audit.parse_testssl(findings)
    assert result["flagged"] == ["SWEET32"]
    assert result["unjudged"] == ["ROBOT"]
    assert result["findings"]["SWEET32"].startswith("VULNERABLE")


def test_testssl_certificate_findings_are_not_vulnerabilities(testssl_findings):
    # cert_revocation is HIGH and DNS_CAArecord LOW in the sample: neither is a vulnerability check.
    assert {f["id"]: f["severity"] for f in testssl_findings}["cert_revocation"] == "HIGH"
    assert audit.parse_testssl(testssl_findings)["flagged"] == []


def test_testssl_output_without_findings_reads_as_nothing_checked():
    result = audit.parse_testssl([{"id": "scanProblem", "severity": "FATAL", "finding": "No engine"}])
    assert result["checked"] == [] and result["errors"] == ["No engine"]
