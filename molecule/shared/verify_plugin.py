"""Pytest plugin of every scenario's verify step (``-p verify_plugin``, .config/molecule/config.yml).

Tests marked ``converged_state`` run first. Other tests deploy, restore and
roll releases; a test of the converged state must see the hosts as the
converge left them, whatever order Molecule gives the test paths in. Tests
marked ``after_every_other_test`` run last, in their own order: a whole-site
run that must change nothing after everything the other tests did.

Testinfra's commands enter the container's namespaces with ``nsenter``
instead of going through ``docker exec``. The command runs in the same
place, as the same root user, with the environment ``docker exec`` gives
it; what it skips is the Docker client, the daemons and runc, about 0.07 s
of CPU for each command against 0.01 s (docs/testing.md). A container that
is not running (a test killed it) falls back to ``docker exec``, which
fails as it always did; so do commands run as another user, and a controller
that is not root.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from testinfra.backend import base
from testinfra.backend.docker import DockerBackend

# What `docker exec` gives a root command in these images (scripts/build-images.sh sets no Env but
# "container"), besides HOSTNAME, the container's host name.
EXEC_ENVIRONMENT = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root container=docker"
_inits: dict[str, tuple[int, str, str]] = {}
_docker_run = DockerBackend.run


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), or "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def container_init(name: str) -> tuple[int, str]:
    """The PID of the container's init as the host sees it, and the container's host name; PID 0 when the
    container is not running.

    Kept with the process's start time: a container started again has a new init, which is looked up again.
    """
    known = _inits.get(name)
    if known and _start_time(known[0]) == known[1]:
        return known[0], known[2]
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Pid}} {{.Config.Hostname}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    fields = inspected.stdout.split() if inspected.returncode == 0 else []
    pid = int(fields[0]) if fields else 0
    started = _start_time(pid) if pid else ""
    if not started:
        return 0, ""
    _inits[name] = (pid, started, fields[1] if len(fields) > 1 else name)
    return pid, _inits[name][2]


def _nsenter_run(self: DockerBackend, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
    # nsenter needs root; another user inside the container goes through docker exec as before.
    pid, hostname = container_init(self.name) if self.user is None and os.geteuid() == 0 else (0, "")
    if not pid:
        return _docker_run(self, command, *args, **kwargs)
    cmd = self.get_command(command, *args)
    out = self.run_local(
        "nsenter --target %s --mount --uts --ipc --net --pid --root --wd -- "
        f"env -i {EXEC_ENVIRONMENT} HOSTNAME=%s /bin/sh -c %s",
        str(pid),
        hostname,
        cmd,
    )
    out.command = self.encode(cmd)
    return out


DockerBackend.run = _nsenter_run


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "converged_state: reads the hosts as the converge left them; runs before every other test"
    )
    config.addinivalue_line(
        "markers", "after_every_other_test: reads the hosts as every other test left them; runs last"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        if item.get_closest_marker("converged_state"):
            return 0
        return 2 if item.get_closest_marker("after_every_other_test") else 1

    items.sort(key=rank)
