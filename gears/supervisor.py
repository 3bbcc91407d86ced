"""Keep one worker process per node alive: every master, and every replica too when
``standby_workers`` is on; with ``--host A``, only the nodes on host A.

Every second the supervisor reads the cluster's nodes (``CLUSTER SHARDS``, from any
node that answers) and reconciles: a node it serves without a live worker gets one
(a dead worker is restarted, after a short back-off if it keeps dying), a worker
whose node failed, left, or (standby workers off) is a replica now, is stopped. A
worker decides its role itself from its node's ``CLUSTER SLOTS``: on a replica it
stands by, and when the replica is promoted the same process serves the master, so
after a failover moves a master to another host, that host's supervisor already
runs its worker. Worker pids are written to ``<run_dir>/worker-<port>.pid``
(``worker-<host>-<port>.pid`` under ``--host``, so the supervisors of several hosts
can share a machine and a run folder) for ``qasearch workers status``.

One supervisor per host: ``--host`` is compared with each node's endpoint, IP and
announced host name by what they resolve to (:func:`qasearch.core.hostlayout.same_host`),
so ``--host redis-1`` finds the node of the compose service ``redis-1`` whether the
cluster announces names or IPs.

The run folder is the supervisor's lease: when it is removed (``cluster down
--purge``, a test's temporary folder cleaned up), the supervisor stops its workers
and exits instead of polling a cluster that is gone. A worker whose supervisor dies
exits by itself (``gears.worker``), so neither is ever left behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from qasearch.core import hostlayout, procs
from qasearch.core.clusternodes import Node, cluster_nodes
from qasearch.core.procs import worker_name
from qasearch.core.settings import Settings, load_settings

log = logging.getLogger("qasearch.supervisor")

POLL_S = 1.0
MAX_BACKOFF_S = 10.0


def served(nodes: list[Node], host: str, standby_workers: bool) -> dict[tuple[str, int], Node]:
    """The nodes a supervisor of ``host`` ("" = every host) runs a worker for."""
    return {(n.host, n.port): n for n in nodes
            if not n.failed and (standby_workers or n.role == "master")
            and (not host or n.on(host))}


@dataclass
class _Child:
    node: Node
    proc: subprocess.Popen
    started: float
    restarts: int = 0


@dataclass
class Supervisor:
    settings: Settings
    host: str = ""  # serve only the nodes on this host; "" = every node
    children: dict[tuple[str, int], _Child] = field(default_factory=dict)
    known: list[tuple[str, int]] = field(default_factory=list)
    stopping: bool = False

    def _discover(self) -> list[Node] | None:
        for via in (None, self.known):  # the startup nodes, then every node seen last time
            try:
                found = cluster_nodes(self.settings, via=via)
            except (redis.RedisError, OSError):
                continue
            self.known = [(n.host, n.port) for n in found if not n.failed]
            return found
        return None

    def _name(self, node: Node) -> str:
        return worker_name(self.host, node.port)

    def _spawn(self, node: Node, restarts: int = 0) -> None:
        name = self._name(node)
        log_path = procs.log_file(self.settings.run_dir, name)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gears.worker", "--host", node.host,
                 "--port", str(node.port), "--supervisor-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        procs.pid_file(self.settings.run_dir, name).write_text(f"{proc.pid}\n")
        self.children[(node.host, node.port)] = _Child(node, proc, time.monotonic(), restarts)
        log.info("worker for %s %s started (pid %d)", node.role, node.address, proc.pid)

    def _stop_child(self, child: _Child) -> None:
        if child.proc.poll() is None:
            child.proc.terminate()
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        procs.pid_file(self.settings.run_dir, self._name(child.node)).unlink(missing_ok=True)

    def reconcile(self) -> None:
        hostlayout.forget_resolved()  # a container that restarted may have a new address
        found = self._discover()
        if found is None:
            log.warning("no cluster node answers; keeping current workers")
            return
        wanted = served(found, self.host, self.settings.standby_workers)
        for addr, child in list(self.children.items()):
            if addr not in wanted:
                log.info("%s:%s failed, left, or is not served here now; stopping its worker",
                         *addr)
                self._stop_child(child)
                del self.children[addr]
        now = time.monotonic()
        for addr, node in wanted.items():
            child = self.children.get(addr)
            if child is None:
                self._spawn(node)
            elif child.proc.poll() is not None:
                backoff = min(MAX_BACKOFF_S, 0.5 * (2 ** child.restarts))
                lived = now - child.started
                if lived >= backoff:
                    log.warning(
                        "worker for %s exited with %s; restarting",
                        node.address, child.proc.returncode,
                    )
                    self._spawn(node, restarts=0 if lived > 60 else child.restarts + 1)

    def run(self) -> None:
        run_dir = Path(self.settings.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        while not self.stopping:
            if not run_dir.is_dir():
                log.warning("run folder %s is gone; stopping the workers", run_dir)
                break
            self.reconcile()
            deadline = time.monotonic() + POLL_S
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.05)
        for child in self.children.values():
            self._stop_child(child)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="qasearch worker supervisor")
    parser.add_argument("--host", default="",
                        help="serve only the nodes on this host (address or name; "
                             "default: every node of the cluster)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("QASEARCH_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s supervisor{'[' + args.host + ']' if args.host else ''} "
               f"%(levelname)s %(message)s",
    )
    supervisor = Supervisor(load_settings(), host=args.host)

    def _stop(*_: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    supervisor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
