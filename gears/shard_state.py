"""What one worker holds for its node, shared by all of the worker's threads.

The request, key-miss and standby threads read it while the main thread
(housekeeping, model swaps, ingest) changes it, and the heartbeat and /metrics
report it. ``model`` and ``indexes`` change only under ``lock``, so a request that
takes both under it never pairs a model with indexes built by another one.
"""

from __future__ import annotations

import threading

import redis

from gears.lexical import LexicalIndex
from gears.ownership import Ownership
from gears.retrieval import PartitionIndex
from gears.stats import WorkerStats
from qasearch.core.models import LoadedModel
from qasearch.core.settings import Settings


class ShardState:
    def __init__(self, settings: Settings, host: str, port: int, client: redis.Redis,
                 consumer: str) -> None:
        self.settings = settings
        self.host, self.port = host, port
        self.client = client
        self.consumer = consumer  # this worker's name in the node's consumer groups
        self.ownership = Ownership(ranges=(), node_tag=None, partitions=())
        self.model: LoadedModel | None = None
        self.indexes: dict[int, PartitionIndex] = {}
        self.lexical = LexicalIndex()  # every partition of the node, one BM25 index
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.groups: set[str] = set()  # request and ingest streams whose group is joined
        self.counters = {"requests": 0, "errors": 0, "passages_tokenised": 0}
        self.stats = WorkerStats()
        self.metrics_port = 0  # where this worker's /metrics listens, once it does

    @property
    def node(self) -> str:
        return f"{self.host}:{self.port}"
