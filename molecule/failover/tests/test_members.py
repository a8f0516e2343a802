"""Adding and removing a member, after the failover tests.

failover-db3 starts in no tier. It joins the cluster when site.yml runs with it in the db group (Patroni
clones it from whichever member leads), and leaves by remove_member.yml (which refuses the leader);
site.yml without it then takes it out of HAProxy and the firewalls. The joining run also rotates the
database password, which reaches the leader and, by replication, every member; the last run rotates it
back. The cluster is back to its two members and its password for the tests after these.
"""

from __future__ import annotations

import json
import secrets as random_secrets
import time

from conftest import (
    DB_HOSTS,
    PROJECT,
    address,
    allowed_sources,
    leader,
    members,
    names_on,
    psql,
    run_playbook,
    wait_for_cluster,
)

NEW = "failover-db3"
PATRONI = "patroni@15-main"


def said(result) -> str:
    """What the run printed (failures go to stderr), with Ansible's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


def verifier(node) -> str:
    return psql(node, "select rolpassword from pg_authid where rolname = 'procurement_user'")


def haproxy_servers(node) -> str:
    return node.check_output("grep -E '^\\s+server ' /etc/haproxy/haproxy.cfg")


def test_a_member_joins_by_site_yml_and_leaves_by_remove_member(nodes, lb, secrets, tmp_path):
    new = nodes[NEW]
    app = nodes["failover-app1"]
    extra = tmp_path / "member.yml"
    extra.write_text(f"db:\n  hosts:\n    {NEW}:\n")
    before = verifier(nodes[leader(nodes)])
    # The rotated password from a 0600 file, never on a command line.
    rotated = tmp_path / "rotation.json"
    rotated.touch(mode=0o600)
    rotated.write_text(json.dumps({"vault_db_password": random_secrets.token_urlsafe(32)}))

    joined = run_playbook("-i", str(extra), "-e", f"@{rotated}", str(PROJECT / "playbooks/site.yml"))
    rotated.unlink()
    assert joined.returncode == 0, joined.stdout[-4000:] + joined.stderr[-2000:]
    wait_for_cluster(nodes, DB_HOSTS[0], timeout=240, expected={*DB_HOSTS, NEW})
    # The rotation reached the leader, and every member holds the same verifier.
    after = {name: verifier(nodes[name]) for name in (*DB_HOSTS, NEW)}
    assert len(set(after.values())) == 1 and before not in after.values(), after
    assert new.service(PATRONI).is_running and new.service(PATRONI).is_enabled
    # A write through the load balancer reaches the new member.
    name = f"member {time.time_ns()}"
    lb.ok("POST", "/suppliers", secrets["vault_app_admin_token"], {"name": name, "category": "it"})
    deadline = time.monotonic() + 30
    while names_on(new, name) != {name}:
        assert time.monotonic() < deadline, "the new member lacks the write"
        time.sleep(1)
    # The app node's HAProxy checks it, and the leader lets it replicate.
    assert address(new) in haproxy_servers(app)
    leading = leader(nodes)
    assert address(new) in allowed_sources(nodes[leading])["5432/tcp"]

    # Patroni hands the lead to the synchronous standby only, and the playbooks say so before trying.
    state = members(nodes[DB_HOSTS[0]])
    asynchronous = next(m for m, v in state.items() if v["Role"] == "Replica")
    refused = run_playbook(
        str(PROJECT / "playbooks/switchover.yml"),
        "-i",
        str(extra),
        "-e",
        json.dumps({"switchover_candidate": asynchronous}),
    )
    assert refused.returncode != 0 and "synchronous standby only" in said(refused), said(refused)[-3000:]
    refused = run_playbook(
        "-i", str(extra), str(PROJECT / "playbooks/remove_member.yml"), "-e", json.dumps({"remove_member": leading})
    )
    assert refused.returncode != 0 and f"{leading} leads the cluster" in said(refused), said(refused)[-3000:]
    assert members(nodes[DB_HOSTS[0]]).keys() == state.keys() and leader(nodes) == leading

    left = run_playbook(
        "-i", str(extra), str(PROJECT / "playbooks/remove_member.yml"), "-e", json.dumps({"remove_member": NEW})
    )
    assert left.returncode == 0, left.stdout[-4000:] + left.stderr[-2000:]
    state = wait_for_cluster(nodes, DB_HOSTS[0], timeout=240)
    assert not new.service(PATRONI).is_running and not new.service(PATRONI).is_enabled
    assert not new.service("postgresql@15-main").is_running
    assert new.file("/var/lib/postgresql/15/main/PG_VERSION").exists, "the data directory stays"
    leading = next(m for m, v in state.items() if v["Role"] == "Leader")
    slots = psql(nodes[leading], "select slot_name from pg_replication_slots").split()
    assert "failover_db3" not in slots, slots

    # Again with the member out of the db group: the others forget it.
    forgot = run_playbook(str(PROJECT / "playbooks/site.yml"))
    assert forgot.returncode == 0, forgot.stdout[-4000:] + forgot.stderr[-2000:]
    assert address(new) not in haproxy_servers(app)
    for member in DB_HOSTS:
        assert address(new) not in allowed_sources(nodes[member]).get("5432/tcp", set()), member
    # That run rotated the password back, and the app writes with it.
    assert verifier(nodes[leader(nodes)]) == before
    lb.ok("POST", "/suppliers", secrets["vault_app_admin_token"], {"name": f"{name} after", "category": "it"})


def test_remove_member_refuses_to_leave_fewer_than_two(nodes):
    refused = run_playbook(
        str(PROJECT / "playbooks/remove_member.yml"), "-e", json.dumps({"remove_member": DB_HOSTS[1]})
    )
    assert refused.returncode != 0
    assert "remove_member:" in said(refused) and "at least two" in said(refused), said(refused)[-3000:]
    assert set(members(nodes[DB_HOSTS[0]])) == set(DB_HOSTS)
