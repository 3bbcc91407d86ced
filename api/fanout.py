"""Send one question to several masters' workers at once and gather the replies.

A question goes out twice (docs/architecture.md, "Two phases"): phase 1
(:meth:`Fanout.ask`) asks every master for its best candidate passages, phase 2
(:meth:`Fanout.read`) asks only the masters holding the chosen ones to read them.
Each request is an entry on the node's request stream (``keys.requests_stream``);
the worker answers on a list (``keys.reply``) that the gateway pops with
``BLPOP``. All entries are added before any reply is awaited, so the shards work
in parallel and the wait is that of the slowest shard, bounded by the deadline.
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
from qasearch import codec, keys
from qasearch.settings import Settings
from qasearch.topology import Master, masters, node_client

STREAM_MAXLEN = 10_000
TOPOLOGY_TTL_S = 2.0


@dataclass
class ShardReply:
    master: Master
    ok: bool
    payload: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def node(self) -> str:
        return self.master.address


class Fanout:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._masters: list[Master] = []
        self._clients: dict[str, redis.Redis] = {}
        self._checked = 0.0

    def masters(self) -> list[Master]:
        if time.monotonic() - self._checked > TOPOLOGY_TTL_S or not self._masters:
            self._masters = masters(self.settings)
            self._checked = time.monotonic()
        return self._masters

    def refresh(self) -> None:
        """Read the topology again on the next call (a slot may have moved)."""
        self._checked = 0.0

    def client(self, master: Master) -> redis.Redis:
        client = self._clients.get(master.address)
        if client is None:
            # No retries: a shard that cannot be reached at once is reported as
            # failed, instead of spending the request's deadline on reconnecting.
            client = node_client(
                master.host, master.port, self.settings,
                socket_timeout=self.settings.deadline_ms / 1000 + 5, socket_connect_timeout=1,
                retry=Retry(NoBackoff(), 0),
            )
            self._clients[master.address] = client
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
        """Add one request entry per master, then wait for every reply until the deadline."""
        deadline = time.time() + timeout_ms / 1000.0
        sent_at = time.perf_counter()

        def finish(reply: ShardReply) -> None:  # a shard's time ends when its reply is taken
            observe_shard(reply.node, reply.ok, reply.reason, time.perf_counter() - sent_at)
            replies.append(reply)

        request_id = uuid.uuid4().hex
        sent: list[tuple[Master, str]] = []
        replies: list[ShardReply] = []
        for master, extra in requests:
            reply_key = keys.reply(master.tag, request_id)
            fields = {"question": question, "deadline": deadline * 1000.0, "reply": reply_key,
                      **extra}
            try:
                self.client(master).xadd(
                    keys.requests_stream(master.tag), fields, maxlen=STREAM_MAXLEN, approximate=True
                )
                sent.append((master, reply_key))
            except redis.RedisError as exc:
                self._checked = 0.0  # topology may have changed: re-read it next time
                finish(ShardReply(master, False, reason=f"send failed: {exc}"))
        for master, reply_key in sent:
            remaining = deadline - time.time()
            try:
                if remaining > 0:
                    popped = self.client(master).blpop([reply_key], timeout=remaining)
                else:  # out of time: take a reply that is already there, wait for none
                    value = self.client(master).lpop(reply_key)
                    popped = (reply_key, value) if value is not None else None
            except redis.RedisError as exc:
                self._checked = 0.0
                finish(ShardReply(master, False, reason=f"reply failed: {exc}"))
                continue
            if popped is None:
                finish(ShardReply(master, False, reason="deadline exceeded"))
                continue
            payload = json.loads(popped[1])
            if payload.get("ok"):
                finish(ShardReply(master, True, payload))
            else:
                finish(
                    ShardReply(master, False, payload, reason=payload.get("error", "?"))
                )
        return replies
