"""redis-benchmark on a real answer key, beside a plain GET on the same node.

The answer cache is meant to be read at Redis speed: a GET of an answer key
should cost what a GET of any small key costs on that node. This module finds a
real answer key (by asking the gateway), picks the node that owns it, and runs
``redis-benchmark`` on both keys side by side.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass

from qasearch.bench.client import percentile, post_query
from qasearch.core import keys
from qasearch.core.partitions import in_ranges, slot_of_tag
from qasearch.core.settings import Settings
from qasearch.core.topology import masters, node_client

RATE = re.compile(r"([\d.]+) requests per second")


@dataclass(frozen=True)
class RedisBenchReport:
    answer_key: str
    port: int
    command: str
    answer_key_rps: float
    plain_get_rps: float
    cached_qasearch_p50_ms: float
    cached_qasearch_p95_ms: float

    @property
    def ratio(self) -> float:
        return self.answer_key_rps / self.plain_get_rps if self.plain_get_rps else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}

    def lines(self) -> list[str]:
        """The report as printed by ``qasearch bench`` and ``qasearch redis-bench``."""
        return [
            "answer key benchmark (ready to paste):",
            f"  {self.command}",
            f"  answer key GET   {self.answer_key_rps:>10.0f} req/s",
            f"  plain small GET  {self.plain_get_rps:>10.0f} req/s   (same node, port {self.port})",
            f"  ratio            {self.ratio:>10.2f}   (target >= 0.80)",
            f"  cached /qasearch p50 {self.cached_qasearch_p50_ms:.2f} ms, "
            f"p95 {self.cached_qasearch_p95_ms:.2f} ms through gunicorn (target p50 <= 3 ms)",
        ]


PASSWORD_FROM_ENV = '"$QASEARCH_REDIS_PASSWORD"'


def benchmark_command(
    settings: Settings, port: int, key: str, requests: int, clients: int,
    password: str | None = None,
) -> list[str]:
    """The redis-benchmark command line; with ``password`` None it shows where the password
    comes from instead of the password itself (the printed, ready-to-paste form).

    redis-benchmark, unlike redis-cli, ignores ``REDISCLI_AUTH``: the password has to be
    an argument (``-a``), so it is visible in the process list while the run lasts.
    """
    auth = []
    if settings.redis_password:
        auth = ["--user", settings.redis_username, "-a",
                PASSWORD_FROM_ENV if password is None else password]
    return ["redis-benchmark", "-h", settings.host, "-p", str(port), *auth,
            "-n", str(requests), "-c", str(clients), "-q", "GET", key]


def printable(command: list[str]) -> str:
    """``command`` quoted for a shell, leaving the password's variable to the shell."""
    return " ".join(part if part == PASSWORD_FROM_ENV else shlex.quote(part) for part in command)


def run_redis_benchmark(command: list[str], env: dict[str, str] | None = None) -> float:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    found = RATE.findall(proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"redis-benchmark failed: {proc.stdout[-300:]} {proc.stderr[-300:]}")
    return float(found[-1])


def cached_latency(url: str, question: str, queries: int, api_key: str = "") -> list[float]:
    post_query(url, question, api_key=api_key)  # make sure it is cached
    timings = []
    for _ in range(queries):
        started = time.perf_counter()
        reply = post_query(url, question, api_key=api_key)
        timings.append((time.perf_counter() - started) * 1000.0)
        if not reply.get("cached"):
            raise RuntimeError("the repeated /qasearch was not served from the cache")
    return timings


def measure(
    settings: Settings, url: str, question: str, requests: int = 100_000, clients: int = 50,
    cached_queries: int = 200,
) -> RedisBenchReport:
    reply = post_query(url, question, api_key=settings.api_key)
    if not reply["results"]:
        raise RuntimeError(f"no answer to {question!r}; is the corpus loaded?")
    key = reply["results"][0]["answerkey"]
    tag = keys.parse_answer(key)[0]
    owner = next(m for m in masters(settings) if in_ranges(slot_of_tag(tag), m.ranges))
    client = node_client(owner.host, owner.port, settings)
    try:
        if not client.exists(key):
            raise RuntimeError(f"answer key {key!r} is not stored on {owner.address}")
        plain = keys.bench_key(owner.tag)
        client.set(plain, "x" * 64)
    finally:
        client.close()
    password = settings.redis_password
    answer_cmd = benchmark_command(settings, owner.port, key, requests, clients, password)
    plain_cmd = benchmark_command(settings, owner.port, plain, requests, clients, password)
    answer_rps = run_redis_benchmark(answer_cmd)
    plain_rps = run_redis_benchmark(plain_cmd)
    timings = cached_latency(url, question, cached_queries, settings.api_key)
    return RedisBenchReport(
        answer_key=key, port=owner.port,
        command=printable(benchmark_command(settings, owner.port, key, requests, clients)),
        answer_key_rps=answer_rps, plain_get_rps=plain_rps,
        cached_qasearch_p50_ms=percentile(timings, 50),
        cached_qasearch_p95_ms=percentile(timings, 95),
    )
