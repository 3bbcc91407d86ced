"""Send one question to every master's worker at once and gather the replies.

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

from qasearch import codec, keys
from qasearch.settings import Settings
from qasearch.topology import Master, masters, node_client

STREAM_MAXLEN = 10_000
TOPOLOGY_TTL_S = 2.0


@dataclass
class ShardReply:
    node: str
    ok: bool
    payload: dict = field(default_factory=dict)
    reason: str = ""


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

    def client(self, master: Master) -> redis.Redis:
        client = self._clients.get(master.address)
        if client is None:
            client = node_client(
                master.host, master.port, self.settings,
                socket_timeout=self.settings.deadline_ms / 1000 + 5, socket_connect_timeout=2,
            )
            self._clients[master.address] = client
        return client

    def ask(
        self, question: str, embedding: np.ndarray, top_k: int, num_results: int,
        timeout_ms: int, use_cache: bool = True,
    ) -> list[ShardReply]:
        """Ask every master; every shard ends as a reply or a failure with its reason."""
        deadline = time.time() + timeout_ms / 1000.0
        request_id = uuid.uuid4().hex
        sent: list[tuple[Master, str]] = []
        replies: list[ShardReply] = []
        vector = codec.encode(np.asarray(embedding, dtype=np.float32))
        for master in self.masters():
            reply_key = keys.reply(master.tag, request_id)
            fields = {
                "question": question, "embedding": vector, "top_k": top_k,
                "num_results": num_results, "deadline": deadline * 1000.0, "reply": reply_key,
                "cache": int(use_cache),
            }
            try:
                self.client(master).xadd(
                    keys.requests_stream(master.tag), fields, maxlen=STREAM_MAXLEN, approximate=True
                )
                sent.append((master, reply_key))
            except redis.RedisError as exc:
                self._checked = 0.0  # topology may have changed: re-read it next time
                replies.append(ShardReply(master.address, False, reason=f"send failed: {exc}"))
        for master, reply_key in sent:
            remaining = deadline - time.time()
            try:
                popped = (
                    self.client(master).blpop([reply_key], timeout=max(remaining, 0.001))
                    if remaining > 0 else None
                )
            except redis.RedisError as exc:
                self._checked = 0.0
                replies.append(ShardReply(master.address, False, reason=f"reply failed: {exc}"))
                continue
            if popped is None:
                replies.append(ShardReply(master.address, False, reason="deadline exceeded"))
                continue
            payload = json.loads(popped[1])
            if payload.get("ok"):
                replies.append(ShardReply(master.address, True, payload))
            else:
                replies.append(
                    ShardReply(master.address, False, payload, reason=payload.get("error", "?"))
                )
        return replies
