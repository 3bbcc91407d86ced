"""Keep one worker process per master node alive.

Every second the supervisor reads the cluster's masters (from any node that
answers) and reconciles: a master without a live worker gets one (a dead worker
is restarted, after a short back-off if it keeps dying), a worker whose node is
no longer a master is stopped. Worker pids are written to
``<run_dir>/worker-<port>.pid`` so ``qasearch workers status`` can show them.

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

from qasearch import procs
from qasearch.settings import Settings, load_settings
from qasearch.topology import Master, masters

log = logging.getLogger("qasearch.supervisor")

POLL_S = 1.0
MAX_BACKOFF_S = 10.0


@dataclass
class _Child:
    master: Master
    proc: subprocess.Popen
    started: float
    restarts: int = 0


@dataclass
class Supervisor:
    settings: Settings
    children: dict[tuple[str, int], _Child] = field(default_factory=dict)
    known: list[tuple[str, int]] = field(default_factory=list)
    stopping: bool = False

    def _discover(self) -> list[Master] | None:
        candidates = [None] + [addr for addr in self.known]
        for via in candidates:
            try:
                found = masters(self.settings, via=via)
            except (redis.RedisError, OSError):
                continue
            self.known = [(m.host, m.port) for m in found]
            return found
        return None

    def _spawn(self, master: Master, restarts: int = 0) -> None:
        name = f"worker-{master.port}"
        log_path = procs.log_file(self.settings.run_dir, name)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gears.worker", "--host", master.host,
                 "--port", str(master.port), "--supervisor-pid", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        procs.pid_file(self.settings.run_dir, name).write_text(f"{proc.pid}\n")
        self.children[(master.host, master.port)] = _Child(master, proc, time.monotonic(), restarts)
        log.info("worker for %s started (pid %d)", master.address, proc.pid)

    def _stop_child(self, child: _Child) -> None:
        if child.proc.poll() is None:
            child.proc.terminate()
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        procs.pid_file(self.settings.run_dir, f"worker-{child.master.port}").unlink(missing_ok=True)

    def reconcile(self) -> None:
        found = self._discover()
        if found is None:
            log.warning("no cluster node answers; keeping current workers")
            return
        wanted = {(m.host, m.port): m for m in found}
        for addr, child in list(self.children.items()):
            if addr not in wanted:
                log.info("%s:%s is no longer a master; stopping its worker", *addr)
                self._stop_child(child)
                del self.children[addr]
        now = time.monotonic()
        for addr, master in wanted.items():
            child = self.children.get(addr)
            if child is None:
                self._spawn(master)
            elif child.proc.poll() is not None:
                backoff = min(MAX_BACKOFF_S, 0.5 * (2 ** child.restarts))
                lived = now - child.started
                if lived >= backoff:
                    log.warning(
                        "worker for %s exited with %s; restarting",
                        master.address, child.proc.returncode,
                    )
                    self._spawn(master, restarts=0 if lived > 60 else child.restarts + 1)

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
    argparse.ArgumentParser(description="qasearch worker supervisor").parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("QASEARCH_LOG_LEVEL", "INFO"),
        format="%(asctime)s supervisor %(levelname)s %(message)s",
    )
    supervisor = Supervisor(load_settings())

    def _stop(*_: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    supervisor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
