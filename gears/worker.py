"""The shard worker process: one per node, attached to that node only, and its wiring.

Beside a master it answers the master's requests; beside a replica it is a
*standby* (:mod:`gears.standby`): the same model and indexes, built from the
replica's copy, answering over pub/sub when the gateway cannot reach the master,
and the node's worker as it is when the replica is promoted.

Threads, each with its own loop:

* main (at a lower CPU priority): housekeeping every second
  (:mod:`gears.housekeeping`: which partitions the node owns, role changes, a new
  model version swapped in by :mod:`gears.model_swap`), and in between the ingest
  streams (:mod:`gears.indexing`): new or changed passages are pre-tokenised and
  embedded and enter the dense and BM25 indexes; on start every passage lacking
  current tensors is processed;
* heartbeat (every second, :mod:`gears.housekeeping`): the worker's state in
  ``keys.worker_state``;
* requests and key misses (:mod:`gears.serving`): the node's request stream and
  GETs of missing answer keys, answered on a thread pool whose reader forward
  passes all go through one :class:`~gears.batcher.DynamicBatcher`;
* standby channel (:mod:`gears.standby`): the same requests published on the
  node's standby channel (the gateway's fallback when a master cannot answer),
  answered on pub/sub.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import redis

from gears import metrics
from gears.batcher import DynamicBatcher
from gears.engine import AnswerEngine
from gears.housekeeping import HOUSEKEEPING_S, Housekeeping
from gears.indexing import Indexer
from gears.model_swap import ModelSwap
from gears.serving import Serving, reader_forward
from gears.shard_state import ShardState
from gears.standby import IngestTail, StandbyListener
from qasearch.core import keys
from qasearch.core.settings import Settings, load_settings
from qasearch.core.topology import node_client

log = logging.getLogger("qasearch.worker")

REQUEST_THREADS = 8
INGEST_POLL_S = 0.1
# a standby polls its replica's ingest streams less often: it serves only while its
# master cannot, and each poll of its partitions costs CPU the masters' workers need
STANDBY_POLL_S = 0.5


class Worker:
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        # READONLY on every connection: a replica then serves its master's slots
        client = node_client(host, port, settings, readonly=True, socket_timeout=30)
        self.state = ShardState(settings, host, port, client,
                                consumer=f"{socket.gethostname()}-{os.getpid()}")
        self.batcher = DynamicBatcher(
            partial(reader_forward, self.state),
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_batch_wait_ms,
            name="reader-batcher",
        )
        self.pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="request")
        engine = AnswerEngine(client, self.batcher, settings, self.state.stats)
        tail = IngestTail(client)  # a standby's positions in the ingest streams
        self.indexer = Indexer(self.state, engine, tail)
        model_swap = ModelSwap(self.state, engine, self.indexer)
        self.housekeeping = Housekeeping(self.state, engine, self.indexer, tail, model_swap,
                                         self.batcher)
        self.serving = Serving(self.state, engine, self.pool)
        self.listener = StandbyListener(client, self.serving.answer, self.pool.submit,
                                        self.state.stopping)
        self.supervisor_pid = 0  # when set, the worker stops once that parent is gone

    def run(self) -> None:
        """Serve until stopped (SIGTERM) or the supervisor is gone."""
        self.state.metrics_port = metrics.serve(self.state, self.batcher)
        heartbeat = self._start_threads()
        log.info("worker for %s started (consumer %s)", self.state.node, self.state.consumer)
        _lower_priority(self.state.settings.background_nice)  # this thread only, started last
        self._main_loop()
        self.pool.shutdown(wait=True)
        heartbeat.join(HOUSEKEEPING_S + 1)  # its last write must not follow the delete below
        self.batcher.close()
        metrics.withdraw(self.state)
        tag = self.state.ownership.node_tag
        if tag:
            self.state.client.delete(keys.worker_state(tag))  # not ready any more

    def _start_threads(self) -> threading.Thread:
        """Start the request, key-miss, standby and heartbeat threads; returns the last."""
        for target, name in ((self.serving.request_loop, "requests"),
                             (self.serving.keymiss_loop, "keymiss"),
                             (self.listener.run, "standby")):
            threading.Thread(target=target, name=name, daemon=True).start()
        heartbeat = threading.Thread(target=self.housekeeping.heartbeat_loop, name="heartbeat",
                                     daemon=True)
        heartbeat.start()
        return heartbeat

    def _main_loop(self) -> None:
        s = self.state
        next_housekeeping = 0.0
        while not s.stopping.is_set():
            if self.supervisor_pid and os.getppid() != self.supervisor_pid:
                # the supervisor died: a new one starts workers of its own
                log.warning("supervisor (pid %d) is gone; stopping", self.supervisor_pid)
                break
            try:
                if time.monotonic() >= next_housekeeping:
                    self.housekeeping.run_once()
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_S
                if s.model is not None:
                    self.indexer.ingest_once()
                    s.lexical.refresh()  # a no-op unless passages changed
                    s.ready.set()
            except redis.RedisError as exc:
                # node down, failing over or refusing for a moment: keep trying
                log.warning("node %s: %s", s.node, exc)
                s.stopping.wait(1.0)
            s.stopping.wait(STANDBY_POLL_S if s.ownership.standby else INGEST_POLL_S)


def _lower_priority(nice: int) -> None:
    """Give the calling thread (model loads, index builds, ingest) a lower CPU priority.

    On Linux a thread's nice value is its own, and threads started later inherit it:
    the request, batcher and key-miss threads already run, so a model swap or a
    re-embedding competes for the cores with a tenth of a query's weight instead of
    pushing queries past their deadlines.
    """
    if nice <= 0:
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + nice))
    except (OSError, AttributeError) as exc:  # not Linux, or not allowed: run as is
        log.info("background thread keeps its priority: %s", exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="qasearch shard worker for one node (a standby beside a replica)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--supervisor-pid", type=int, default=0,
                        help="the parent supervisor: exit when it is gone (0: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("QASEARCH_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s worker[{args.port}] %(levelname)s %(message)s",
    )
    worker = Worker(load_settings(), args.host, args.port)
    worker.supervisor_pid = args.supervisor_pid
    signal.signal(signal.SIGTERM, lambda *_: worker.state.stopping.set())
    worker.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
