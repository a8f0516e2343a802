"""pgBackRest with its repository on the backup host (remote mode): the primary archives over TLS, the
backup host keeps the encrypted repository and runs the backups, and only the two of them talk."""

from __future__ import annotations

import json

from conftest import address
from test_pitr import STANZA, backups_run_from_their_timers, pgbackrest


def info(ops) -> dict:
    return json.loads(pgbackrest(ops, "--output=json", "info", user="pgbackrest"))[0]


def test_the_repository_is_on_the_backup_host_encrypted_and_holds_a_full_backup(nodes):
    ops, db1 = nodes["cluster-ops1"], nodes["cluster-db1"]
    stanza = info(ops)
    assert stanza["status"]["code"] == 0, stanza["status"]
    assert stanza["cipher"] == "aes-256-cbc"
    assert "full" in {backup["type"] for backup in stanza["backup"]}
    repo = ops.file("/var/lib/pgbackrest")
    assert (repo.user, repo.mode) == ("pgbackrest", 0o750)
    # Nothing of the repository on the database host, and no passphrase there either.
    assert not db1.file("/var/lib/pgbackrest/archive").exists
    assert "cipher-pass" not in db1.file("/etc/pgbackrest/pgbackrest.conf").content_string


def test_the_primary_archives_over_tls_into_the_backup_host(nodes):
    db1, ops = nodes["cluster-db1"], nodes["cluster-ops1"]
    assert (
        db1.check_output("runuser -u postgres -- psql -XAtc 'SHOW archive_command'")
        == f"pgbackrest --stanza={STANZA} archive-push %p"
    )
    # check, from either side, switches a segment and waits for it in the repository.
    pgbackrest(db1, "check")
    pgbackrest(ops, "check", user="pgbackrest")
    assert db1.service("pgbackrest-server").is_running and ops.service("pgbackrest-server").is_running


def test_the_tls_link_takes_only_the_bundles_certificates_from_the_other_side(nodes):
    ops, db1 = nodes["cluster-ops1"], nodes["cluster-db1"]
    repo, primary = address(ops), address(db1)
    # The firewall: the repository's port answers the primary only, the primary's the repository host only.
    for name in ("cluster-app1", "cluster-web1", "cluster-db2"):
        assert nodes[name].run(f"timeout 3 bash -c '</dev/tcp/{repo}/8432'").rc != 0, name
        assert nodes[name].run(f"timeout 3 bash -c '</dev/tcp/{primary}/8432'").rc != 0, name
    # The repository's server lets in the primary's certificate and no other, even one from the same CA:
    # the backup host's own (CN cluster-ops1) is denied.
    client = (
        f"pgbackrest --config=/dev/null --stanza={STANZA} --repo1-host={repo} --repo1-host-type=tls "
        "--repo1-host-ca-file=/etc/pgbackrest/tls/ca.crt --repo1-host-cert-file=/etc/pgbackrest/tls/host.crt "
        "--repo1-host-key-file=/etc/pgbackrest/tls/host.key --log-level-console=warn info"
    )
    assert "status: ok" in db1.check_output(f"runuser -u postgres -- {client}")
    assert "access denied" in ops.check_output(f"runuser -u pgbackrest -- {client}")
    key = db1.file("/etc/pgbackrest/tls/host.key")
    assert (key.user, key.mode) == ("postgres", 0o600)
    ca_key = ops.file("/etc/pgbackrest/ca/ca.key")
    assert (ca_key.user, ca_key.mode) == ("root", 0o600)
    assert not db1.file("/etc/pgbackrest/ca").exists  # the CA's key stays on its host


def test_the_backup_host_runs_the_backups_from_its_timers(nodes):
    backups_run_from_their_timers(nodes["cluster-ops1"], user="pgbackrest")
