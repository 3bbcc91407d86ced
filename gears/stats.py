"""Worker statistics per model version, in the spirit of RedisAI's AI.INFO.

Counters live in the worker and are flushed as increments into
``keys.stats(node_tag, version)`` (a hash, readable with ``redis-cli HGETALL``), so
they add up across worker restarts:

    calls      (passage, question) pairs read by the reader
    samples    sequences (windows) run through the reader
    batches    reader forward passes
    duration_ms  total time in reader forward passes
    errors     failed reader batches
    cache_hits / cache_misses   answer-cache lookups on the request path
    keymiss_triggers            answers computed because a GET missed
"""

from __future__ import annotations

import threading
from collections import Counter

import redis

from qasearch.core import keys

FIELDS = ("calls", "samples", "batches", "duration_ms", "errors",
          "cache_hits", "cache_misses", "keymiss_triggers")


class WorkerStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Counter] = {}
        self.totals: Counter = Counter()

    def add(self, version: str, **counts: float) -> None:
        with self._lock:
            pending = self._pending.setdefault(version, Counter())
            for name, value in counts.items():
                pending[name] += value
                self.totals[name] += value

    def flush(self, client: redis.Redis, ntag: str) -> None:
        """Add what was counted since the last flush to the node's stats hashes."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        pipe = client.pipeline(transaction=False)
        for version, counts in pending.items():
            for name, value in counts.items():
                if isinstance(value, float):
                    pipe.hincrbyfloat(keys.stats(ntag, version), name, value)
                else:
                    pipe.hincrby(keys.stats(ntag, version), name, value)
        pipe.execute()


def read_stats(client: redis.Redis, ntag: str, version: str) -> dict[str, float]:
    raw = client.hgetall(keys.stats(ntag, version))
    out = {name: 0.0 for name in FIELDS}
    for name, value in raw.items():
        out[name.decode() if isinstance(name, bytes) else name] = float(value)
    return out
