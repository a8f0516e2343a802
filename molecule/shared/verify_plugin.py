"""Pytest plugin of every scenario's verify step (``-p verify_plugin``, .config/molecule/config.yml).

Tests marked ``converged_state`` run first. Other tests deploy, restore and
roll releases; a test of the converged state must see the hosts as the
converge left them, whatever order Molecule gives the test paths in.
"""

from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "converged_state: reads the hosts as the converge left them; runs before every other test"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: 0 if item.get_closest_marker("converged_state") else 1)
