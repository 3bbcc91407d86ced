"""Send one question to several masters' workers at once and gather the replies.

A question goes out twice (docs/architecture.md, "Two phases"): phase 1
(:meth:`Fanout.ask`) asks every master for its best candidate passages, phase 2
(:meth:`Fanout.read`) asks only the masters holding the chosen ones to read them.
Each request is an entry on the node's request stream (``keys.requests_stream``);
the worker answers on a list (``keys.reply``) that the gateway pops with
``BLPOP``. All entries are added before any reply is awaited, so the shards work
in parallel and the wait is that of the slowest shard, bounded by the deadline.

A master that cannot be reached, or answers later than ``standby_after_ms``, is
asked through the standby worker beside one of its replicas instead (over
pub/sub, :mod:`qasearch.core.standbywire`): its partitions are answered from the replica's
copy while the cluster fails over.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.metrics import observe_shard
from qasearch.core import codec, heartbeat, keys
from qasearch.core.settings import Settings
from qasearch.core.standbywire import StandbyCall
from qasearch.core.topology import Master, masters, node_client

STREAM_MAXLEN = 10_000
TOPOLOGY_TTL_S = 2.0
SUSPECT_S = 2.0  # after a master fails, its standby is asked first for this long
HEDGE_SLICE_S = 0.01
WATCH_SLICE_S = 0.25  # how often a late master's worker is checked on


@dataclass
class ShardReply:
    master: Master
    ok: bool
    payload: dict = field(default_factory=dict)
    reason: str = ""
    via: str = ""  # the replica whose standby worker answered, when not the master

    @property
    def standby(self) -> bool:
        return bool(self.via)

    @property
    def node(self) -> str:
        return self.master.address


class Fanout:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._masters: list[Master] = []
        self._clients: dict[str, redis.Redis] = {}
        self._checked = 0.0
        self._suspects: dict[str, float] = {}  # master address -> monotonic time

    def masters(self) -> list[Master]:
        if time.monotonic() - self._checked > TOPOLOGY_TTL_S or not self._masters:
            self._masters = masters(self.settings)
            self._checked = time.monotonic()
        return self._masters

    def refresh(self) -> None:
        """Read the topology again on the next call (a slot may have moved)."""
        self._checked = 0.0

    def client(self, master: Master) -> redis.Redis:
        return self.node(master.host, master.port)

    def node(self, host: str, port: int) -> redis.Redis:
        """The client of one node (a master, or a replica its standby listens on)."""
        address = f"{host}:{port}"
        client = self._clients.get(address)
        if client is None:
            # No retries: a shard that cannot be reached at once is reported as
            # failed, instead of spending the request's deadline on reconnecting.
            client = node_client(
                host, port, self.settings,
                socket_timeout=self.settings.deadline_ms / 1000 + 5, socket_connect_timeout=1,
                retry=Retry(NoBackoff(), 0),
            )
            self._clients[address] = client
        return client

    def ask(
        self, question: str, embedding: np.ndarray, depth: int, timeout_ms: int,
        embedder_id: str = "", targets: list[Master] | None = None, partitions: int = 0,
    ) -> list[ShardReply]:
        """Phase 1: ask every master (or ``targets``) for its best candidate passages
        (``depth`` by each retrieval score); every shard ends as a reply or a failure
        with its reason."""
        vector = codec.encode(np.asarray(embedding, dtype=np.float32))
        fields = {
            "op": "retrieve", "embedding": vector, "embedder": embedder_id, "depth": depth,
            # the corpus's partition count: a worker also vouches for the empty
            # partitions its slots hold, so every partition can be accounted for
            "partitions": partitions,
        }
        chosen = self.masters() if targets is None else targets
        return self.send(question, [(m, fields) for m in chosen], timeout_ms)

    def read(
        self, question: str, per_master: list[tuple[Master, list[dict]]], timeout_ms: int,
        use_cache: bool = True,
    ) -> list[ShardReply]:
        """Phase 2: each master reads the passages it was given (``{"partition", "pid"}``),
        its answer cache first."""
        requests = [(m, {"op": "read", "passages": json.dumps(chosen), "cache": int(use_cache)})
                    for m, chosen in per_master]
        return self.send(question, requests, timeout_ms)

    def send(
        self, question: str, requests: list[tuple[Master, dict]], timeout_ms: int,
    ) -> list[ShardReply]:
        """Add one request entry per master, then wait for every reply until the deadline.

        A master that cannot be reached (or was not, a moment ago), or whose reply is
        later than ``standby_after_ms``, is asked through a standby worker beside
        one of its replicas (gears/standby.py); that reply is marked ``via``.
        """
        deadline = time.time() + timeout_ms / 1000.0
        sent_at = time.perf_counter()
        hedge_s = self.settings.standby_after_ms / 1000.0
        replies: list[ShardReply] = []

        def finish(reply: ShardReply) -> None:  # a shard's time ends when its reply is taken
            observe_shard(reply.node, reply.ok, reply.reason, time.perf_counter() - sent_at)
            replies.append(reply)

        request_id = uuid.uuid4().hex
        waiting: list[tuple[Master, dict, str | None, StandbyCall | None]] = []
        for master, extra in requests:
            reply_key = keys.reply(master.tag, request_id)
            fields = {"question": question, "deadline": deadline * 1000.0, "reply": reply_key,
                      **extra}
            if self._suspect(master):
                call = self._ask_standby(master, fields)
                if call is not None:
                    waiting.append((master, fields, None, call))
                    continue
            try:
                entry = self.client(master).xadd(
                    keys.requests_stream(master.tag), fields, maxlen=STREAM_MAXLEN, approximate=True
                )
                waiting.append((master, dict(fields, entry=entry), reply_key, None))
            except redis.RedisError as exc:
                self._unreachable(master)
                call = self._ask_standby(master, fields)
                if call is not None:
                    waiting.append((master, fields, None, call))
                else:
                    finish(ShardReply(master, False, reason=f"send failed: {exc}"))
        for master, fields, reply_key, call in waiting:
            if call is None:
                finish(self._await_master(master, fields, reply_key, deadline,
                                          time.time() + hedge_s if hedge_s > 0 else deadline))
            else:
                finish(self._await_standby(master, call, deadline))
        return replies

    # --- one master's reply ----------------------------------------------------
    def _await_master(self, master: Master, fields: dict, reply_key: str, deadline: float,
                      hedge_at: float) -> ShardReply:
        """The master's reply; after ``hedge_at`` (or at once, if the master fails) its
        standby is asked too and the first reply of either counts."""
        until = min(deadline, hedge_at) if master.replicas else deadline
        try:
            popped = self._pop(master, reply_key, until - time.time())
            # a worker that holds the request and keeps its heartbeat is busy, not gone:
            # asking a standby as well would only double a saturated system's work
            while (popped is None and until < deadline and time.time() < deadline
                   and self._working(master, fields["entry"])):
                popped = self._pop(master, reply_key, min(WATCH_SLICE_S, deadline - time.time()))
        except redis.RedisError as exc:
            self._unreachable(master)
            call = self._ask_standby(master, _without_entry(fields))
            if call is None:
                return ShardReply(master, False, reason=f"reply failed: {exc}")
            return self._await_standby(master, call, deadline)
        if popped is not None:
            return _reply_of(master, popped)
        call = self._ask_standby(master, _without_entry(fields)) if time.time() < deadline \
            else None
        if call is None:
            # no standby heard the request (one swapping its model, say): the master's
            # reply is the only one to come, and the request's deadline is not over
            return self._await_master_only(master, reply_key, deadline)
        try:  # both may answer now: look at each in turn, in short slices
            while time.time() < deadline:
                payload = call.poll(HEDGE_SLICE_S)
                if payload is not None:
                    return _reply_of(master, payload, via=call.replica)
                popped = self._pop(master, reply_key, 0)
                if popped is not None:
                    return _reply_of(master, popped)
        except redis.RedisError:
            self._unreachable(master)
            return self._await_standby(master, call, deadline)
        finally:
            call.close()
        return ShardReply(master, False, reason="deadline exceeded")

    def _await_master_only(self, master: Master, reply_key: str, deadline: float) -> ShardReply:
        try:
            popped = self._pop(master, reply_key, deadline - time.time())
        except redis.RedisError as exc:
            self._unreachable(master)
            return ShardReply(master, False, reason=f"reply failed: {exc}")
        if popped is None:
            return ShardReply(master, False, reason="deadline exceeded")
        return _reply_of(master, popped)

    def _working(self, master: Master, entry: bytes | str) -> bool:
        """True while a worker holds the request entry (it is pending in the group) and
        its heartbeat is fresh; False when nobody took it, or its worker went silent (a
        stopped process still has the entry: Redis hands it to a blocked read)."""
        client = self.client(master)
        try:
            pipe = client.pipeline(transaction=False)
            pipe.xpending_range(keys.requests_stream(master.tag), keys.WORKER_GROUP,
                                min=entry, max=entry, count=1)
            pipe.hget(keys.worker_state(master.tag), "heartbeat")
            pending, beat = pipe.execute()
        except redis.RedisError:
            return False
        return bool(pending) and time.time() - float(beat or 0) < heartbeat.SILENT_S

    def _pop(self, master: Master, reply_key: str, wait_s: float) -> dict | None:
        """The reply on ``reply_key`` within ``wait_s`` (none: only one already there)."""
        if wait_s > 0:
            popped = self.client(master).blpop([reply_key], timeout=wait_s)
            return json.loads(popped[1]) if popped is not None else None
        value = self.client(master).lpop(reply_key)
        return json.loads(value) if value is not None else None

    def _await_standby(self, master: Master, call: StandbyCall, deadline: float) -> ShardReply:
        try:
            payload = call.poll(deadline - time.time())
        finally:
            call.close()
        if payload is None:
            return ShardReply(master, False, reason="deadline exceeded (standby)",
                              via=call.replica)
        return _reply_of(master, payload, via=call.replica)

    # --- standbys -------------------------------------------------------------
    def _unreachable(self, master: Master) -> None:
        """The master failed: re-read the topology, and go to its standby for a while."""
        self._checked = 0.0
        self._suspects[master.address] = time.monotonic() + SUSPECT_S

    def _suspect(self, master: Master) -> bool:
        return self._suspects.get(master.address, 0.0) > time.monotonic()

    def _ask_standby(self, master: Master, fields: dict) -> StandbyCall | None:
        """Publish the request to a standby beside one of the master's replicas."""
        for (host, port), node_id in zip(master.replicas, master.replica_ids):
            call = StandbyCall.start(self.node(host, port), f"{host}:{port}", node_id, fields)
            if call is not None:
                return call
        return None


def _without_entry(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if k != "entry"}


def _reply_of(master: Master, payload: dict, via: str = "") -> ShardReply:
    if payload.get("ok"):
        return ShardReply(master, True, payload, via=via)
    return ShardReply(master, False, payload, reason=payload.get("error", "?"), via=via)
