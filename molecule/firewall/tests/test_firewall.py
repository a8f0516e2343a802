"""The host firewall lets through what the rules allow, from whom they allow it, and nothing else."""

from __future__ import annotations

import ipaddress
import os

import pytest
import testinfra

HOSTS = ("firewall-debian12", "firewall-debian13")


def other(host):
    name = host.backend.get_hostname()
    peer = next(h for h in HOSTS if h != name)
    return testinfra.get_host(f"ansible://{peer}?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}")


def address(host) -> str:
    return host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]


def reachable(client, target: str, port: int) -> bool:
    """Open a TCP connection from `client` with bash's /dev/tcp; DROP shows up as a timeout."""
    return client.run(f"timeout 3 bash -c '</dev/tcp/{target}/{port}'").rc == 0


@pytest.mark.parametrize("port", [22, 80, 443])
def test_public_ports_are_reachable_from_the_peer(host, port):
    assert reachable(other(host), address(host), port)


@pytest.mark.parametrize("port", [6379, 8000])
def test_internal_ports_allowed_to_nobody_here_are_blocked(host, port):
    assert not reachable(other(host), address(host), port)


def test_database_port_is_reachable_from_the_allowed_peer(host):
    assert reachable(other(host), address(host), 5432)


def test_database_port_is_blocked_from_any_other_address(host):
    """The peer probes from a second address on the same network, which the rule does not name."""
    peer = other(host)
    iface = peer.check_output("ip -4 route show default | awk '{print $5}'")
    network = ipaddress.ip_interface(
        peer.check_output(f"ip -4 -o addr show dev {iface} | awk '{{print $4}}' | head -1")
    ).network
    spare = str(network.broadcast_address - 2)
    peer.run_test(f"ip addr add {spare}/{network.prefixlen} dev {iface}")
    try:
        probe = (
            "python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(3); s.bind((sys.argv[1], 0)); "
            "sys.exit(s.connect_ex((sys.argv[2], int(sys.argv[3]))))' {} {} {}"
        )
        target = address(host)
        # The same probe reaches a public port, so a failure below is the firewall's doing.
        assert peer.run(probe.format(spare, target, 80)).rc == 0
        assert peer.run(probe.format(spare, target, 5432)).rc != 0
    finally:
        peer.run(f"ip addr del {spare}/{network.prefixlen} dev {iface}")


def backend(host) -> str:
    """The host's firewall, as its inventory chooses it (molecule.yml)."""
    return host.ansible.get_variables().get("firewall_backend") or "ufw"


def test_the_firewall_is_active_and_drops_what_no_rule_allows(host):
    if backend(host) == "ufw":
        status = host.check_output("ufw status verbose")
        assert "Status: active" in status
        assert "Default: deny (incoming), allow (outgoing)" in status
    else:
        assert host.service("firewalld").is_enabled and host.service("firewalld").is_running
        assert not host.package("ufw").is_installed
        assert host.check_output("firewall-cmd --state") == "running"
        assert host.check_output("firewall-cmd --permanent --zone=public --get-target") == "DROP"


def test_rules_the_role_no_longer_lists_are_removed_but_hand_made_ones_stay(host):
    peer = other(host)
    assert not reachable(peer, address(host), 9999)
    if backend(host) == "ufw":
        assert reachable(peer, address(host), 9998)
        assert "9998/tcp" in host.check_output("ufw status")
    else:
        # firewalld keeps no comments: the role owns the zone's ports, and lists exactly its own.
        ports = set(host.check_output("firewall-cmd --permanent --zone=public --list-ports").split())
        assert ports == {"22/tcp", "80/tcp", "443/tcp"}
        assert ports == set(host.check_output("firewall-cmd --zone=public --list-ports").split())
