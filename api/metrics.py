"""Prometheus metrics of the gateway, served on ``GET /metrics``.

Under gunicorn every worker process counts for itself: ``qasearch serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder, see :mod:`qasearch.core.monitoring`)
before gunicorn starts, prometheus-client keeps each process's values in files
there, and ``/metrics`` adds them all up (``MultiProcessCollector``), so one
scrape sees the whole gateway whichever process answers it. Without that
variable (a plain ``create_app()``), the process's own registry is served.

Families (all prefixed ``qasearch_gateway_`` except the Redis one):

    requests_total{route,method,status}      HTTP requests answered
    request_seconds{route}                   latency histogram per route
    shard_seconds{node}                      send to reply of one shard (fan-out)
    shard_replies_total{node,outcome}        ok, deadline, send_failed, reply_failed, error
    response_cache_total{result}             whole-response cache: hit or miss
    embedder_seconds                         embedding the question (once per request)
    qasearch_redis_used_memory_bytes{node,role}   INFO memory of every cluster node,
                                             read when /metrics is scraped
"""

from __future__ import annotations

import os
import time

import redis
from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)

REQUESTS = Counter("qasearch_gateway_requests", "HTTP requests answered by the gateway",
                   ["route", "method", "status"])
REQUEST_SECONDS = Histogram("qasearch_gateway_request_seconds",
                            "HTTP request latency of the gateway", ["route"],
                            buckets=LATENCY_BUCKETS)
SHARD_SECONDS = Histogram(
    "qasearch_gateway_shard_seconds",
    "Fan-out: seconds from sending a question to a node until its reply was taken "
    "(replies are taken in turn, so a shard's figure includes waiting for earlier ones)",
    ["node"], buckets=LATENCY_BUCKETS)
SHARD_REPLIES = Counter("qasearch_gateway_shard_replies", "Shard replies by outcome",
                        ["node", "outcome"])
RESPONSE_CACHE = Counter("qasearch_gateway_response_cache",
                         "Whole-response cache lookups", ["result"])
for _result in ("hit", "miss"):  # both series exist from the start, so rate() sees the first
    RESPONSE_CACHE.labels(_result)
EMBEDDER_SECONDS = Histogram("qasearch_gateway_embedder_seconds",
                             "Seconds spent embedding the question", buckets=LATENCY_BUCKETS)

ROUTE = "/metrics"
UNMATCHED_ROUTE = "unmatched"  # any path without a route: one label, not one per URL


def shard_outcome(ok: bool, reason: str) -> str:
    """A small, fixed set of outcome labels from a shard reply's free-text reason."""
    if ok:
        return "ok"
    for prefix, outcome in (("deadline", "deadline"), ("send failed", "send_failed"),
                            ("reply failed", "reply_failed")):
        if reason.startswith(prefix):
            return outcome
    return "error"


def observe_shard(node: str, ok: bool, reason: str, seconds: float) -> None:
    SHARD_SECONDS.labels(node).observe(seconds)
    SHARD_REPLIES.labels(node, shard_outcome(ok, reason)).inc()


class RedisMemoryCollector:
    """``used_memory`` of every node the cluster client knows, read at scrape time."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster

    def collect(self):
        family = GaugeMetricFamily("qasearch_redis_used_memory_bytes",
                                   "Redis INFO memory used_memory per node",
                                   labels=["node", "role"])
        for node in self.cluster.get_nodes():
            try:
                info = self.cluster.get_redis_connection(node).info("memory")
            except (redis.RedisError, OSError):
                continue  # a node that is down has no figure; it does not fail the scrape
            role = "master" if node.server_type == "primary" else "replica"
            family.add_metric([f"{node.host}:{node.port}", role], float(info["used_memory"]))
        yield family


def _registry(cluster) -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in (REQUESTS, REQUEST_SECONDS, SHARD_SECONDS, SHARD_REPLIES,
                          RESPONSE_CACHE, EMBEDDER_SECONDS):
            registry.register(collector)
    registry.register(RedisMemoryCollector(cluster))
    return registry


def instrument(app: Flask) -> None:
    """Count and time every request of ``app`` (its ``GET /metrics`` is :func:`exposition`)."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        if started is not None:
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response


def exposition(cluster) -> Response:
    """``GET /metrics``: every family in Prometheus's text format, the gunicorn workers'
    values added up (under ``PROMETHEUS_MULTIPROC_DIR``) and the nodes' memory read now."""
    return Response(generate_latest(_registry(cluster)), content_type=CONTENT_TYPE_LATEST)
