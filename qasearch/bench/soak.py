"""``qasearch chaos --soak MINUTES``: hold a share of the measured saturated throughput
for a while and see whether latency or memory drift.

1. **Saturation.** A few warm-up queries, then closed-loop clients at each of a few
   concurrency levels, bounded in count and time (the benchmark's
   :func:`~qasearch.bench.http_load.measure_throughput`, caches off, the sample
   questions); the best level's requests/s is the saturated throughput.
2. **Hold.** An open-loop sender sends request ``i`` at ``start + i / rate``, with
   ``rate = share x saturated``, whatever the replies before it do: enough threads
   that a slow reply does not hold the next send back (a send later than ``LATE_S``
   is counted as late; one that could not go out before the soak's time was over is
   unsent). Every request goes to loopback with ``"cache": false`` and ends as
   answered, partial (a failed shard or a missing partition), failed (an HTTP error
   status), timeout (no HTTP answer within the deadline plus a grace period) or lost
   (the connection failed otherwise).
3. **Report.** Per window (a minute by default) of scheduled send times: requests,
   rates, p50/p99 of the HTTP 200 replies and the counts above; the resident memory
   of the supervisor, every worker and the gateway's processes at the start and the
   end of the hold (:mod:`qasearch.bench.procmem`); and the two targets of issue 15, met or
   missed with the amounts. Targets are reported, never asserted.
"""

from __future__ import annotations

import ipaddress
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from qasearch.bench import chaos, machine, procmem
from qasearch.bench.http_load import QueryClient, Reply, measure_latency, measure_throughput
from qasearch.bench.timing import percentile
from qasearch.cluster import gateway
from qasearch.core.settings import Settings

LATE_S = 0.25  # a send this far behind its schedule was held back by the sender
MAX_THREADS = 128
WARMUP = 4
P99_RATIO_LIMIT = 1.5  # p99 of the last window within this factor of the first's
MEMORY_GROWTH_LIMIT_PCT = 10.0
KINDS = ("answered", "partial", "failed", "timeout", "lost", "unsent")


class SoakError(RuntimeError):
    """The soak cannot run as asked (bad input, nothing running, no answers)."""


@dataclass(frozen=True)
class SoakConfig:
    minutes: float
    share: float = 0.8
    window_s: float = 60.0
    levels: tuple[int, ...] = (2, 4, 8)
    level_queries: int = 120
    level_seconds: float = 15.0

    def check(self) -> None:
        if not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise SoakError(f"--soak MINUTES must be a positive number, got {self.minutes:g}")
        if not 0 < self.share <= 1:
            raise SoakError(f"--soak-share must be in (0, 1], got {self.share:g}")
        if not self.window_s > 0:
            raise SoakError(f"--soak-window-seconds must be positive, got {self.window_s:g}")
        if not self.levels or min(self.levels) < 1:
            raise SoakError("--soak-levels needs concurrency levels of at least 1")
        if self.level_queries < 1 or not self.level_seconds > 0:
            raise SoakError("the saturation levels need a positive query count and time")


@dataclass
class Sent:
    index: int
    scheduled: float  # seconds after the hold began
    sent: float | None = None  # None: not sent (the hold's time was over first)
    done: float | None = None
    ms: float | None = None
    kind: str = "unsent"
    cached: bool = False


def kind_of(reply: Reply) -> str:
    """answered | partial | failed | timeout | lost, as :func:`qasearch.bench.chaos.classify`
    sees an HTTP answer; without one, a timeout is told from a failed connection."""
    if reply.status is None:
        return "timeout" if reply.timed_out else "lost"
    return chaos.classify(reply.status, reply.body)[0]


def loopback_url(settings: Settings) -> str:
    """The gateway's /qasearch on loopback; a gateway bound elsewhere is refused."""
    host = settings.api_host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SoakError(f"the soak sends traffic to loopback only, not {host}")
    return gateway.url(settings, "/qasearch")


class PacedSender:
    """Open loop: request ``i`` goes out at ``start + i / rate``; threads sleep until their
    request's time, so replies never pace the sends (unless every thread is waiting on
    one: then the send is late, and counted so)."""

    def __init__(self, client: QueryClient, questions: Sequence[str], rate: float,
                 seconds: float, threads: int) -> None:
        if rate <= 0 or seconds <= 0 or not questions:
            raise SoakError("the paced sender needs a positive rate and time, and questions")
        self.client, self.questions, self.rate, self.seconds = client, questions, rate, seconds
        # the last send is at (count - 1) / rate, inside the hold's time
        self.count = max(1, round(rate * seconds))
        self.threads = max(1, min(threads, self.count))
        self.sent = [Sent(i, i / rate) for i in range(self.count)]
        self._next = 0
        self._lock = threading.Lock()

    def _claim(self) -> int | None:
        with self._lock:
            if self._next >= self.count:
                return None
            self._next += 1
            return self._next - 1

    def _loop(self, t0: float) -> None:
        while (i := self._claim()) is not None:
            record = self.sent[i]
            delay = t0 + record.scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            if now - t0 >= self.seconds:
                continue  # held back past the hold's end: stays unsent
            # lost until its reply is read: a reply that never comes stays so
            record.sent, record.kind = now - t0, "lost"
            try:
                reply = self.client.ask(self.questions[i % len(self.questions)])
            except Exception as exc:  # noqa: BLE001 - e.g. a truncated body; a sender never dies
                reply = Reply((time.monotonic() - now) * 1000.0, False, error=repr(exc))
            record.done, record.ms, record.kind = time.monotonic() - t0, reply.ms, kind_of(reply)
            record.cached = bool(reply.body.get("cached")) if reply.ok else False

    def run(self) -> list[Sent]:
        t0 = time.monotonic()
        pool = [threading.Thread(target=self._loop, args=(t0,), name=f"soak-sender-{n}",
                                 daemon=True) for n in range(self.threads)]
        for thread in pool:
            thread.start()
        give_up = t0 + self.seconds + self.client.timeout_s + 10.0
        for thread in pool:
            thread.join(max(0.0, give_up - time.monotonic()))
        return self.sent


def _row(records: list[Sent], done_in: list[Sent], seconds: float) -> dict:
    """Counts, rates and percentiles of the requests scheduled in one stretch of time."""
    row: dict = {k: sum(1 for r in records if r.kind == k) for k in KINDS}
    sent = [r for r in records if r.sent is not None]
    timed = [r.ms for r in records if r.kind in ("answered", "partial") and r.ms is not None]
    row.update(
        requests=len(records), sent=len(sent), seconds=round(seconds, 3),
        sent_per_s=round(len(sent) / seconds, 3) if seconds > 0 else None,
        done_per_s=round(len(done_in) / seconds, 3) if seconds > 0 else None,
        late=sum(1 for r in sent if r.sent - r.scheduled > LATE_S),
        max_late_s=round(max((r.sent - r.scheduled for r in sent), default=0.0), 3),
        cached=sum(1 for r in records if r.cached),
        p50_ms=round(percentile(timed, 50), 1) if timed else None,
        p99_ms=round(percentile(timed, 99), 1) if timed else None,
    )
    return row


def windows(records: list[Sent], seconds: float, window_s: float) -> list[dict]:
    """One row per window of scheduled send times; done/s counts the HTTP 200 replies
    that came back inside the window, whichever window sent them."""
    count = max(1, math.ceil(seconds / window_s - 1e-9))
    answered = [r for r in records if r.kind in ("answered", "partial")]
    rows = []
    for w in range(count):
        lo, hi = w * window_s, min((w + 1) * window_s, seconds)
        mine = [r for r in records if lo <= r.scheduled < hi]
        done_in = [r for r in answered if lo <= r.done < hi]
        rows.append({"window": w + 1, "start_s": round(lo, 3), **_row(mine, done_in, hi - lo)})
    return rows


def targets(rows: list[dict], memory: list[dict], window_s: float) -> list[dict]:
    """Issue 15's two soak targets, each met (True), missed (False) or not measured (None)."""
    timed = [r for r in rows if r["p99_ms"] is not None]
    p99 = {"target": f"p99 in the last minute within {P99_RATIO_LIMIT}x of the first",
           "limit": P99_RATIO_LIMIT, "value": None, "met": None,
           "detail": "not measured: fewer than two windows with answers"}
    if len(timed) >= 2:
        first, last = timed[0]["p99_ms"], timed[-1]["p99_ms"]
        ratio = last / first if first else math.inf
        p99.update(value=round(ratio, 3), met=ratio <= P99_RATIO_LIMIT,
                   detail=f"last window's p99 {last:.1f} ms / first's {first:.1f} ms = "
                          f"{ratio:.2f}x (windows of {window_s:g} s, "
                          f"{timed[0]['window']} and {timed[-1]['window']})")
    grown = [m for m in memory if m["growth_pct"] is not None]
    broken = [m for m in memory if m["status"] not in ("ok", "new")]
    mem = {"target": f"memory growth at most {MEMORY_GROWTH_LIMIT_PCT:g} %",
           "limit": MEMORY_GROWTH_LIMIT_PCT, "value": None, "met": None,
           "detail": "not measured: no process was read at both ends"}
    if grown or broken:
        parts = []
        if grown:
            worst = max(grown, key=lambda m: m["growth_pct"])
            over = [m["name"] for m in grown if m["growth_pct"] > MEMORY_GROWTH_LIMIT_PCT]
            mem["value"] = worst["growth_pct"]
            parts.append(f"worst {worst['name']} {worst['growth_pct']:+.1f} %; over the "
                         f"limit: {', '.join(over) or 'none'} ({len(grown)} processes)")
        if broken:
            parts.append("not comparable, so missed: " + ", ".join(
                f"{m['name']} {m['status']}" for m in broken))
        mem.update(met=not broken and all(
            m["growth_pct"] <= MEMORY_GROWTH_LIMIT_PCT for m in grown), detail="; ".join(parts))
    return [p99, mem]


def _saturate(client: QueryClient, questions: Sequence[str], config: SoakConfig,
              log: Callable[[str], None]) -> list:
    warm = measure_latency(client, questions, WARMUP, config.level_seconds)
    log(f"warm-up: {len(warm.timings_ms)} answered, {warm.errors} errors (not counted)")
    levels = []
    for c in config.levels:
        level = measure_throughput(client, questions, c, config.level_queries,
                                   config.level_seconds, offset=7 * c)
        log(f"saturation c={c}: {level.rps:.2f} req/s ({level.completed} in "
            f"{level.seconds:.1f} s, stopped by {level.stopped_by}, errors {level.errors})")
        levels.append(level)
    return levels


def run_soak(settings: Settings, questions: Sequence[str], config: SoakConfig,
             log: Callable[[str], None] = print) -> dict:
    """Measure the saturated throughput, hold ``share`` of it for ``minutes``, report."""
    config.check()
    url = loopback_url(settings)
    found = procmem.processes(settings)
    roles = {p.role for p in found}
    if "gateway" not in roles:
        raise SoakError(f"no gateway runs from the run folder {settings.run_dir} "
                        f"(start one with `qasearch serve --detach`)")
    if "worker" not in roles:
        raise SoakError(f"no shard worker runs from the run folder {settings.run_dir} "
                        f"(start them with `qasearch workers start`)")
    client = QueryClient(url, timeout_s=settings.deadline_ms / 1000.0 + chaos.LOST_GRACE_S,
                         api_key=settings.api_key)
    try:
        levels = _saturate(client, questions, config, log)
    except RuntimeError as exc:  # every warm-up query failed
        raise SoakError(f"the gateway at {url} does not answer: {exc}") from None
    best = max(levels, key=lambda level: level.rps)
    if best.rps <= 0:
        raise SoakError(f"no level answered a query: {url} is not serving")
    seconds = config.minutes * 60.0
    rate = config.share * best.rps
    # as many threads as requests can be in flight when each waits its whole timeout
    threads = min(MAX_THREADS, max(4, math.ceil(rate * client.timeout_s)))
    sender = PacedSender(client, questions, rate, seconds, threads)
    log(f"holding {config.share:.0%} of {best.rps:.2f} req/s (c={best.concurrency}) = "
        f"{rate:.2f} req/s for {seconds:.0f} s: {sender.count} requests on "
        f"{sender.threads} sender threads")
    load_start = machine.load_average()
    start_memory = procmem.snapshot(found)
    records = sender.run()
    end_memory = procmem.snapshot(procmem.processes(settings))
    rows = windows(records, seconds, config.window_s)
    memory = procmem.growth(start_memory, end_memory)
    total = _row(records, [r for r in records if r.kind in ("answered", "partial")
                           and r.done is not None and r.done < seconds], seconds)
    return {
        "url": url, "config": asdict(config), "seconds": seconds, "cores": os.cpu_count(),
        "saturation": {"levels": [level.as_dict() for level in levels],
                       "best_concurrency": best.concurrency, "requests_per_s": best.rps},
        "rate_per_s": rate, "threads": sender.threads, "scheduled": sender.count,
        "late_s": LATE_S, "windows": rows, "total": total,
        "memory": {"processes": memory, "start": [m.to_dict() for m in start_memory],
                   "end": [m.to_dict() for m in end_memory]},
        "load_average": {"start": load_start, "end": machine.load_average()},
        "notes": client.notes, "targets": targets(rows, memory, config.window_s),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(result: dict) -> str:
    """The printed report: windows, totals, memory per process, the targets."""
    head = (f"{'window':>6} {'start_s':>7} {'sent':>5} {'sent/s':>6} {'done/s':>6} "
            f"{'p50_ms':>6} {'p99_ms':>6} {'answered':>8} {'partial':>7} {'failed':>6} "
            f"{'timeout':>7} {'lost':>4} {'unsent':>6} {'late':>4}")
    lines = [head]
    for r in [*result["windows"], {**result["total"], "window": "all", "start_s": 0}]:
        lines.append(
            f"{r['window']:>6} {r['start_s']:>7.0f} {r['sent']:>5} {r['sent_per_s']:>6.2f} "
            f"{r['done_per_s']:>6.2f} {_ms(r['p50_ms']):>6} {_ms(r['p99_ms']):>6} "
            f"{r['answered']:>8} {r['partial']:>7} {r['failed']:>6} {r['timeout']:>7} "
            f"{r['lost']:>4} {r['unsent']:>6} {r['late']:>4}")
    lines += ["", f"{'process (VmRSS)':<28} {'pid':>7} {'start MiB':>9} {'end MiB':>8} "
                  f"{'growth':>8}  status"]
    for m in result["memory"]["processes"]:
        start = "-" if m["start_kib"] is None else f"{m['start_kib'] / 1024:.1f}"
        end = "-" if m["end_kib"] is None else f"{m['end_kib'] / 1024:.1f}"
        grew = "-" if m["growth_pct"] is None else f"{m['growth_pct']:+.1f} %"
        lines.append(f"{m['name']:<28} {m['pid']:>7} {start:>9} {end:>8} {grew:>8}  "
                     f"{m['status']}")
    load = result["load_average"]
    lines += [f"load average (1, 5, 15 min) at the start {load['start']}, at the end "
              f"{load['end']} on {result['cores']} cores (other work skews the figures)", ""]
    for t in result["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"target: {t['target']}: {verdict} ({t['detail']})")
    return "\n".join(lines)
