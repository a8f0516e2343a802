"""The leak gate (scripts/leak_scan.py on the host, judged by scripts/audit.py) finds a secret wherever it sits."""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


leak_scan = load("leak_scan")
audit = load("audit")
SECRETS = {"vault_db_password": b"canary-db-5f0c2e9a71", "vault_redis_password": b"canary-redis-91b7d3"}


def scan(root: Path) -> list[dict]:
    report = {"hits": []}
    leak_scan.scan_files([str(root)], SECRETS, set(), report)
    assert report["files_scanned"] > 0
    return report["hits"]


def test_a_secret_is_found_in_plain_files_gzip_and_inside_a_backup_archive(tmp_path):
    (tmp_path / "clean.conf").write_text("nothing here\n")
    (tmp_path / "app.conf").write_bytes(b"password = " + SECRETS["vault_db_password"] + b"\n")
    (tmp_path / "old.log.gz").write_bytes(gzip.compress(b"redis auth " + SECRETS["vault_redis_password"]))
    env = b"PROCUREMENT_DB_PASSWORD=" + SECRETS["vault_db_password"] + b"\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        member = tarfile.TarInfo("./opt/procurement/.env")
        member.size = len(env)
        archive.addfile(member, io.BytesIO(env))
    (tmp_path / "procurement_backup_20261205_021500.tar.gz").write_bytes(buffer.getvalue())
    hits = {hit["where"].removeprefix(f"{tmp_path}/"): hit for hit in scan(tmp_path)}
    assert set(hits) == {"app.conf", "old.log.gz", "procurement_backup_20261205_021500.tar.gz!./opt/procurement/.env"}
    assert hits["app.conf"]["secrets"] == ["vault_db_password"]
    assert hits["old.log.gz"]["secrets"] == ["vault_redis_password"]


def test_the_report_names_the_secret_never_its_value(tmp_path):
    (tmp_path / "app.conf").write_bytes(SECRETS["vault_db_password"])
    os.chmod(tmp_path / "app.conf", 0o644)
    (hit,) = scan(tmp_path)
    assert hit["mode"] == "0644"
    assert SECRETS["vault_db_password"].decode() not in repr(hit)


OWNERS = {"root", "procurement", "redis"}


@pytest.mark.parametrize(
    ("hit", "allowed"),
    [
        ({"kind": "file", "mode": "0640", "owner": "root", "group": "procurement"}, True),
        ({"kind": "file", "mode": "0600", "owner": "redis", "group": "redis"}, True),
        ({"kind": "file", "mode": "0644", "owner": "root", "group": "procurement"}, False),
        ({"kind": "file", "mode": "0660", "owner": "root", "group": "procurement"}, False),
        ({"kind": "file", "mode": "0640", "owner": "deploy", "group": "procurement"}, False),
        ({"kind": "file", "mode": "0640", "owner": "root", "group": "users"}, False),
        ({"kind": "archive", "mode": "0644", "owner": "root", "group": "root"}, False),
        ({"kind": "environ", "mode": "0400", "owner": "redis", "group": "redis"}, True),
        ({"kind": "environ", "mode": "0400", "owner": "deploy", "group": "deploy"}, False),
        ({"kind": "cmdline", "mode": "0444", "owner": "root", "group": "root"}, False),
        ({"kind": "journal"}, False),
    ],
)
def test_a_secret_may_only_sit_where_the_accounts_that_need_it_read_it(hit, allowed):
    assert audit.allowed_place(hit, OWNERS) is allowed
