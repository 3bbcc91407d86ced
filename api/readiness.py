"""Readiness: every partition is owned by a master whose worker is alive, ready and
serving a model. The gateway answers ``/readyz`` with 200 or 503 and the reasons."""

from __future__ import annotations

from api.fanout import Fanout
from qasearch.core import heartbeat, keys
from qasearch.core.partitions import owned_partitions, partition_tag
from qasearch.core.settings import Settings


def check(settings: Settings, fanout: Fanout, cluster) -> tuple[bool, list[str], list[dict]]:
    """(ready, reasons when not, per-master detail)."""
    reasons: list[str] = []
    detail: list[dict] = []
    raw = cluster.hget(keys.CORPUS_META, "partitions")
    partitions = int(raw) if raw else 0
    for master in fanout.masters():
        state = heartbeat.read(fanout.client(master), master)
        owned = [partition_tag(p) for p in owned_partitions(master.ranges, partitions)]
        problem = None
        if heartbeat.age_s(state) > heartbeat.FRESH_S:
            problem = "no live worker"
        elif not heartbeat.of_this_node(state):
            problem = "no worker yet since this node was promoted"
        elif state.get("ready") != "1":
            problem = "worker not ready (loading model or tensors)"
        elif not state.get("model"):
            problem = "worker has no model"
        if problem:
            reasons.append(f"{master.address} ({', '.join(owned) or 'no partitions'}): {problem}")
        detail.append({"node": master.address, "partitions": owned,
                       "model": state.get("model"), "ok": problem is None})
    return not reasons, reasons, detail
