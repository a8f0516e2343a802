"""scripts/check_doc_paths.py: the docs and comments name only files and sections that exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_doc_paths", ROOT / "scripts/check_doc_paths.py")
check_doc_paths = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_doc_paths)


@pytest.fixture()
def scratch():
    """A folder inside the repository (paths are checked from there), never tracked."""
    folder = ROOT / ".cache/test-doc-paths"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    for path in folder.iterdir():
        path.unlink()


def test_the_repository_names_no_missing_path_or_section():
    assert check_doc_paths.problems([p for p in check_doc_paths.tracked() if p.is_file()]) == []


def test_a_missing_file_in_prose_or_a_comment_is_named(scratch):
    doc = scratch / "doc.md"
    doc.write_text("See docs/operations.md and docs/inventory.md.\n\n```sh\ncat docs/not-checked-in-code.md\n```\n")
    comment = scratch / "vars.yml"
    comment.write_text("---\n# kept in step by tests/test_app_env_keys.py\nkey: tests/not_a_comment.py\n")
    assert check_doc_paths.problems([doc, comment]) == [
        ".cache/test-doc-paths/doc.md:1: docs/inventory.md does not exist",
        ".cache/test-doc-paths/vars.yml:2: tests/test_app_env_keys.py does not exist",
    ]


def test_a_missing_section_is_named(scratch):
    doc = scratch / "doc.md"
    doc.write_text('As in docs/security.md, "Rotating secrets", not README, "Rotating secrets".\n')
    assert check_doc_paths.problems([doc]) == [
        '.cache/test-doc-paths/doc.md:1: README.md has no section "Rotating secrets"',
    ]


def test_placeholders_host_paths_and_generated_files_are_not_checked(scratch):
    doc = scratch / "doc.md"
    doc.write_text(
        "inventory/<env>/group_vars/all/vault.yml, /etc/nginx/sites-available/x, "
        "inventory/production/hosts.yml, .cache/test-timing.txt, https://example.com/docs/x.md\n"
    )
    assert check_doc_paths.problems([doc]) == []
