"""Ansible's linear strategy run through Mitogen: the Molecule scenarios' strategy, and an opt-in.

The project's ansible.cfg lists this folder in strategy_plugins, so that an
operator may run a playbook with ``ANSIBLE_STRATEGY=mitogen_linear``; by
default Ansible's own linear strategy runs (docs/benchmarks.md says why).

Mitogen keeps one Python interpreter per host and sends it each task, where
Ansible's own strategy runs a new command on the host (over SSH, or a
`docker exec` in the scenarios) and a fresh interpreter for every task. The
Mitogen code is imported from the installed `mitogen` package by its
canonical name, so that Ansible's plugin loader does not load it twice.

Plays on the controller itself (Molecule's create and destroy) keep
Ansible's plain linear strategy: there is no connection to save, and Mitogen's
forked async jobs never finish the Docker modules' work there.
"""

import gc

from ansible.collections.list import list_collection_dirs
from ansible_mitogen.loaders import strategy_loader
from ansible_mitogen.strategy import StrategyMixin

Linear = strategy_loader.get("linear", class_only=True)


class StrategyModule(StrategyMixin, Linear):
    """Linear, with Mitogen's connections to the hosts under test."""

    def run(self, iterator, play_context, result=0):
        if iterator._play.connection in ("local", "ansible.builtin.local"):
            return Linear.run(self, iterator, play_context)
        # Mitogen lists every installed collection before the first run of
        # a collection's module in each worker, and each task's worker is a
        # new fork of this process: the listing imports every collection's
        # package and parses its routing file, about 0.3 s of CPU, again at
        # every such task on every host. Listed once here, the imports are
        # inherited by the forks and each worker's listing is a lookup.
        for _ in list_collection_dirs():
            pass
        return super().run(iterator, play_context, result)

    def _queue_task(self, host, task, task_vars, play_context):
        # Each task forks a worker from this process. Objects frozen out of
        # the collector's reach stay shared with it: a collection in the
        # worker would otherwise write to (and so copy) every page of them.
        gc.freeze()
        return super()._queue_task(host, task, task_vars, play_context)
