"""Resident memory (VmRSS) of the processes qasearch runs: the supervisor, each shard
worker, the gateway's gunicorn master and its gunicorn workers.

The pids come from the run folder's pid files (:mod:`qasearch.core.procs`), each checked
against its command line; gunicorn's workers are the master's children, found in
``/proc``. Nothing here signals a process: it only reads ``/proc``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from qasearch.cluster import gateway
from qasearch.core import procs
from qasearch.core.settings import Settings


@dataclass(frozen=True)
class Process:
    name: str  # supervisor, worker-<port>, gateway, gunicorn-worker-<pid>
    role: str  # supervisor | worker | gateway | gunicorn-worker
    pid: int


@dataclass(frozen=True)
class Memory:
    name: str
    role: str
    pid: int
    rss_kib: int | None  # None: the process was gone when read

    def to_dict(self) -> dict:
        return asdict(self)


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB, from /proc/<pid>/status (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie has no VmRSS line


def children(parent: int) -> list[int]:
    """Live pids whose parent is ``parent`` (every /proc/<pid>/stat read; no C extension
    or CONFIG_PROC_CHILDREN needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name in (...) may hold spaces: the fields start after the last ")"
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError, IndexError):
            continue
        if int(ppid) == parent and state != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def processes(settings: Settings) -> list[Process]:
    """The supervisor, every worker and the gateway's processes running from the run folder."""
    run_dir = settings.run_dir
    found = []
    supervisor = procs.running_pid(run_dir, procs.SUPERVISOR, procs.SUPERVISOR_MARKER)
    if supervisor is not None:
        found.append(Process(procs.SUPERVISOR, "supervisor", supervisor))
    for pid_path in sorted(Path(run_dir).glob("worker-*.pid")):
        pid = procs.running_pid(run_dir, pid_path.stem, procs.WORKER_MARKER)
        if pid is not None:
            found.append(Process(pid_path.stem, "worker", pid))
    master = procs.running_pid(run_dir, gateway.GATEWAY, gateway.GATEWAY_MARKER)
    if master is not None:
        found.append(Process(gateway.GATEWAY, "gateway", master))
        for pid in children(master):
            if gateway.GATEWAY_MARKER in procs.cmdline(pid):  # forked: the master's command
                found.append(Process(f"gunicorn-worker-{pid}", "gunicorn-worker", pid))
    return found


def snapshot(found: list[Process]) -> list[Memory]:
    return [Memory(p.name, p.role, p.pid, rss_kib(p.pid)) for p in found]


def growth(start: list[Memory], end: list[Memory]) -> list[dict]:
    """Per process of ``start``: RSS at start and end and growth in %; a process whose
    pid is not among the end's (restarted, or gone) has no growth and says so."""
    by_name = {m.name: m for m in end}
    rows = []
    for s in start:
        e = by_name.get(s.name)
        row = {"name": s.name, "role": s.role, "pid": s.pid, "start_kib": s.rss_kib,
               "end_kib": None, "growth_pct": None, "status": "ok"}
        if e is None or e.rss_kib is None:
            row["status"] = "gone"
        elif e.pid != s.pid:
            row.update(status=f"restarted (pid {e.pid})", end_kib=e.rss_kib)
        else:
            row["end_kib"] = e.rss_kib
            if s.rss_kib:
                row["growth_pct"] = round(100.0 * (e.rss_kib - s.rss_kib) / s.rss_kib, 2)
        rows.append(row)
    started = {s.name for s in start}
    rows += [{"name": e.name, "role": e.role, "pid": e.pid, "start_kib": None,
              "end_kib": e.rss_kib, "growth_pct": None, "status": "new"}
             for e in end if e.name not in started]
    return rows
