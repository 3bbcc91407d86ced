"""A throw-away system for one measurement: cluster, model package, workers, gateway.

Everything runs on the ports and in the folders of the ``Settings`` it is given
(never the user's system), is started through the same code paths as the
``qasearch`` commands, and :meth:`ScratchSystem.down` stops exactly what it started
and deletes its data (keeping the logs when the measurement failed).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import redis

from qasearch.cluster import gateway, localcluster, workers
from qasearch.core import modelpkg
from qasearch.core.settings import Settings


class ScratchSystem:
    def __init__(self, settings: Settings, package: modelpkg.ModelPackage) -> None:
        self.settings = settings
        self.package = package
        self.started: list[str] = []

    def up(self) -> float:
        """Start the cluster and store the model package; returns seconds taken."""
        started = time.perf_counter()
        self.started.append("cluster")
        localcluster.up(self.settings)
        modelpkg.push_to_cluster(self.settings, self.package, progress=False)
        return time.perf_counter() - started

    def start_workers(self, timeout_s: float) -> float:
        """Start the workers and wait until every one is ready; returns seconds taken."""
        started = time.perf_counter()
        self.started.append("workers")
        workers.start(self.settings)
        workers.wait_ready(self.settings, timeout_s)
        return time.perf_counter() - started

    def start_gateway(self) -> float:
        started = time.perf_counter()
        self.started.append("gateway")
        gateway.start_background(self.settings, wait_s=120.0)
        return time.perf_counter() - started

    @property
    def url(self) -> str:
        return gateway.url(self.settings, "/qasearch")

    def down(self, failed: bool = False) -> None:
        """Stop what was started (gateway, workers, cluster) and delete the cluster's data.

        After a failure the nodes' Redis logs are copied into the run folder first, which
        then stays (with the worker and gateway logs); after success it is removed too.
        """
        if "gateway" in self.started:
            gateway.stop(self.settings)
        if "workers" in self.started:
            workers.stop(self.settings)
        if "cluster" in self.started:
            if failed:
                run_dir = Path(self.settings.run_dir)
                run_dir.mkdir(parents=True, exist_ok=True)
                for spec in localcluster.layout(self.settings):
                    if spec.logfile.exists():
                        shutil.copyfile(spec.logfile, run_dir / f"redis-{spec.port}.log")
            localcluster.down(self.settings, purge=True)
        if not failed:
            shutil.rmtree(self.settings.run_dir, ignore_errors=True)
            for folder in (Path(self.settings.run_dir).parent, Path(self.settings.data_dir).parent):
                try:
                    folder.rmdir()  # only when empty: the folder made for this system
                except OSError:
                    pass
        self.started.clear()


def row_or_failure(key: str, value: object, measure: Callable[[], dict],
                   log: Callable[[str], None] = print) -> dict:
    """``measure()``'s row, or ``{key: value, "error": ...}`` when a fresh system failed
    (a port taken, a timeout): one failing must not lose the others' figures."""
    try:
        return measure()
    except (RuntimeError, OSError, TimeoutError, redis.RedisError) as exc:
        log(f"   failed: {exc}")
        return {key: value, "error": f"{type(exc).__name__}: {exc}"}
