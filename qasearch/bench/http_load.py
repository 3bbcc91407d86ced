"""End-to-end ``POST /qasearch`` from outside, as a user sees it, with every cache bypassed.

Each request sends ``"cache": false``. A gateway that does not know the field
answers 400 "unknown field"; the client then stops sending it and records that in
its ``notes``, which the report prints. Every reply is checked: a response that
says ``"cached": true`` is counted, never silently mixed into the figures.

Latency is measured one request at a time (c=1). Throughput is measured with a
pool of ``c`` threads, each a closed loop of urllib requests, until a query count
or a time limit is reached: requests per second = completed / wall time from the
first send to the last reply.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from qasearch.bench.timing import Summary
from qasearch.core.apiclient import json_headers


@dataclass
class Reply:
    ms: float
    ok: bool
    body: dict = field(default_factory=dict)
    error: str = ""
    status: int | None = None  # the HTTP status; None when no HTTP answer was read
    timed_out: bool = False  # no HTTP answer because the client's timeout ran out


class QueryClient:
    """Posts questions to the gateway with caching off (when the gateway knows the flag)."""

    def __init__(self, url: str, num_results: int = 5, timeout_s: float = 120.0,
                 api_key: str = "", top_k: int | None = None) -> None:
        self.url = url
        self.headers = json_headers(api_key)
        self.num_results = num_results
        self.top_k = top_k  # None: the gateway's default
        self.timeout_s = timeout_s
        self.send_cache_flag = True
        self.notes: list[str] = []
        self._lock = threading.Lock()

    def _post(self, body: dict) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode(),
            headers=self.headers, method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {"error": f"HTTP {exc.code}"}

    def ask(self, question: str, num_results: int | None = None,
            top_k: int | None = None) -> Reply:
        """One timed request; the fallback retry (if any) is not part of the timing."""
        body: dict = {"search": question, "num_results": num_results or self.num_results}
        if (top_k or self.top_k) is not None:
            body["top_k"] = top_k or self.top_k
        if self.send_cache_flag:
            body["cache"] = False
        started = time.perf_counter()
        try:
            status, reply = self._post(body)
        except OSError as exc:
            # urllib wraps a connect timeout in URLError; a read timeout comes bare
            timed_out = isinstance(exc, TimeoutError) or isinstance(
                getattr(exc, "reason", None), TimeoutError)
            return Reply((time.perf_counter() - started) * 1000.0, False, error=str(exc),
                         timed_out=timed_out)
        elapsed = (time.perf_counter() - started) * 1000.0
        if status == 400 and "unknown field" in str(reply.get("error", "")) and "cache" in body:
            with self._lock:
                if self.send_cache_flag:
                    self.send_cache_flag = False
                    self.notes.append(
                        'the gateway refused "cache": false (unknown field); '
                        "requests were sent without it"
                    )
            return self.ask(question, num_results, top_k)
        if status != 200:
            return Reply(elapsed, False, reply, error=f"HTTP {status}: {reply.get('error', '')}",
                         status=status)
        return Reply(elapsed, True, reply, status=status)


@dataclass
class LatencyRun:
    """Sequential requests (c=1)."""

    timings_ms: list[float]
    order: list[int]  # which question (index into the list asked) each timing belongs to
    server_ms: list[float]  # the gateway's own took_ms of the same requests
    errors: int
    partial: int  # replies with failed shards
    cached: int  # replies that came from a cache although caching was off
    model_versions: set[str]
    error_samples: list[str]

    @property
    def summary(self) -> Summary:
        return Summary.of(self.timings_ms)

    def as_dict(self) -> dict:
        s = self.summary
        return {
            # the shape `qasearch bench` has always written under "latency_c1"
            "queries": s.count, "errors": self.errors, "partial": self.partial,
            "cached": self.cached, "p50_ms": s.p50_ms, "p95_ms": s.p95_ms, "p99_ms": s.p99_ms,
            "mean_ms": s.mean_ms, "min_ms": s.min_ms, "max_ms": s.max_ms,
            "server_took_ms": Summary.of(self.server_ms).as_dict() if self.server_ms else None,
            "error_samples": self.error_samples[:5],
        }


def _empty() -> LatencyRun:
    return LatencyRun([], [], [], 0, 0, 0, set(), [])


def _tally(run: LatencyRun, reply: Reply, index: int) -> None:
    if not reply.ok:
        run.errors += 1
        run.error_samples.append(reply.error)
        return
    run.timings_ms.append(reply.ms)
    run.order.append(index)
    body = reply.body
    if isinstance(body.get("took_ms"), (int, float)):
        run.server_ms.append(float(body["took_ms"]))
    if body.get("shards", {}).get("failed"):
        run.partial += 1
    if body.get("cached"):
        run.cached += 1
    version = body.get("model", {}).get("version")
    if version:
        run.model_versions.add(version)


def measure_latency(
    client: QueryClient, questions: Sequence[str], queries: int, max_seconds: float
) -> LatencyRun:
    """``queries`` requests one after another (cycling through ``questions``)."""
    if not questions:
        raise ValueError("no questions to ask")
    run = _empty()
    stop_at = time.monotonic() + max_seconds
    for i in range(queries):
        if time.monotonic() > stop_at:
            break
        _tally(run, client.ask(questions[i % len(questions)]), i % len(questions))
    if not run.timings_ms:
        raise RuntimeError(f"all {queries} queries failed: {run.error_samples[:3]}")
    return run


@dataclass
class ThroughputLevel:
    concurrency: int
    completed: int
    errors: int
    seconds: float
    latency: Summary | None
    stopped_by: str  # "count" or "time"
    partial: int = 0
    cached: int = 0

    @property
    def rps(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "concurrency": self.concurrency, "completed": self.completed, "errors": self.errors,
            "seconds": self.seconds, "requests_per_s": self.rps, "stopped_by": self.stopped_by,
            "partial": self.partial, "cached": self.cached,
            "latency": self.latency.as_dict() if self.latency else None,
        }


def measure_throughput(
    client: QueryClient, questions: Sequence[str], concurrency: int, max_queries: int,
    max_seconds: float, offset: int = 0,
) -> ThroughputLevel:
    """``concurrency`` closed-loop clients until ``max_queries`` are sent or time is up."""
    if concurrency < 1 or not questions:
        raise ValueError("need at least one client and one question")
    lock = threading.Lock()
    counter = [0]
    run = _empty()
    started = time.perf_counter()
    stop_at = time.monotonic() + max_seconds
    stopped_by = ["count"]

    def next_index() -> int | None:
        with lock:
            if counter[0] >= max_queries:
                return None
            if time.monotonic() > stop_at:
                stopped_by[0] = "time"
                return None
            counter[0] += 1
            return counter[0] - 1

    def loop() -> None:
        while (i := next_index()) is not None:
            index = (offset + i) % len(questions)
            reply = client.ask(questions[index])
            with lock:
                _tally(run, reply, index)

    with ThreadPoolExecutor(concurrency, thread_name_prefix=f"bench-c{concurrency}") as pool:
        for future in [pool.submit(loop) for _ in range(concurrency)]:
            future.result()
    seconds = time.perf_counter() - started
    return ThroughputLevel(
        concurrency=concurrency, completed=len(run.timings_ms), errors=run.errors,
        seconds=seconds, latency=Summary.of(run.timings_ms) if run.timings_ms else None,
        stopped_by=stopped_by[0], partial=run.partial, cached=run.cached,
    )
