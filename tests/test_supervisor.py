"""The supervisor and its workers never outlive what they belong to.

A worker whose supervisor was killed exits by itself, and a supervisor whose run
folder was removed stops its workers and exits: neither keeps polling a cluster
that is gone. Runs on a cluster of its own (the shared one has live workers).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from qasearch import localcluster, procs, workers
from qasearch.topology import masters
from tests.conftest import start_cluster

WAIT_S = 60


def _worker_pids(settings, count: int) -> list[int]:
    """The pids of ``count`` live workers, once the supervisor has started them all."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        pids = [procs.running_pid(settings.run_dir, f"worker-{m.port}", "gears.worker")
                for m in masters(settings)]
        if len(pids) == count and all(pids):
            return pids
        time.sleep(0.1)
    raise AssertionError(f"the supervisor did not start {count} workers in {WAIT_S}s")


def _all_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if all(procs.gone(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


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
        assert _all_gone(first), "workers outlived their killed supervisor"

        supervisor, _ = workers.start(settings)
        started.append(supervisor)
        second = _worker_pids(settings, 3)
        started += second
        assert set(second).isdisjoint(first)
        shutil.rmtree(settings.run_dir)
        assert _all_gone([supervisor, *second]), "the supervisor outlived its run folder"
        assert not Path(settings.run_dir).exists()  # it exits; it does not make it again
    finally:
        _end(started)
        localcluster.down(settings, purge=True)
