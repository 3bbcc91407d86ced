"""Prometheus metrics of one shard worker, on its own loopback HTTP port.

Each worker serves ``/metrics`` (``prometheus_client.start_http_server`` on
``settings.metrics_host``; port ``settings.worker_metrics_port`` + the node's
offset from ``base_port``, or the kernel's pick when that setting is 0) and
writes its scrape target file (:mod:`qasearch.core.monitoring`) with the labels
``component="worker"`` and ``node="<host>:<port>"`` of its Redis node, so every
series Prometheus stores names the node it describes. The port is also in the
worker's heartbeat hash (field ``metrics_port``).

Observed as they happen (histograms):

    qasearch_worker_batch_size          sequences per reader forward pass
    qasearch_worker_reader_seconds      one reader forward pass
    qasearch_worker_embedder_seconds    embedding passages (ingest) or a question
    qasearch_worker_request_seconds     one request of the gateway on this node

Read when scraped (:class:`WorkerCollector`), so a gauge never outlives what it
describes (a partition the node lost, a model it swapped out):

    qasearch_worker_answer_cache_{hits,misses}_total, _keymiss_triggers_total,
    _reader_errors_total, _reader_calls_total   (totals of :class:`gears.stats.WorkerStats`)
    qasearch_worker_requests_total{outcome}     ok or error
    qasearch_worker_passages_tokenised_total
    qasearch_worker_queue_depth{queue}  request_lag (XINFO GROUPS lag: entries of the
                                        request stream not yet read), request_pending
                                        (read, not yet acknowledged), batcher (sequences
                                        waiting for a forward pass)
    qasearch_worker_partition_passages{partition}   passages in the in-memory index
                                                    (masters' workers only)
    qasearch_worker_standby                         1 while beside a replica
    qasearch_worker_model_info{version,trained}     1 for the model in service
    qasearch_worker_ready                           1 once the worker serves requests
"""

from __future__ import annotations

import redis
from prometheus_client import REGISTRY, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gears.batcher import DynamicBatcher
from gears.shard_state import ShardState
from qasearch.core import keys, monitoring
from qasearch.core.partitions import partition_tag
from qasearch.core.settings import Settings

SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)

BATCH_SIZE = Histogram("qasearch_worker_batch_size", "Sequences per reader forward pass",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))
READER_SECONDS = Histogram("qasearch_worker_reader_seconds", "One reader forward pass",
                           buckets=SECONDS_BUCKETS)
EMBEDDER_SECONDS = Histogram("qasearch_worker_embedder_seconds",
                             "Embedding a batch of passages or a question",
                             buckets=SECONDS_BUCKETS)
REQUEST_SECONDS = Histogram("qasearch_worker_request_seconds",
                            "One gateway request answered on this node (retrieval, cache, reader)",
                            buckets=SECONDS_BUCKETS)

# WorkerStats field -> exported counter name (without _total) and help
_STATS_COUNTERS = (
    ("cache_hits", "answer_cache_hits", "Answer-cache hits on the request path"),
    ("cache_misses", "answer_cache_misses", "Answer-cache misses on the request path"),
    ("keymiss_triggers", "keymiss_triggers", "Answers computed because a GET missed"),
    ("errors", "reader_errors", "Failed reader forward passes"),
    ("calls", "reader_calls", "(passage, question) pairs read by the reader"),
)


def observe_batch(size: int, seconds: float) -> None:
    BATCH_SIZE.observe(size)
    READER_SECONDS.observe(seconds)


class WorkerCollector:
    """The worker's state, read at scrape time; Redis figures come from its own node."""

    def __init__(self, state: ShardState, batcher: DynamicBatcher) -> None:
        self.state = state
        self.batcher = batcher

    def _queue_depths(self) -> dict[str, float]:
        w = self.state
        depths = {"batcher": float(self.batcher.queued)}
        tag = w.ownership.node_tag
        if tag is None or w.ownership.standby:
            return depths  # the request stream is the master's worker's (and its figure)
        try:
            groups = w.client.xinfo_groups(keys.requests_stream(tag))
        except redis.RedisError:
            return depths  # no stream yet, or the node is unreachable: no figure
        for group in groups:
            name = group["name"]
            if (name.decode() if isinstance(name, bytes) else name) == keys.WORKER_GROUP:
                depths["request_lag"] = float(group.get("lag") or 0)
                depths["request_pending"] = float(group["pending"])
        return depths

    def collect(self):
        w = self.state
        prefix = "qasearch_worker_"
        totals = w.stats.totals
        for field, name, doc in _STATS_COUNTERS:
            yield CounterMetricFamily(prefix + name, doc, value=float(totals.get(field, 0)))
        requests = CounterMetricFamily(prefix + "requests", "Gateway requests handled",
                                       labels=["outcome"])
        requests.add_metric(["ok"], float(w.counters["requests"]))
        requests.add_metric(["error"], float(w.counters["errors"]))
        yield requests
        yield CounterMetricFamily(prefix + "passages_tokenised", "Passages tokenised and embedded",
                                  value=float(w.counters["passages_tokenised"]))
        queues = GaugeMetricFamily(prefix + "queue_depth", "Work waiting on this node",
                                   labels=["queue"])
        for queue, depth in self._queue_depths().items():
            queues.add_metric([queue], depth)
        yield queues
        passages = GaugeMetricFamily(prefix + "partition_passages",
                                     "Passages in the in-memory index of a partition",
                                     labels=["partition"])
        if not w.ownership.standby:  # a standby's copy would count every passage twice
            for part, index in sorted(dict(w.indexes).items()):
                passages.add_metric([partition_tag(part)], float(len(index)))
        yield passages
        info = GaugeMetricFamily(prefix + "model_info", "The model version in service",
                                 labels=["version", "trained"])
        model = w.model
        if model is not None:
            info.add_metric([model.version, str(bool(model.trained)).lower()], 1.0)
        yield info
        yield GaugeMetricFamily(prefix + "ready", "1 once the worker serves requests",
                                value=float(w.ready.is_set()))
        yield GaugeMetricFamily(prefix + "standby", "1 while the worker stands by beside "
                                "a replica (gears/standby.py)",
                                value=float(w.ownership.standby))


def metrics_port(settings: Settings, node_port: int) -> int:
    """The worker's /metrics port: fixed per node when configured, else the kernel's pick."""
    if settings.worker_metrics_port <= 0:
        return 0
    return settings.worker_metrics_port + (node_port - settings.base_port)


def serve(state: ShardState, batcher: DynamicBatcher) -> int:
    """Start the worker's /metrics server and publish its scrape target; returns the port."""
    settings: Settings = state.settings
    REGISTRY.register(WorkerCollector(state, batcher))
    server, _thread = start_http_server(
        metrics_port(settings, state.port), addr=settings.metrics_host
    )
    port = server.server_port
    monitoring.write_target(
        settings, monitoring.worker_target_name(state.port), settings.metrics_host, port,
        {"component": "worker", "node": state.node},
    )
    return port


def withdraw(state: ShardState) -> None:
    """Remove the worker's scrape target (on a clean stop)."""
    monitoring.remove_target(state.settings, monitoring.worker_target_name(state.port))
