"""Starting, stopping and inspecting the shard workers (through their supervisors).

One supervisor serves every node (``workers start``), or one supervisor per host
serves the nodes on its host (``workers start --host A``, see
:mod:`gears.supervisor`); both kinds never serve one run folder at once, or a node
would get two workers. Their pid files are ``supervisor.pid`` and
``supervisor-<host>.pid``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from qasearch.core import heartbeat, hostlayout, procs
from qasearch.core.clusternodes import cluster_nodes
from qasearch.core.procs import (
    SUPERVISOR,
    SUPERVISOR_MARKER,
    WORKER_MARKER,
    supervisor_name,
    worker_name,
)
from qasearch.core.settings import Settings, to_environ
from qasearch.core.standbywire import StandbyCall
from qasearch.core.topology import Master, masters, node_client


class WorkersError(RuntimeError):
    """The supervisors could not be started as asked."""


def supervisors(settings: Settings) -> dict[str, int]:
    """The supervisors of this run folder that run: host ("" = every node) -> pid."""
    found = {}
    for path in sorted(Path(settings.run_dir).glob(f"{SUPERVISOR}*.pid")):
        pid = procs.running_pid(settings.run_dir, path.stem, SUPERVISOR_MARKER)
        if pid is not None:
            words = procs.cmdline(pid).split()
            host = words[words.index("--host") + 1] if "--host" in words[:-1] else ""
            found[host] = pid
    return found


def start(settings: Settings, host: str = "") -> tuple[int, bool]:
    """Start the supervisor of ``host`` ("" = of every node) unless it runs; returns
    (pid, started_now). Refuses to mix the two kinds in one run folder."""
    running = supervisors(settings)
    if host in running:
        return running[host], False
    if host and "" in running:
        raise WorkersError(f"the supervisor of every node runs (pid {running['']}); "
                           f"`qasearch workers stop` it before starting per-host ones")
    if not host and running:
        raise WorkersError(f"supervisors of host(s) {', '.join(sorted(running))} run; "
                           f"`qasearch workers stop` them before starting one for every node")
    command = [sys.executable, "-m", "gears.supervisor", *(["--host", host] if host else [])]
    name = supervisor_name(host)
    return procs.start(settings.run_dir, name, command, env=to_environ(settings)), True


def stop(settings: Settings, host: str | None = None) -> list[str]:
    """Stop the supervisor of ``host`` ("" = of every node; None = every supervisor of
    this run folder) and its workers; returns the hosts whose supervisor was stopped."""
    hosts = list(supervisors(settings)) if host is None else [host]
    return [h for h in hosts
            if procs.stop(settings.run_dir, supervisor_name(h), SUPERVISOR_MARKER, timeout=20)]


def hosts_without_nodes(settings: Settings, host: str) -> list[str]:
    """Empty when some node of the cluster is on ``host``; else the hosts that have one."""
    nodes = cluster_nodes(settings)
    if any(n.on(host) for n in nodes):
        return []
    return sorted({n.host for n in nodes})


def state(settings: Settings, master: Master) -> dict[str, str]:
    """The heartbeat of ``master``'s worker (:func:`qasearch.core.heartbeat.read`)."""
    client = node_client(master.host, master.port, settings, socket_timeout=5)
    try:
        return heartbeat.read(client, master)
    finally:
        client.close()


def states(settings: Settings) -> list[dict[str, str]]:
    """Each master's worker heartbeat."""
    return [state(settings, master) for master in masters(settings)]


@dataclass(frozen=True)
class NodeWorker:
    """A node and what serves it: the master's heartbeat, and a worker started here."""

    host: str
    address: str
    role: str
    health: str
    heartbeat: dict[str, str]  # a master's worker state (empty: none, or a replica)
    local_pid: int | None  # a worker of this machine's supervisors for the node


def node_workers(settings: Settings) -> list[NodeWorker]:
    """Every node of the cluster, by host, with its worker (``workers status``)."""
    beats = {s["master"]: s for s in states(settings)}
    running = supervisors(settings)
    found = []
    for node in sorted(cluster_nodes(settings), key=lambda n: (n.host, n.port)):
        pid = next((p for h in running if (p := procs.running_pid(
            settings.run_dir, worker_name(h, node.port), WORKER_MARKER))), None)
        beat = beats.get(node.address, {}) if node.role == "master" else {}
        found.append(NodeWorker(node.host, node.address, node.role, node.health,
                                {k: v for k, v in beat.items() if k not in
                                 ("master", "master_id", "host", "tag")}, pid))
    return found


def standby_states(settings: Settings, timeout_s: float = 2.0,
                   host: str = "") -> dict[str, dict]:
    """{replica address: its standby worker's answer to ``ping``} for every replica
    (``{}`` when no standby listens there or it did not answer in ``timeout_s``); only
    the replicas on ``host``, when given.

    A replica refuses writes, so a standby keeps no heartbeat key: it is asked over
    its channel (qasearch.core.standbywire), as the gateway asks it.
    """
    found = {}
    for node in cluster_nodes(settings):
        if node.role != "replica" or (host and not hostlayout.same_host(host, node.host)):
            continue
        client = node_client(node.host, node.port, settings, socket_timeout=5,
                             socket_connect_timeout=1)
        try:
            call = StandbyCall.start(client, node.address, node.node_id,
                                     {"op": "ping", "question": "", "deadline": 0})
            reply = call.poll(timeout_s) if call else None
            if call:
                call.close()
        finally:
            client.close()
        found[node.address] = reply or {}
    return found


def wait_standbys_ready(settings: Settings, timeout: float,
                        host: str = "") -> dict[str, dict]:
    """Block until every replica's standby (on ``host``, when given) answers ``ping`` as
    ready; raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        current = standby_states(settings, host=host)
        if all(s.get("ready") and s.get("standby") for s in current.values()):
            return current
        if time.monotonic() > deadline:
            missing = [a for a, s in current.items() if not s.get("ready")]
            raise TimeoutError(f"standbys not ready after {timeout:.0f}s: {', '.join(missing)}")
        time.sleep(0.5)


def wait_ready(settings: Settings, timeout: float, on_wait=None,
               host: str = "") -> list[dict[str, str]]:
    """Block until the worker of every master (on ``host``, when given) reports ready;
    raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        current = [s for s in states(settings)
                   if not host or hostlayout.same_host(host, s["host"])]
        if all(heartbeat.is_ready(s) for s in current) and (current or host):
            return current
        if time.monotonic() > deadline:
            missing = [s["master"] for s in current if not heartbeat.is_ready(s)]
            raise TimeoutError(f"workers not ready after {timeout:.0f}s: {', '.join(missing)}")
        if on_wait:
            on_wait(current)
        time.sleep(0.5)
