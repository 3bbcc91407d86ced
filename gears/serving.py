"""Answering what is asked of the node: its request stream, its standby channel and
GETs of missing answer keys.

A master's worker reads phase-1 ("retrieve") and phase-2 ("read") requests from
the node's request stream (consumer group ``keys.WORKER_GROUP``) and pushes each
reply on the request's reply list; a standby is asked the same over pub/sub
(:class:`~gears.standby.StandbyListener` calls :meth:`Serving.answer`). Requests
are answered on the worker's thread pool (:mod:`gears.answering`), and every
reader forward pass goes through the worker's one
:class:`~gears.batcher.DynamicBatcher`, whose handler is :func:`reader_forward`.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import redis

from gears import metrics, node_data, reader
from gears.answering import find_candidates, read_passages
from gears.engine import AnswerEngine
from gears.shard_state import ShardState
from qasearch.core import codec, keys
from qasearch.core.models import LoadedModel
from qasearch.core.partitions import MAX_PARTITIONS, in_ranges, partition_tag, slot_of_tag

log = logging.getLogger("qasearch.worker")

REPLY_TTL_S = 60
KEYMISS_CHANNEL = "__keyevent@0__:keymiss"


def reader_forward(state: ShardState, windows: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """One reader forward pass of the model in service over a batch of windows."""
    model = state.model
    ids, mask, types = reader.pad_batch(windows, state.settings.length_bucket_tokens)
    started = time.perf_counter()
    try:
        start, end = model.reader_logits(ids, mask, types)
    except Exception:
        state.stats.add(model.version, errors=1)
        raise
    elapsed = time.perf_counter() - started
    state.stats.add(
        model.version, batches=1, samples=len(windows), duration_ms=elapsed * 1000.0,
    )
    metrics.observe_batch(len(windows), elapsed)
    return [(start[i], end[i]) for i in range(len(windows))]


class Serving:
    def __init__(self, state: ShardState, engine: AnswerEngine,
                 pool: ThreadPoolExecutor) -> None:
        self.state = state
        self.engine = engine
        self.pool = pool

    def answer(self, fields: dict[bytes, bytes]) -> dict:
        """The reply to one request (stream or standby channel): phase 1 (``op`` retrieve),
        phase 2 (``read``), or ``ping`` (is this worker ready); errors become replies."""
        s = self.state
        payload: dict
        try:
            if fields.get(b"op") == b"ping":
                return {"ok": True, "ready": s.ready.is_set(),
                        "passages": sum(len(i) for i in dict(s.indexes).values()),
                        **self._identity()}
            deadline = float(fields[b"deadline"])
            if time.time() * 1000.0 > deadline:
                raise TimeoutError("deadline passed before the worker picked the request up")
            with s.lock:  # model and indexes swap together (gears.model_swap)
                model, indexes = s.model, dict(s.indexes)
            text = fields[b"question"].decode()
            with metrics.REQUEST_SECONDS.time():
                if fields.get(b"op") == b"read":
                    payload = read_passages(
                        self.engine, model, text, json.loads(fields[b"passages"]),
                        use_cache=fields.get(b"cache", b"1") == b"1")
                else:
                    payload = find_candidates(
                        self.engine, indexes, s.lexical, text,
                        self._question_vector(model, text, fields), int(fields[b"depth"]),
                        self._unloaded(fields, indexes))
            payload["ok"] = True
            s.counters["requests"] += 1
        except Exception as exc:  # noqa: BLE001 - every request ends in an answer or an error
            log.exception("request failed")
            payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            s.counters["errors"] += 1
        payload.update(self._identity())
        return payload

    def request_loop(self) -> None:
        """Read the node's request stream while the node is a master and the worker ready."""
        s = self.state
        while not s.stopping.is_set():
            tag = s.ownership.node_tag
            if tag is None or not s.ready.is_set() or not s.ownership.is_master:
                time.sleep(0.2)  # a standby is asked over its channel (gears.standby)
                continue
            stream = keys.requests_stream(tag)
            if stream not in s.groups:
                node_data.ensure_group(s.client, s.groups, stream)
                node_data.claim_orphans(
                    s.client, s.consumer, stream,
                    lambda e, f, st=stream: self.pool.submit(self._handle, st, e, f))
            try:
                reply = s.client.xreadgroup(
                    keys.WORKER_GROUP, s.consumer, {stream: ">"}, count=16, block=500
                )
            except redis.RedisError as exc:
                log.warning("reading requests: %s", exc)
                time.sleep(0.5)
                continue
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    self.pool.submit(self._handle, stream, entry_id, fields)

    def keymiss_loop(self) -> None:
        """GETs of missing answer keys on this node make the worker compute them."""
        s = self.state
        while not s.stopping.is_set():
            pubsub = s.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(KEYMISS_CHANNEL)
                while not s.stopping.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    serving = s.ready.is_set() and s.ownership.is_master
                    if message and serving and s.model is not None:
                        key = message["data"]
                        if isinstance(key, bytes) and key.startswith(b"bertqa{"):
                            self.pool.submit(self._answer_keymiss, key.decode("utf-8", "replace"))
            except redis.ConnectionError:
                time.sleep(0.5)
            finally:
                pubsub.close()

    def _handle(self, stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """A request from the node's stream: answered on its reply list, then acknowledged."""
        payload = self.answer(fields)
        reply_key = fields[b"reply"].decode()
        pipe = self.state.client.pipeline(transaction=False)
        pipe.rpush(reply_key, json.dumps(payload))
        pipe.expire(reply_key, REPLY_TTL_S)
        pipe.xack(stream, keys.WORKER_GROUP, entry_id)
        pipe.execute()

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
        ranges = self.state.ownership.ranges
        return [p for p in range(min(total, MAX_PARTITIONS)) if p not in indexes
                and in_ranges(slot_of_tag(partition_tag(p)), ranges)]

    def _identity(self) -> dict:
        model = self.state.model
        return {
            "node": self.state.node,
            "partitions": self.state.ownership.tags(),
            "model": {"version": model.version, "trained": model.trained} if model else None,
            "standby": self.state.ownership.standby,  # answered from a replica's copy
        }

    def _answer_keymiss(self, key: str) -> None:
        try:
            self.engine.on_keymiss(self.state.model, key, set(self.state.ownership.tags()))
        except Exception:  # noqa: BLE001 - a bad key must not stop the worker
            log.exception("key-miss answer for %r failed", key)
