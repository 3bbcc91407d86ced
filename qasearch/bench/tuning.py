"""Tuning mode: the batching and thread settings measured end to end, one at a time.

One fresh system (:class:`~qasearch.bench.scratch.ScratchSystem`, on its own
ports) holds the corpus once; for each candidate setting the workers are restarted
with it (the supervisor passes settings to its workers through the environment)
and ``POST /qasearch`` is measured with caches off: latency at c=1 and throughput
at one concurrency level. The candidates vary one setting at a time around the
current defaults, so each row says what that one setting does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loaders.formats import read_documents
from loaders.splitter import default_tokenizer
from loaders.writer import write_documents
from qasearch.bench import http_load
from qasearch.bench.scratch import ScratchSystem
from qasearch.cluster import workers
from qasearch.core.settings import Settings
from qasearch.core.topology import cluster_client

Log = Callable[[str], None]
TUNED = ("max_batch_size", "max_batch_wait_ms", "torch_threads", "length_bucket_tokens")


@dataclass
class TuneConfig:
    corpus: str
    batch_sizes: Sequence[int] = (1, 4, 8, 16)
    waits_ms: Sequence[float] = (0.0, 2.0, 10.0)
    threads: Sequence[int] = (1, 2)
    buckets: Sequence[int] = (1, 16, 64)
    queries: int = 12
    warmup: int = 2
    concurrency: int = 8
    level_queries: int = 24
    level_seconds: float = 60.0
    ready_timeout_s: float = 600.0
    extra: dict = field(default_factory=dict)


def candidates(base: Settings, config: TuneConfig) -> list[dict]:
    """The current defaults, then each tuned setting varied alone (no repeats)."""
    defaults = {name: getattr(base, name) for name in TUNED}
    found = [dict(defaults)]
    for name, values in (("max_batch_size", config.batch_sizes),
                         ("max_batch_wait_ms", config.waits_ms),
                         ("torch_threads", config.threads),
                         ("length_bucket_tokens", config.buckets)):
        for value in values:
            row = {**defaults, name: type(defaults[name])(value)}
            if row not in found:
                found.append(row)
    return found


def _measure(system: ScratchSystem, questions: Sequence[str], config: TuneConfig) -> dict:
    client = http_load.QueryClient(system.url, api_key=system.settings.api_key)
    for q in questions[: config.warmup]:
        client.ask(q)
    asked = questions[config.warmup :] or questions
    c1 = http_load.measure_latency(client, asked, config.queries, config.level_seconds * 3)
    level = http_load.measure_throughput(client, questions, config.concurrency,
                                         config.level_queries, config.level_seconds)
    return {"latency_c1": c1.summary.as_dict(), "errors": c1.errors + level.errors,
            "partial": c1.partial, "throughput": level.as_dict()}


def run_tuning(settings: Settings, package, questions: Sequence[str], config: TuneConfig,
               log: Log = print) -> list[dict]:
    """Every candidate of :func:`candidates` on one fresh system; stops what it started."""
    system = ScratchSystem(settings, package)
    rows = []
    failed = True
    try:
        system.up()
        client = cluster_client(settings)
        try:
            summary = write_documents(client, settings, read_documents(Path(config.corpus)),
                                      default_tokenizer())
        finally:
            client.close()
        log(f"tune: {summary.passages} passages of {config.corpus} in a fresh system on "
            f"port {settings.base_port}")
        for cand in candidates(settings, config):
            trial = dataclasses.replace(settings, **cand)
            system.settings = trial
            workers.stop(settings)
            started = time.perf_counter()
            system.start_workers(config.ready_timeout_s)
            if "gateway" not in system.started:
                system.start_gateway()
            row = {"settings": cand, "workers_ready_s": time.perf_counter() - started,
                   **_measure(system, questions, config)}
            rows.append(row)
            log("   " + describe(row))
        failed = False
    finally:
        system.down(failed=failed)
    return rows


def describe(row: dict) -> str:
    s, lat, tp = row["settings"], row["latency_c1"], row["throughput"]
    return (f"batch {s['max_batch_size']:>2}, wait {s['max_batch_wait_ms']:>4} ms, "
            f"threads {s['torch_threads']}, bucket {s['length_bucket_tokens']:>2}: "
            f"c=1 p50 {lat['p50_ms']:.0f} ms, c={tp['concurrency']} "
            f"{tp['requests_per_s']:.2f} req/s, errors {row['errors']}")
