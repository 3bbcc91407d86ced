"""The gateway's whole-response cache.

A response is cached under a digest of everything that decides it: the
question as the reader reads it (:func:`qasearch.core.keys.question_form`: case and
spacing kept, since a cased reader answers "Who" and "who" differently),
``num_results``, ``top_k``, the corpus version (bumped by every load that changes
passages) and the model version. Loading passages or
pushing a model therefore makes every older entry unreachable at once; the TTL
clears them out. Only complete responses (every shard answered) are cached.
"""

from __future__ import annotations

import json

import redis
from redis.cluster import RedisCluster

from api.metrics import RESPONSE_CACHE
from qasearch.core import keys


class ResponseCache:
    def __init__(self, client: RedisCluster, ttl_s: int) -> None:
        self.client = client
        self.ttl_s = ttl_s

    def corpus_version(self) -> str:
        return (self.client.hget(keys.CORPUS_META, "version") or b"0").decode()

    def key(self, question: str, num_results: int, top_k: int, model_version: str,
            passages: bool = False) -> str:
        parts = [keys.question_form(question), num_results, top_k,
                 self.corpus_version(), model_version]
        if passages:  # the same answers, a longer body: cached apart
            parts.append("passages")
        return keys.response(json.dumps(parts, ensure_ascii=False))

    def get(self, key: str) -> dict | None:
        try:
            raw = self.client.get(key)
        except redis.RedisError:
            raw = None  # a cache that is down is a miss, never an error
        RESPONSE_CACHE.labels("hit" if raw else "miss").inc()
        return json.loads(raw) if raw else None

    def put(self, key: str, body: dict) -> None:
        try:
            self.client.set(key, json.dumps(body), ex=self.ttl_s)
        except redis.RedisError:
            pass
