"""The shard worker: one process per node, attached to that node only.

Beside a master it answers the master's requests; beside a replica it is a
*standby* (:mod:`gears.standby`): the same model and indexes, built from the
replica's copy, answering over pub/sub when the gateway cannot reach the master,
and the node's worker as it is when the replica is promoted.

Loops, each on its own thread:

* housekeeping (every second): which partitions the node owns, which model
  version is current (hot swap);
* heartbeat (every second, on its own thread so that a long model load or index
  build never lets it lapse): the worker's state in ``keys.worker_state``;
* ingest: new or changed passages from each partition's ingest stream are
  pre-tokenised and embedded (:mod:`gears.tensorize`) and enter the in-memory
  dense index and the node's BM25 index (:mod:`gears.lexical`); on start, every
  passage lacking current tensors is processed;
* standby channel: the same requests published on the node's standby channel
  (the gateway's fallback when a master cannot answer), answered on pub/sub;
* requests: phase-1 ("retrieve") and phase-2 ("read") requests from the node's
  request stream (consumer group ``keys.WORKER_GROUP``) are answered by a thread
  pool (:mod:`gears.answering`) whose reader forward passes all go through one
  :class:`~gears.batcher.DynamicBatcher`; the reply is pushed on the request's
  reply list.
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
from gears.indexing import Indexer
from gears.model_swap import ModelSwap
from gears.ownership import OwnershipTracker
from gears.serving import Serving, reader_forward
from gears.shard_state import ShardState
from gears.standby import IngestTail, StandbyListener
from qasearch import keys
from qasearch.partitions import partition_tag
from qasearch.settings import Settings, load_settings
from qasearch.topology import node_client

log = logging.getLogger("qasearch.worker")

REQUEST_THREADS = 8
HEARTBEAT_TTL_S = 15
HOUSEKEEPING_S = 1.0
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
        self.tracker = OwnershipTracker(client, host, port)
        self._housekept = 0.0  # when housekeeping last completed (heartbeat)
        self.batcher = DynamicBatcher(
            partial(reader_forward, self.state),
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_batch_wait_ms,
            name="reader-batcher",
        )
        self.pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="request")
        self.engine = AnswerEngine(client, self.batcher, settings, self.state.stats)
        self.tail = IngestTail(client)  # a standby's positions in the ingest streams
        self.indexer = Indexer(self.state, self.engine, self.tail)
        self.model_swap = ModelSwap(self.state, self.engine, self.indexer)
        self.serving = Serving(self.state, self.engine, self.pool)
        self.listener = StandbyListener(client, self.serving.answer, self.pool.submit,
                                        self.state.stopping)
        self.supervisor_pid = 0  # when set, the worker stops once that parent is gone

    # --- housekeeping -------------------------------------------------------
    def _heartbeat(self) -> None:
        tag = self.state.ownership.node_tag
        if tag is None or self.state.ownership.standby:
            return  # a replica refuses writes: a standby answers ``ping`` instead
        with self.state.lock:
            indexes = dict(self.state.indexes)
        state = {
            "pid": os.getpid(),
            "node": f"{self.state.host}:{self.state.port}",
            "node_id": self.tracker.node_id,  # tells a promoted replica's copy apart
            "consumer": self.state.consumer,
            "model": self.state.model.version if self.state.model else "",
            "trained": int(bool(self.state.model and self.state.model.trained)),
            "partitions": ",".join(self.state.ownership.tags()),
            # loaded while the slot is still being imported (cluster add-node)
            "warm": ",".join(partition_tag(p) for p in self.state.ownership.importing
                             if p in indexes),
            "passages": sum(len(i) for i in indexes.values()),
            "ready": int(self.state.ready.is_set()),
            "refused": self.model_swap.refused_version,
            "loading": self.model_swap.loading_version,
            "housekept": self._housekept,
            "heartbeat": time.time(),
            "metrics_port": self.state.metrics_port,
            "batches": self.batcher.batches,
            "sequences": self.batcher.items,
            **self.state.counters,
        }
        self.state.stats.flush(self.state.client, tag)
        pipe = self.state.client.pipeline(transaction=False)
        pipe.hset(keys.worker_state(tag), mapping=state)
        pipe.expire(keys.worker_state(tag), HEARTBEAT_TTL_S)
        pipe.execute()

    def _housekeeping(self) -> None:
        before, self.state.ownership = self.state.ownership, self.tracker.read()
        if before.standby and self.state.ownership.is_master:
            # promoted: the indexes are current already; only the channels change
            log.info("node promoted: the standby now serves %s as master",
                     self.state.ownership.node_tag)
            self.tail.forget()
            self.state.groups.clear()  # request and ingest groups are joined (and adopted) anew
        elif before.is_master and self.state.ownership.standby:
            # demoted (a restarted master rejoins as a replica, possibly resynced in
            # full): index again from what the replica holds
            log.info("node is a replica now: standby for %s", self.state.ownership.node_tag)
            self.indexer.drop_all()
            self.tail.forget()
            self.state.groups.clear()
        self.engine.read_only = self.state.ownership.standby
        self.indexer.drop_except(set(self.state.ownership.partitions)
                                 | set(self.state.ownership.importing))
        if self.model_swap.refresh():
            for part in self.state.ownership.importing:
                if part not in self.state.indexes:
                    self.indexer.reconcile(part)  # loaded before the slot switches to this node
        self._housekept = time.time()

    def _heartbeat_loop(self) -> None:
        while not self.state.stopping.is_set():
            try:
                self._heartbeat()
            except redis.RedisError as exc:
                log.warning("heartbeat on %s:%s: %s", self.state.host, self.state.port, exc)
            self.state.stopping.wait(HOUSEKEEPING_S)

    def run(self) -> None:
        self.state.metrics_port = metrics.serve(self.state, self.batcher)
        threading.Thread(target=self.serving.request_loop, name="requests", daemon=True).start()
        threading.Thread(target=self.serving.keymiss_loop, name="keymiss", daemon=True).start()
        threading.Thread(target=self.listener.run, name="standby", daemon=True).start()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        log.info("worker for %s started (consumer %s)", self.state.node, self.state.consumer)
        _lower_priority(self.state.settings.background_nice)  # this thread only, started last
        next_housekeeping = 0.0
        while not self.state.stopping.is_set():
            if self.supervisor_pid and os.getppid() != self.supervisor_pid:
                # the supervisor died: a new one starts workers of its own
                log.warning("supervisor (pid %d) is gone; stopping", self.supervisor_pid)
                break
            try:
                if time.monotonic() >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_S
                if self.state.model is not None:
                    self.indexer.ingest_once()
                    self.state.lexical.refresh()  # a no-op unless passages changed
                    self.state.ready.set()
            except redis.RedisError as exc:
                # node down, failing over or refusing for a moment: keep trying
                log.warning("node %s:%s: %s", self.state.host, self.state.port, exc)
                self.state.stopping.wait(1.0)
            standby = self.state.ownership.standby
            self.state.stopping.wait(STANDBY_POLL_S if standby else INGEST_POLL_S)
        self.pool.shutdown(wait=True)
        heartbeat.join(HOUSEKEEPING_S + 1)  # its last write must not follow the delete below
        self.batcher.close()
        metrics.withdraw(self.state)
        tag = self.state.ownership.node_tag
        if tag:
            self.state.client.delete(keys.worker_state(tag))  # not ready any more


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
