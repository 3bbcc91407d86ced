"""The supervisor and its workers never outlive what they belong to.

A worker whose supervisor was killed exits by itself, and a supervisor whose run
folder was removed stops its workers and exits: neither keeps polling a cluster
that is gone. Runs on a cluster of its own (the shared one has live workers).
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from qasearch.cluster import localcluster, workers
from qasearch.core import procs
from qasearch.core.topology import masters
from tests.conftest import start_cluster
from tests.system import wait_for

WAIT_S = 60


def _worker_pids(settings, count: int) -> list[int]:
    """The pids of ``count`` live workers, once the supervisor has started them all."""
    def pids() -> list[int] | None:
        found = [procs.running_pid(settings.run_dir, f"worker-{m.port}", "gears.worker")
                 for m in masters(settings)]
        return found if len(found) == count and all(found) else None

    return wait_for(pids, timeout=WAIT_S, what=f"the supervisor to start {count} workers")


def _wait_gone(pids: list[int], what: str) -> None:
    wait_for(lambda: all(procs.gone(pid) for pid in pids), timeout=WAIT_S, what=what)


def _end(pids: list[int]) -> None:
    """SIGKILL what this test started and left running, so a failure leaves nothing."""
    for pid in pids:
        if not procs.gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_workers_exit_with_their_supervisor_and_it_with_its_run_folder(tmp_path):
    settings = start_cluster(tmp_path, masters=3, replicas=0)
    started: list[int] = []
    try:
        supervisor, _ = workers.start(settings)
        started.append(supervisor)
        first = _worker_pids(settings, 3)
        started += first
        os.kill(supervisor, signal.SIGKILL)
        _wait_gone(first, "the workers of a killed supervisor to exit")

        supervisor, _ = workers.start(settings)
        started.append(supervisor)
        second = _worker_pids(settings, 3)
        started += second
        assert set(second).isdisjoint(first)
        shutil.rmtree(settings.run_dir)
        _wait_gone([supervisor, *second], "the supervisor to exit without its run folder")
        assert not Path(settings.run_dir).exists()  # it exits; it does not make it again
    finally:
        _end(started)
        localcluster.down(settings, purge=True)
