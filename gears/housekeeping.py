"""A worker's periodic duties: following its node's role and partitions, and the
heartbeat that tells the gateway, the supervisor and the CLI how the worker is.

Housekeeping (every second, on the worker's main thread) reads which partitions the
node owns or is importing, follows a promotion or a demotion, drops partitions that
moved away and puts a newly pushed model in service (:mod:`gears.model_swap`).
The heartbeat runs on a thread of its own, so that a long model load or index build
on the main thread never lets it lapse; its hash (``keys.worker_state``) is read
through :mod:`qasearch.core.heartbeat`.
"""

from __future__ import annotations

import logging
import os
import time

import redis

from gears.batcher import DynamicBatcher
from gears.engine import AnswerEngine
from gears.indexing import Indexer
from gears.model_swap import ModelSwap
from gears.ownership import OwnershipTracker
from gears.shard_state import ShardState
from gears.standby import IngestTail
from qasearch.core import keys
from qasearch.core.partitions import partition_tag

log = logging.getLogger("qasearch.worker")

HOUSEKEEPING_S = 1.0
HEARTBEAT_TTL_S = 15


class Housekeeping:
    def __init__(self, state: ShardState, engine: AnswerEngine, indexer: Indexer,
                 tail: IngestTail, model_swap: ModelSwap, batcher: DynamicBatcher) -> None:
        self.state = state
        self.engine = engine
        self.indexer = indexer
        self.tail = tail
        self.model_swap = model_swap
        self.batcher = batcher
        self.tracker = OwnershipTracker(state.client, state.host, state.port)
        self.housekept = 0.0  # when housekeeping last completed (heartbeat)

    def run_once(self) -> None:
        s = self.state
        before, s.ownership = s.ownership, self.tracker.read()
        if before.standby and s.ownership.is_master:
            # promoted: the indexes are current already; only the channels change
            log.info("node promoted: the standby now serves %s as master",
                     s.ownership.node_tag)
            self.tail.forget()
            s.groups.clear()  # request and ingest groups are joined (and adopted) anew
        elif before.is_master and s.ownership.standby:
            # demoted (a restarted master rejoins as a replica, possibly resynced in
            # full): index again from what the replica holds
            log.info("node is a replica now: standby for %s", s.ownership.node_tag)
            self.indexer.drop_all()
            self.tail.forget()
            s.groups.clear()
        self.engine.read_only = s.ownership.standby
        self.indexer.drop_except(set(s.ownership.partitions) | set(s.ownership.importing))
        if self.model_swap.refresh():
            for part in s.ownership.importing:
                if part not in s.indexes:
                    self.indexer.reconcile(part)  # loaded before the slot switches to this node
        self.housekept = time.time()

    def heartbeat_loop(self) -> None:
        while not self.state.stopping.is_set():
            try:
                self._heartbeat()
            except redis.RedisError as exc:
                log.warning("heartbeat on %s: %s", self.state.node, exc)
            self.state.stopping.wait(HOUSEKEEPING_S)

    def _heartbeat(self) -> None:
        s = self.state
        tag = s.ownership.node_tag
        if tag is None or s.ownership.standby:
            return  # a replica refuses writes: a standby answers ``ping`` instead
        with s.lock:
            indexes = dict(s.indexes)
        fields = {
            "pid": os.getpid(),
            "node": s.node,
            "node_id": self.tracker.node_id,  # tells a promoted replica's copy apart
            "consumer": s.consumer,
            "model": s.model.version if s.model else "",
            "trained": int(bool(s.model and s.model.trained)),
            "partitions": ",".join(s.ownership.tags()),
            # loaded while the slot is still being imported (cluster add-node)
            "warm": ",".join(partition_tag(p) for p in s.ownership.importing
                             if p in indexes),
            "passages": sum(len(i) for i in indexes.values()),
            "ready": int(s.ready.is_set()),
            "refused": self.model_swap.refused_version,
            "loading": self.model_swap.loading_version,
            "housekept": self.housekept,
            "heartbeat": time.time(),
            "metrics_port": s.metrics_port,
            "batches": self.batcher.batches,
            "sequences": self.batcher.items,
            **s.counters,
        }
        s.stats.flush(s.client, tag)
        pipe = s.client.pipeline(transaction=False)
        pipe.hset(keys.worker_state(tag), mapping=fields)
        pipe.expire(keys.worker_state(tag), HEARTBEAT_TTL_S)
        pipe.execute()
