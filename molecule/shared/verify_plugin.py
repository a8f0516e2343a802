"""Pytest plugin of every scenario's verify step (``-p verify_plugin``, .config/molecule/config.yml).

Tests marked ``converged_state`` run first. Other tests deploy, restore and
roll releases; a test of the converged state must see the hosts as the
converge left them, whatever order Molecule gives the test paths in.

A scenario may spread its tests over pytest-xdist workers (``-n``). Sorting
then orders each worker's own queue only, so a worker waits before its
first other test until every ``converged_state`` test of the run has
finished, on whichever worker it ran. The workers share the count through
a folder named after the run's id.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import pytest

MARK = "converged_state"
_expected = pytest.StashKey[int]()
# Longer than any converged-state test may take (a check-mode run of the
# whole site under load); past it the waiting worker fails loudly.
BARRIER_TIMEOUT = float(os.environ.get("VERIFY_CONVERGED_STATE_TIMEOUT", "2400"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{MARK}: reads the hosts as the converge left them; runs before every other test"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: 0 if item.get_closest_marker(MARK) else 1)
    config.stash[_expected] = sum(1 for item in items if item.get_closest_marker(MARK))


def _barrier(config) -> Path | None:
    """The run's shared folder under xdist, else None (one process keeps its sorted order)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    folder = Path(tempfile.gettempdir()) / f"verify-converged-state-{workerinput['testrunuid']}"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    folder = _barrier(item.config)
    if folder is None or item.get_closest_marker(MARK):
        return
    expected = item.config.stash.get(_expected, 0)
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while len(list(folder.glob("done-*"))) < expected:
        if time.monotonic() > deadline:
            pytest.fail(f"{expected} {MARK} test(s) had not finished after {BARRIER_TIMEOUT:.0f} s on another worker")
        time.sleep(2)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Count a converged-state test once it is over, passed or not, for the other workers."""
    try:
        return (yield)
    finally:
        folder = _barrier(item.config)
        if folder is not None and item.get_closest_marker(MARK):
            (folder / f"done-{hashlib.sha256(item.nodeid.encode()).hexdigest()[:16]}").touch()
