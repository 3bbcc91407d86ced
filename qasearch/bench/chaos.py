"""``qasearch chaos``: operational events against a running system, under a steady
stream of queries, with what every query got.

Events, one at a time:

``model-push``   a new model version (a relabelled copy of the current package: same
                 weights, another version id) is pushed to every master, served, then
                 rolled back and deleted, so the system ends as it began
``embedder-push``  the same, but the copy's embedder is relabelled too: every worker
                 (and standby) builds all its indexes again with the "new" embedder
                 before it swaps, and again on the rollback, the heaviest push there is
``worker-kill``  ``kill -9`` of one shard worker the supervisor started (its pid from
                 the run dir, checked against ``/proc``); the supervisor restarts it
``master-kill``  ``kill -9`` of one redis-server master of the local cluster; its
                 replica is promoted, then ``cluster up`` brings the killed node back
                 as a replica, so the cluster is whole again
``add-node``     ``cluster add-node``: a new master, partitions rebalanced to it

While an event runs, sender threads POST ``/qasearch`` to the gateway on loopback
(caches off) and classify every request:

answered  HTTP 200, no failed shard, every partition covered
partial   HTTP 200, some partitions missing (named in the report)
failed    an HTTP error status (e.g. 503)
lost      no HTTP answer at all within the deadline plus a grace period (must be 0)

Recovery time: from the event's start to the first complete answer sent after the
last incomplete one; 0 when no answer was incomplete. Answers that a standby worker
beside a replica served in part (``shards.standby``, gears/standby.py) are counted
as ``standby``; ``late partial`` counts the partial ones sent more than
``LATE_AFTER_S`` after the event started (the target for a master kill is 0), and
full service is the time until answers need no standby any more (the promoted
node's own worker serves). Traffic is bounded per event in requests and in time.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import redis

from qasearch.cluster import localcluster, localnodes, scaleout, workers
from qasearch.core import heartbeat, modelpkg, procs
from qasearch.core.settings import Settings
from qasearch.core.topology import masters, node_client

EVENTS = ("model-push", "embedder-push", "worker-kill", "master-kill", "add-node")
LOST_GRACE_S = 10.0
SETTLE_S = 2.0
RECOVERY_WAIT_S = 120.0  # at most this long past the event for a complete answer
WAIT_S = 300.0
REEMBED_WAIT_S = 1200.0  # an embedder push: every worker re-embeds its whole corpus
LATE_AFTER_S = 1.0  # a partial answer sent later than this after the event counts as late


class ChaosError(RuntimeError):
    """An event could not be run (nothing to kill, cluster not healthy, ...)."""


@dataclass
class Outcome:
    sent: float
    done: float
    kind: str  # answered | partial | failed | lost
    detail: str = ""
    missing: tuple[str, ...] = ()
    standby: bool = False  # a standby beside a replica answered for some shard


@dataclass
class EventReport:
    event: str
    sent: int = 0
    answered: int = 0
    partial: int = 0
    failed: int = 0
    lost: int = 0
    recovery_s: float | None = 0.0  # None: never answered completely after the event
    late_partial: int = 0  # partial answers sent more than LATE_AFTER_S after the start
    standby: int = 0  # answers a standby served in part
    full_service_s: float | None = 0.0  # until answers need no standby; None: never
    event_s: float = 0.0  # how long the event's own action took
    missing: list[str] = field(default_factory=list)
    note: str = ""
    event_ok: bool = True  # False: the event's own action failed (see note)

    def to_dict(self) -> dict:
        return asdict(self)


def served_by_standby(body: dict | None) -> bool:
    return bool((body or {}).get("shards", {}).get("standby"))


def classify(status: int | None, body: dict | None) -> tuple[str, tuple[str, ...], str]:
    """(kind, missing partitions, detail) of one HTTP outcome (status None: no answer)."""
    if status is None:
        return "lost", (), "no answer"
    if status != 200 or body is None:
        return "failed", (), f"HTTP {status}: {(body or {}).get('error', '')}"[:200]
    shards = body.get("shards", {})
    missing = set(shards.get("partitions", {}).get("missing", []))
    for failure in shards.get("failed", []):
        missing.update(failure.get("partitions", []))
    if shards.get("failed") or missing:
        reasons = "; ".join(f"{f.get('node')}: {f.get('reason')}" for f in shards.get("failed", []))
        return "partial", tuple(sorted(missing)), reasons[:200]
    return "answered", (), ""


class Traffic:
    """Sender threads asking the gateway, each request bounded by its deadline."""

    def __init__(self, settings: Settings, concurrency: int, timeout_ms: int,
                 max_requests: int) -> None:
        if settings.api_host not in ("127.0.0.1", "localhost", "::1"):
            raise ChaosError(f"chaos sends traffic to loopback only, not {settings.api_host}")
        self.url = f"http://127.0.0.1:{settings.api_port}/qasearch"
        self.api_key = getattr(settings, "api_key", "")  # QASEARCH_API_KEY, when set
        self.concurrency = max(1, concurrency)
        self.timeout_ms = timeout_ms
        self.max_requests = max_requests
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = 0

    def _one(self, n: int) -> Outcome:
        body = json.dumps({"search": f"What causes the tides and the seasons? ({n})",
                           "cache": False, "timeout_ms": self.timeout_ms}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        sent = time.monotonic()
        status, payload = None, None
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout_ms / 1000.0 + LOST_GRACE_S
            ) as resp:
                status, payload = resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                payload = json.loads(exc.read())
            except ValueError:
                payload = {}
        except (OSError, ValueError):  # refused, reset, timed out: no answer at all
            status = None
        kind, missing, detail = classify(status, payload)
        return Outcome(sent, time.monotonic(), kind, detail, missing,
                       standby=served_by_standby(payload))

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._count >= self.max_requests:
                    return
                self._count += 1
                n = self._count
            outcome = self._one(n)
            with self._lock:
                self.outcomes.append(outcome)

    def start(self) -> None:
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"chaos-sender-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_ms / 1000.0 + LOST_GRACE_S + 5)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)


def report(event: str, outcomes: list[Outcome], started: float, event_s: float) -> EventReport:
    """Counts and recovery time of one event's outcomes (``started``: event start)."""
    rep = EventReport(event, event_s=round(event_s, 2))
    missing: set[str] = set()
    for o in outcomes:
        rep.sent += 1
        setattr(rep, o.kind, getattr(rep, o.kind) + 1)
        missing.update(o.missing)
    rep.missing = sorted(missing)
    rep.late_partial = sum(o.kind == "partial" and o.sent > started + LATE_AFTER_S
                           for o in outcomes)
    rep.standby = sum(o.standby for o in outcomes)
    helped = [o for o in outcomes if o.standby and o.done >= started]
    if helped:
        last = max(o.sent for o in helped)
        after = [o.done for o in outcomes if o.kind == "answered" and not o.standby
                 and o.sent > last]
        rep.full_service_s = round(min(after) - started, 2) if after else None
    incomplete = [o for o in outcomes if o.kind != "answered" and o.done >= started]
    if incomplete:
        last = max(o.sent for o in incomplete)
        after = [o.done for o in outcomes if o.kind == "answered" and o.sent > last]
        rep.recovery_s = round(min(after) - started, 2) if after else None
    return rep


# --------------------------------------------------------------------------- events


def _wait(what: str, predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a node may refuse while it fails over
            pass
        time.sleep(0.25)
    raise ChaosError(f"timed out after {timeout:.0f}s waiting for {what}")


def _all_serving(settings: Settings, version: str | None = None) -> bool:
    found = masters(settings)
    states = [workers.state(settings, m) for m in found]
    return bool(found) and all(
        heartbeat.is_ready(s) and (version is None or s.get("model") == version) for s in states)


def model_push(settings: Settings, relabel: tuple[str, ...] = ("reader",)) -> str:
    """Push a relabelled copy of the current package, serve it, roll back, delete it.

    Relabelling only the reader gives a new version id with the same tokenizer and
    embedder ids, so the workers swap the reader without re-embedding passages;
    relabelling the embedder too makes every worker re-embed every passage.
    """
    current = modelpkg.load_current(settings)
    m = current.manifest
    digests = dict(m["digests"])
    for part in relabel:  # same weights, another digest
        digests[part] = f"{digests[part]}+chaos-{int(time.time())}"
    copy = modelpkg.make_package(
        name=f"{m['name']} (chaos copy)", source=m["source"], trained=m["trained"],
        reader=m["reader"], embedder=m["embedder"], reader_tokenizer=m["reader_tokenizer"],
        embedder_tokenizer=m["embedder_tokenizer"], blobs=current.blobs, digests=digests,
    )
    # re-embedding every passage (on the workers' low-priority threads) takes far
    # longer than a reader swap, the more so on busy cores
    wait_s = REEMBED_WAIT_S if "embedder" in relabel else WAIT_S
    modelpkg.push_to_cluster(settings, copy, progress=False)
    try:
        _wait(f"every worker to serve {copy.version}",
              lambda: _all_serving(settings, copy.version), timeout=wait_s)
    finally:  # served or not, the system ends as it began
        for master in masters(settings):
            node = node_client(master.host, master.port, settings, socket_timeout=60)
            try:
                modelpkg.rollback(node, master.tag)
                modelpkg.delete_version(node, master.tag, copy.version)
            finally:
                node.close()
        _wait(f"every worker back on {current.version}",
              lambda: _all_serving(settings, current.version), timeout=wait_s)
    return f"served {copy.version}, then rolled back to {current.version}"


def worker_kill(settings: Settings) -> str:
    """kill -9 of the first master's worker (a process the supervisor started)."""
    victim = masters(settings)[0]
    name = f"worker-{victim.port}"
    pid = procs.running_pid(settings.run_dir, name, "gears.worker")
    if pid is None:
        raise ChaosError(f"no worker of ours for {victim.address} (see `qasearch workers "
                         f"status`)")
    os.kill(pid, signal.SIGKILL)
    _wait(f"a new worker for {victim.address}", lambda: (
        (s := workers.state(settings, victim)) and heartbeat.is_ready(s) and int(s["pid"]) != pid))
    return f"killed worker pid {pid} of {victim.address}"


def master_kill(settings: Settings) -> str:
    """kill -9 of a master of the local cluster, failover, then the node back as replica."""
    found = masters(settings)
    specs = {s.port: s for s in localnodes.managed(settings)}
    victim = next((m for m in found if m.port in specs and localcluster.node_pid(specs[m.port])),
                  None)
    if victim is None:
        raise ChaosError("no master of the local cluster runs from this data dir")
    spec = specs[victim.port]
    pid = localcluster.node_pid(spec)
    os.kill(pid, signal.SIGKILL)
    _wait(f"a replica of {victim.address} to take over", lambda: (
        victim.port not in {m.port for m in masters(settings)}))
    localcluster.up(settings, timeout=60)
    _wait("every worker ready again", lambda: _all_serving(settings))
    return f"killed redis-server pid {pid} ({victim.address}); it came back as a replica"


def add_node(settings: Settings) -> str:
    result = scaleout.add_node(settings, replicas=settings.replicas_per_master)
    _wait("every worker ready again", lambda: _all_serving(settings))
    return f"added {result.master}: {result.partitions_moved} partitions moved"


ACTIONS: dict[str, Callable[[Settings], str]] = {
    "model-push": model_push,
    "embedder-push": lambda settings: model_push(settings, relabel=("reader", "embedder")),
    "worker-kill": worker_kill, "master-kill": master_kill,
    "add-node": add_node,
}


def run_event(settings: Settings, event: str, seconds: float, concurrency: int = 2,
              timeout_ms: int = 10_000, max_requests: int = 1000) -> EventReport:
    """Run one event under traffic; traffic lasts ``seconds``, at least until the event
    has finished and settled, and then until a complete answer shows the system
    recovered (at most ``RECOVERY_WAIT_S`` more), capped at ``max_requests``."""
    if event not in ACTIONS:
        raise ChaosError(f"unknown event {event!r}; choose from {', '.join(EVENTS)}")
    traffic = Traffic(settings, concurrency, timeout_ms, max_requests)
    traffic.start()
    t0 = time.monotonic()
    warmup_deadline = t0 + max(5.0, timeout_ms / 1000.0)
    while traffic.count() < concurrency and time.monotonic() < warmup_deadline:
        time.sleep(0.05)  # a few answers before the event: the baseline is whole
    started = time.monotonic()
    note, event_ok = "", True
    try:
        note = ACTIONS[event](settings)
    except (ChaosError, localcluster.ClusterError, modelpkg.ModelPackageError,
            redis.RedisError) as exc:  # e.g. a slot that moved under the event
        note, event_ok = f"event failed: {exc}", False
    event_s = time.monotonic() - started
    end = max(t0 + seconds, time.monotonic() + SETTLE_S)
    give_up = time.monotonic() + max(seconds, RECOVERY_WAIT_S)
    # past the window, traffic goes on (bounded) until the system answered completely
    # again, so the recovery time is measured, not cut off
    while time.monotonic() < end or (
        time.monotonic() < give_up and traffic.count() < max_requests
        and report(event, list(traffic.outcomes), started, 0).recovery_s is None
    ):
        time.sleep(0.05)
    traffic.stop()
    rep = report(event, list(traffic.outcomes), started, event_s)
    rep.note, rep.event_ok = note, event_ok
    return rep


def table(reports: list[EventReport]) -> str:
    lines = [f"{'event':<12} {'sent':>5} {'answered':>8} {'partial':>7} {'late':>4} "
             f"{'failed':>6} {'lost':>4} {'standby':>7} {'recovery_s':>10} {'full_s':>6}  "
             f"event_s  missing / note"]
    for r in reports:
        recovery = "never" if r.recovery_s is None else f"{r.recovery_s:.2f}"
        full = "never" if r.full_service_s is None else f"{r.full_service_s:.2f}"
        tail = ",".join(r.missing) or "-"
        lines.append(f"{r.event:<12} {r.sent:>5} {r.answered:>8} {r.partial:>7} "
                     f"{r.late_partial:>4} {r.failed:>6} {r.lost:>4} {r.standby:>7} "
                     f"{recovery:>10} {full:>6}  {r.event_s:>7.1f}  {tail}; {r.note}")
    lines.append(f"(late: partial answers sent more than {LATE_AFTER_S:.0f} s after the event "
                 f"began; standby: answered in part by a replica's standby worker; full_s: "
                 f"until no answer needs a standby)")
    return "\n".join(lines)
