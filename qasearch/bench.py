"""End-to-end latency of ``POST /qasearch``, measured from outside like a user would."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from dataclasses import asdict, dataclass

from qasearch.questions import SquadQuestion


@dataclass(frozen=True)
class LatencyReport:
    queries: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    partial: int

    def as_dict(self) -> dict:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def post_query(
    url: str, question: str, num_results: int = 5, timeout: float = 60, cache: bool = True
) -> dict:
    body = json.dumps({"search": question, "num_results": num_results, "cache": cache}).encode()
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def measure_latency(
    url: str, questions: list[SquadQuestion], queries: int, max_seconds: float = 600
) -> LatencyReport:
    """Send ``queries`` questions one after another (cycling through the set), caches off."""
    if not questions:
        raise ValueError("no questions to ask")
    timings: list[float] = []
    errors = partial = 0
    stop_at = time.monotonic() + max_seconds
    for i in range(queries):
        if time.monotonic() > stop_at:
            break
        started = time.perf_counter()
        try:
            reply = post_query(url, questions[i % len(questions)].question, cache=False)
        except OSError:
            errors += 1
            continue
        timings.append((time.perf_counter() - started) * 1000.0)
        if reply["shards"]["failed"]:
            partial += 1
    if not timings:
        raise RuntimeError(f"all {queries} queries failed")
    return LatencyReport(
        queries=len(timings), errors=errors,
        p50_ms=percentile(timings, 50), p95_ms=percentile(timings, 95),
        p99_ms=percentile(timings, 99), mean_ms=statistics.fmean(timings), partial=partial,
    )
