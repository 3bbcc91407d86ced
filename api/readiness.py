"""Readiness: every partition is owned by a master whose worker is alive, ready and
serving a model. The gateway answers ``/readyz`` with 200 or 503 and the reasons."""

from __future__ import annotations

import time

from api.fanout import Fanout
from qasearch import keys
from qasearch.partitions import owned_partitions, partition_tag
from qasearch.settings import Settings
from qasearch.workers import HEARTBEAT_FRESH_S


def check(settings: Settings, fanout: Fanout, cluster) -> tuple[bool, list[str], list[dict]]:
    """(ready, reasons when not, per-master detail)."""
    reasons: list[str] = []
    detail: list[dict] = []
    raw = cluster.hget(keys.CORPUS_META, "partitions")
    partitions = int(raw) if raw else 0
    for master in fanout.masters():
        state = {
            k.decode(): v.decode()
            for k, v in fanout.client(master).hgetall(keys.worker_state(master.tag)).items()
        }
        owned = [partition_tag(p) for p in owned_partitions(master.ranges, partitions)]
        age = time.time() - float(state.get("heartbeat", 0))
        problem = None
        if not state or age > HEARTBEAT_FRESH_S:
            problem = "no live worker"
        elif state.get("ready") != "1":
            problem = "worker not ready (loading model or tensors)"
        elif not state.get("model"):
            problem = "worker has no model"
        if problem:
            reasons.append(f"{master.address} ({', '.join(owned) or 'no partitions'}): {problem}")
        detail.append({"node": master.address, "partitions": owned,
                       "model": state.get("model"), "ok": problem is None})
    return not reasons, reasons, detail
