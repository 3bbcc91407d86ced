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
import json
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import redis

from gears import metrics, node_data, reader
from gears.answering import find_candidates, read_passages
from gears.batcher import DynamicBatcher
from gears.engine import AnswerEngine
from gears.lexical import LexicalIndex
from gears.ownership import Ownership, OwnershipTracker
from gears.retrieval import PartitionIndex
from gears.standby import IngestTail, StandbyListener
from gears.stats import WorkerStats
from gears.tensorize import PassageText, embedding_input, tensorize
from qasearch.core import codec, keys, modelpkg
from qasearch.core.models import LoadedModel
from qasearch.core.partitions import MAX_PARTITIONS, in_ranges, partition_tag, slot_of_tag
from qasearch.core.settings import Settings, load_settings
from qasearch.core.topology import node_client

log = logging.getLogger("qasearch.worker")

REQUEST_THREADS = 8
HEARTBEAT_TTL_S = 15
REPLY_TTL_S = 60
KEYMISS_CHANNEL = "__keyevent@0__:keymiss"
HOUSEKEEPING_S = 1.0
INGEST_POLL_S = 0.1
# a standby polls its replica's ingest streams less often: it serves only while its
# master cannot, and each poll of its partitions costs CPU the masters' workers need
STANDBY_POLL_S = 0.5


class Worker:
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.host, self.port = host, port
        # READONLY on every connection: a replica then serves its master's slots
        self.client = node_client(host, port, settings, readonly=True, socket_timeout=30)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self.tracker = OwnershipTracker(self.client, host, port)
        self.ownership = Ownership(ranges=(), node_tag=None, partitions=())
        self.model: LoadedModel | None = None
        self.indexes: dict[int, PartitionIndex] = {}
        self.lexical = LexicalIndex()  # every partition of the node, one BM25 index
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._groups: set[str] = set()
        self._refused_version = ""
        self._loading_version = ""  # a model being loaded, its indexes built (heartbeat)
        self._housekept = 0.0  # when housekeeping last completed (heartbeat)
        self._lock = threading.Lock()
        self.batcher = DynamicBatcher(
            self._forward,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_batch_wait_ms,
            name="reader-batcher",
        )
        self.pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="request")
        self.counters = {"requests": 0, "errors": 0, "passages_tokenised": 0}
        self.stats = WorkerStats()
        self.engine = AnswerEngine(self.client, self.batcher, settings, self.stats)
        self.tail = IngestTail(self.client)  # a standby's positions in the ingest streams
        self.listener = StandbyListener(self.client, self.answer, self.pool.submit,
                                        self.stopping)
        self.metrics_port = 0  # set by run(): where this worker's /metrics listens
        self.supervisor_pid = 0  # when set, the worker stops once that parent is gone

    # --- model --------------------------------------------------------------
    def _forward(self, windows: list) -> list[tuple[np.ndarray, np.ndarray]]:
        model = self.model
        ids, mask, types = reader.pad_batch(windows, self.settings.length_bucket_tokens)
        started = time.perf_counter()
        try:
            start, end = model.reader_logits(ids, mask, types)
        except Exception:
            self.stats.add(model.version, errors=1)
            raise
        elapsed = time.perf_counter() - started
        self.stats.add(
            model.version, batches=1, samples=len(windows), duration_ms=elapsed * 1000.0,
        )
        metrics.observe_batch(len(windows), elapsed)
        return [(start[i], end[i]) for i in range(len(windows))]

    def _refresh_model(self) -> bool:
        """Load the node's current model package if it is new; True when one is loaded."""
        tag = self.ownership.node_tag
        if tag is None:
            return self.model is not None
        version = modelpkg.current_version(self.client, tag)
        if version is None or (self.model is not None and self.model.version == version):
            return self.model is not None
        if version == self._refused_version:
            return self.model is not None
        log.info("loading model %s from %s:%s", version, self.host, self.port)
        self._loading_version = version
        try:
            return self._swap_in(tag, version)
        finally:
            self._loading_version = ""

    def _swap_in(self, tag: str, version: str) -> bool:
        try:
            package = modelpkg.load(self.client, tag, version)
            loaded = LoadedModel.from_package(package, threads=self.settings.torch_threads)
        except (modelpkg.ModelPackageError, RuntimeError, ValueError, KeyError) as exc:
            # A corrupt or incompatible package must not take the node down: keep
            # serving the version already loaded, and do not retry this one.
            self._refused_version = version
            log.error("model %s refused, still serving %s: %s", version,
                      self.model.version if self.model else "nothing", exc)
            return self.model is not None
        previous = self.model
        if previous is not None and (
            previous.reader_tokenizer_id != loaded.reader_tokenizer_id
            or previous.embedder_id != loaded.embedder_id
        ):
            # Another tokenizer or embedder: build every index with the new model first
            # (the old one keeps serving meanwhile), then swap model and indexes in one
            # step, so no request ever sees an empty or half-built index. The new tensors
            # are stored after the swap; a request that meets tensors of the other
            # tokenizer meanwhile tokenises that passage itself (gears.answering).
            built = {part: node_data.build_index(self.client, part, loaded)
                     for part in list(self.indexes)}
            with self._lock:
                self.model = loaded
                self.indexes = {part: index for part, (index, _) in built.items()}
            for part, (_, staged) in built.items():
                self._write_tensors(part, staged)
        else:
            with self._lock:
                self.model = loaded
        if previous is not None:
            for tag in self.ownership.tags():
                self.engine.drop_partition_answers(tag)  # made by the previous model
        log.info("model %s in service (trained=%s)", loaded.version, loaded.trained)
        return True

    # --- partitions and tensors --------------------------------------------
    def _store_tensors(self, part: int, passages: list[PassageText]) -> None:
        """Tensorize ``passages`` into the indexes, and store their tensors (on a master:
        a standby's replica refuses writes, and the master's worker stores them)."""
        with metrics.EMBEDDER_SECONDS.time():
            results = tensorize(self.model, passages)
        if not self.ownership.standby:
            node_data.write_tensors(self.client, part, [
                (passage.pid, fields) for passage, (fields, _) in zip(passages, results)])
        index = self._index(part)
        for passage, (_, vector) in zip(passages, results):
            index.upsert(passage.pid, vector)
        self.lexical.upsert_many(part, [(p.pid, embedding_input(p.title, p.text))
                                        for p in passages])
        self.counters["passages_tokenised"] += len(passages)

    def _index(self, part: int) -> PartitionIndex:
        with self._lock:
            index = self.indexes.get(part)
            if index is None:
                index = self.indexes[part] = PartitionIndex(self.model.embedding_dim)
            return index

    def _write_tensors(self, part: int, staged: list[tuple[str, dict[str, bytes]]]) -> None:
        if self.ownership.standby:
            return  # a replica refuses writes; the master's worker stores these
        node_data.write_tensors(self.client, part, staged)
        self.counters["passages_tokenised"] += len(staged)

    def reconcile(self, part: int) -> None:
        """Load a partition fully, then serve it: current tensors go into the index,
        missing or stale ones are made and stored; every text goes into the BM25 index."""
        tag = partition_tag(part)
        if self.ownership.standby:
            self.tail.mark(part)  # every change from here on is read by _follow_replica
        elif part in self.ownership.partitions:
            node_data.ensure_group(self.client, self._groups, keys.ingest_stream(tag), start_id="$")
        index, staged = node_data.build_index(self.client, part, self.model)
        self._write_tensors(part, staged)
        node_data.build_lexical(self.client, self.lexical, part, index.pids())
        with self._lock:
            self.indexes[part] = index
        log.info("partition %s: %d passages (%d tokenised now)", tag, len(index), len(staged))

    def _ingest_once(self) -> int:
        """Process what is waiting on the ingest streams; returns entries handled."""
        if self.ownership.standby:
            return self._follow_replica()
        handled = 0
        for part in self.ownership.partitions:
            if part not in self.indexes:
                self.reconcile(part)
            stream = keys.ingest_stream(partition_tag(part))
            if stream not in self._groups:
                # a partition warmed while importing has no group yet
                node_data.ensure_group(self.client, self._groups, stream, start_id="$")
                handled += node_data.adopt_pending(self.client, self.consumer, stream,
                                                   lambda e, p=part: self._apply(p, e))
            handled += node_data.read_group(self.client, self.consumer, stream, ">",
                                            lambda e, p=part: self._apply(p, e))
        return handled

    def _apply(self, part: int, entries: list) -> None:
        """Apply ingest entries (``op=set|del``, ``pid``) to the indexes and tensors."""
        sets, dels = [], []
        for _entry_id, fields in entries:
            pid = fields[b"pid"].decode()
            (dels if fields.get(b"op") == b"del" else sets).append(pid)
        self._changed(part, sets, dels)

    def _changed(self, part: int, sets: list[str], dels: list[str]) -> None:
        self.engine.drop_passage_answers(partition_tag(part), sets + dels)
        if sets:
            self._store_tensors(part, node_data.passage_texts(self.client, part, sets))
        for pid in dels:
            self._index(part).remove(pid)
            self.lexical.remove(part, pid)

    def _follow_replica(self) -> int:
        """A standby's ingest: the master's changes as they reach the replica."""
        for part in self.ownership.partitions:
            if part not in self.indexes or not self.tail.tracked(part):
                self.reconcile(part)
        changes = self.tail.poll()
        for part, (sets, dels) in changes.items():
            self._changed(part, sets, dels)
        return sum(len(s) + len(d) for s, d in changes.values())

    # --- requests -----------------------------------------------------------
    def _handle(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """A request from the node's stream: answered on its reply list, then acknowledged."""
        payload = self.answer(fields)
        reply_key = fields[b"reply"].decode()
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(reply_key, json.dumps(payload))
        pipe.expire(reply_key, REPLY_TTL_S)
        pipe.xack(stream, keys.WORKER_GROUP, entry_id)
        pipe.execute()

    def answer(self, fields: dict[bytes, bytes]) -> dict:
        """The reply to one request (stream or standby channel): phase 1 (``op`` retrieve),
        phase 2 (``read``), or ``ping`` (is this worker ready); errors become replies."""
        payload: dict
        try:
            if fields.get(b"op") == b"ping":
                return {"ok": True, "ready": self.ready.is_set(),
                        "passages": sum(len(i) for i in dict(self.indexes).values()),
                        **self._identity()}
            deadline = float(fields[b"deadline"])
            if time.time() * 1000.0 > deadline:
                raise TimeoutError("deadline passed before the worker picked the request up")
            with self._lock:  # model and indexes swap together (_refresh_model)
                model, indexes = self.model, dict(self.indexes)
            text = fields[b"question"].decode()
            with metrics.REQUEST_SECONDS.time():
                if fields.get(b"op") == b"read":
                    payload = read_passages(
                        self.engine, model, text, json.loads(fields[b"passages"]),
                        use_cache=fields.get(b"cache", b"1") == b"1")
                else:
                    payload = find_candidates(
                        self.engine, indexes, self.lexical, text,
                        self._question_vector(model, text, fields), int(fields[b"depth"]),
                        self._unloaded(fields, indexes))
            payload["ok"] = True
            self.counters["requests"] += 1
        except Exception as exc:  # noqa: BLE001 - every request ends in an answer or an error
            log.exception("request failed")
            payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.counters["errors"] += 1
        payload.update(self._identity())
        return payload

    def _question_vector(self, model: LoadedModel, text: str, fields: dict) -> np.ndarray:
        """The question's embedding as the gateway sent it, or made here when the gateway
        embedded with another model (a swap in progress): the vector must match the one
        this node's index was built from."""
        if fields.get(b"embedder", b"").decode() == model.embedder_id:
            return codec.decode(fields[b"embedding"])
        with metrics.EMBEDDER_SECONDS.time():
            return model.embed([text])[0]

    def _unloaded(self, fields: dict[bytes, bytes], indexes: dict) -> list[int]:
        """Partitions of the corpus (count sent by the gateway) in this node's slots
        that it holds no index of: empty ones, or ones still loading."""
        total = int(fields.get(b"partitions", b"0") or 0)
        ranges = self.ownership.ranges
        return [p for p in range(min(total, MAX_PARTITIONS)) if p not in indexes
                and in_ranges(slot_of_tag(partition_tag(p)), ranges)]

    def _identity(self) -> dict:
        model = self.model
        return {
            "node": f"{self.host}:{self.port}",
            "partitions": self.ownership.tags(),
            "model": {"version": model.version, "trained": model.trained} if model else None,
            "standby": self.ownership.standby,  # answered from a replica's copy
        }

    def _request_loop(self) -> None:
        while not self.stopping.is_set():
            tag = self.ownership.node_tag
            if tag is None or not self.ready.is_set() or not self.ownership.is_master:
                time.sleep(0.2)  # a standby is asked over its channel (gears.standby)
                continue
            stream = keys.requests_stream(tag)
            if stream not in self._groups:
                node_data.ensure_group(self.client, self._groups, stream)
                node_data.claim_orphans(
                    self.client, self.consumer, stream,
                    lambda e, f, s=stream: self.pool.submit(self._handle, s, e, f))
            try:
                reply = self.client.xreadgroup(
                    keys.WORKER_GROUP, self.consumer, {stream: ">"}, count=16, block=500
                )
            except redis.RedisError as exc:
                log.warning("reading requests: %s", exc)
                time.sleep(0.5)
                continue
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    self.pool.submit(self._handle, stream, entry_id, fields)

    # --- key-miss trigger -----------------------------------------------------
    def _keymiss_loop(self) -> None:
        """GETs of missing answer keys on this node make the worker compute them."""
        while not self.stopping.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(KEYMISS_CHANNEL)
                while not self.stopping.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    serving = self.ready.is_set() and self.ownership.is_master
                    if message and serving and self.model is not None:
                        key = message["data"]
                        if isinstance(key, bytes) and key.startswith(b"bertqa{"):
                            self.pool.submit(self._answer_keymiss, key.decode("utf-8", "replace"))
            except redis.ConnectionError:
                time.sleep(0.5)
            finally:
                pubsub.close()

    def _answer_keymiss(self, key: str) -> None:
        try:
            self.engine.on_keymiss(self.model, key, set(self.ownership.tags()))
        except Exception:  # noqa: BLE001 - a bad key must not stop the worker
            log.exception("key-miss answer for %r failed", key)

    # --- housekeeping -------------------------------------------------------
    def _heartbeat(self) -> None:
        tag = self.ownership.node_tag
        if tag is None or self.ownership.standby:
            return  # a replica refuses writes: a standby answers ``ping`` instead
        with self._lock:
            indexes = dict(self.indexes)
        state = {
            "pid": os.getpid(),
            "node": f"{self.host}:{self.port}",
            "node_id": self.tracker.node_id,  # tells a promoted replica's copy apart
            "consumer": self.consumer,
            "model": self.model.version if self.model else "",
            "trained": int(bool(self.model and self.model.trained)),
            "partitions": ",".join(self.ownership.tags()),
            # loaded while the slot is still being imported (cluster add-node)
            "warm": ",".join(partition_tag(p) for p in self.ownership.importing
                             if p in indexes),
            "passages": sum(len(i) for i in indexes.values()),
            "ready": int(self.ready.is_set()),
            "refused": self._refused_version,
            "loading": self._loading_version,
            "housekept": self._housekept,
            "heartbeat": time.time(),
            "metrics_port": self.metrics_port,
            "batches": self.batcher.batches,
            "sequences": self.batcher.items,
            **self.counters,
        }
        self.stats.flush(self.client, tag)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(keys.worker_state(tag), mapping=state)
        pipe.expire(keys.worker_state(tag), HEARTBEAT_TTL_S)
        pipe.execute()

    def _housekeeping(self) -> None:
        before, self.ownership = self.ownership, self.tracker.read()
        if before.standby and self.ownership.is_master:
            # promoted: the indexes are current already; only the channels change
            log.info("node promoted: the standby now serves %s as master",
                     self.ownership.node_tag)
            self.tail.forget()
            self._groups.clear()  # request and ingest groups are joined (and adopted) anew
        elif before.is_master and self.ownership.standby:
            # demoted (a restarted master rejoins as a replica, possibly resynced in
            # full): index again from what the replica holds
            log.info("node is a replica now: standby for %s", self.ownership.node_tag)
            with self._lock:
                for part in list(self.indexes):
                    self.lexical.drop_partition(part)
                self.indexes = {}
            self.tail.forget()
            self._groups.clear()
        self.engine.read_only = self.ownership.standby
        keep = set(self.ownership.partitions) | set(self.ownership.importing)
        with self._lock:
            for part in list(self.indexes):
                if part not in keep:
                    del self.indexes[part]
                    self.lexical.drop_partition(part)
        if self._refresh_model():
            for part in self.ownership.importing:
                if part not in self.indexes:
                    self.reconcile(part)  # loaded before the slot switches to this node
        self._housekept = time.time()

    def _heartbeat_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self._heartbeat()
            except redis.RedisError as exc:
                log.warning("heartbeat on %s:%s: %s", self.host, self.port, exc)
            self.stopping.wait(HOUSEKEEPING_S)

    def run(self) -> None:
        self.metrics_port = metrics.serve(self)
        threading.Thread(target=self._request_loop, name="requests", daemon=True).start()
        threading.Thread(target=self._keymiss_loop, name="keymiss", daemon=True).start()
        threading.Thread(target=self.listener.run, name="standby", daemon=True).start()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        log.info("worker for %s:%s started (consumer %s)", self.host, self.port, self.consumer)
        _lower_priority(self.settings.background_nice)  # this thread only, started last
        next_housekeeping = 0.0
        while not self.stopping.is_set():
            if self.supervisor_pid and os.getppid() != self.supervisor_pid:
                # the supervisor died: a new one starts workers of its own
                log.warning("supervisor (pid %d) is gone; stopping", self.supervisor_pid)
                break
            try:
                if time.monotonic() >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_S
                if self.model is not None:
                    self._ingest_once()
                    self.lexical.refresh()  # a no-op unless passages changed
                    self.ready.set()
            except redis.RedisError as exc:
                # node down, failing over or refusing for a moment: keep trying
                log.warning("node %s:%s: %s", self.host, self.port, exc)
                self.stopping.wait(1.0)
            self.stopping.wait(STANDBY_POLL_S if self.ownership.standby else INGEST_POLL_S)
        self.pool.shutdown(wait=True)
        heartbeat.join(HOUSEKEEPING_S + 1)  # its last write must not follow the delete below
        self.batcher.close()
        metrics.withdraw(self)
        if self.ownership.node_tag:
            self.client.delete(keys.worker_state(self.ownership.node_tag))  # not ready any more


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
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    worker.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
