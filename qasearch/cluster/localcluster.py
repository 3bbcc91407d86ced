"""A Redis Cluster on loopback for development and tests: ``up``, ``down``, ``status``.

The nodes' layout, folders, configs and processes are :mod:`qasearch.cluster.localnodes`;
waiting for them to answer, meet and agree is :mod:`qasearch.cluster.nodewait`. This
module forms the cluster from them and takes it down.

Redis semantics relied on:

- Slots are not cut evenly (``redis-cli --cluster create`` would): each master gets
  the range from :func:`qasearch.core.partitions.balanced_slot_ranges` via
  ``CLUSTER ADDSLOTSRANGE``, and a distinct ``CLUSTER SET-CONFIG-EPOCH`` so no epoch
  collision has to be resolved at first contact.
- A node restarted from its folder rejoins through ``nodes.conf`` and reloads its AOF,
  so a stopped cluster comes back with its data and its slots; ``up`` never re-creates
  slots on nodes that already have cluster state.
- A master reports ``cluster_state:ok`` only ~2 s after start (Redis's writable delay),
  which is most of the ~2.5 s a fresh ``up`` takes.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from qasearch.cluster import durability
from qasearch.cluster.localnodes import (
    BUS_PORT_OFFSET,
    POLL_S,
    ClusterError,
    NodeSpec,
    PortInUse,
    acl_config,
    is_ours,
    layout,
    loopback_ip,
    managed,
    moved_nodes,
    node_pid,
    start_nodes,
)
from qasearch.cluster.nodewait import (
    auth_hint,
    local_client,
    node_ready,
    nodes_by_port,
    wait_for,
    wait_ping,
    wait_ready,
)
from qasearch.core import procs
from qasearch.core.partitions import balanced_slot_ranges, owned_partitions
from qasearch.core.procs import port_free
from qasearch.core.settings import Settings
from qasearch.core.topology import masters as topology_masters

__all__ = [  # with the names of this module: what callers of the local cluster use
    "BUS_PORT_OFFSET", "ClusterError", "NodeSpec", "PortInUse", "layout", "node_pid",
]

# --------------------------------------------------------------------------- results


@dataclass
class NodeStatus:
    address: str
    port: int
    node_id: str | None
    role: str  # master | replica | unknown
    replica_of: str | None  # the master's address, for replicas
    link_state: str  # connected | disconnected | fail | down
    pid: int | None
    alive: bool


@dataclass
class MasterStatus:
    address: str
    node_id: str
    tag: str
    ranges: list[tuple[int, int]]
    slots: int
    partitions: list[int]
    replicas: list[str]


@dataclass
class ClusterStatus:
    state: str  # ok | fail | down (no node answers)
    nodes: list[NodeStatus] = field(default_factory=list)
    masters: list[MasterStatus] = field(default_factory=list)
    partitions: int = 0
    passages: int | None = None  # in the partitions' indexes (None: unknown)
    passages_recorded: int | None = None  # by the loaders (None: no record)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class UpResult:
    already_running: bool
    created: bool  # slots assigned and replicas attached now (a fresh cluster)
    started: list[int]  # ports of the nodes started by this call
    seconds: float
    status: ClusterStatus


@dataclass
class DownResult:
    stopped: list[int]
    not_running: list[int]
    still_running: list[int]  # port still bound without a pid file of ours: left alone
    purged: bool


# --------------------------------------------------------------------------- up


def _fresh(client: redis.Redis) -> bool:
    info = client.cluster("INFO")
    return int(info["cluster_known_nodes"]) == 1 and int(info["cluster_slots_assigned"]) == 0


def _create(
    settings: Settings, specs: list[NodeSpec], clients: dict[int, redis.Redis], timeout: float,
) -> None:
    masters = [s for s in specs if s.master_port is None]
    ranges = balanced_slot_ranges(len(masters), settings.partitions_per_master)
    for epoch, (spec, (lo, hi)) in enumerate(zip(masters, ranges), start=1):
        clients[spec.port].cluster("SET-CONFIG-EPOCH", epoch)
        clients[spec.port].execute_command("CLUSTER ADDSLOTSRANGE", lo, hi)
    # Every pair meets directly: no waiting for gossip to spread the introductions.
    for i, a in enumerate(specs):
        for b in specs[i + 1 :]:
            clients[a.port].cluster("MEET", b.host, b.port)
    wait_mesh(specs, clients, timeout)
    ids = {s.port: clients[s.port].cluster("MYID") for s in masters}
    for spec in specs:
        if spec.master_port is not None:
            clients[spec.port].cluster("REPLICATE", ids[spec.master_port])


def wait_mesh(specs: list[NodeSpec], clients: dict[int, redis.Redis], timeout: float) -> None:
    def probe() -> tuple[bool, str, NodeSpec | None]:
        for spec in specs:
            view = nodes_by_port(clients[spec.port].cluster("NODES"))
            known = [v for v in view.values() if not v["flags"] & {"handshake", "noaddr"}]
            if len(known) < len(specs):
                return False, f"node {spec.port} knows {len(known)}/{len(specs)} nodes", spec
        return True, "", None

    wait_for("nodes to meet", timeout, probe)


def _attach_replicas(replicas: list[NodeSpec], clients: dict[int, redis.Redis]) -> None:
    """Each replica follows whichever node of its group now holds the group's slots."""
    for spec in replicas:
        assert spec.master_port is not None
        view = nodes_by_port(clients[spec.port].cluster("NODES"))
        intended = view.get(spec.master_port)
        owner = None
        if intended is not None:
            # After a failover the group's slots sit on a former replica of the same master.
            group = [intended] + [v for v in view.values() if v["master_id"] == intended["node_id"]]
            owner = next((v for v in group if "master" in v["flags"] and v["slots"]), None)
        if owner is None:
            raise ClusterError(
                f"node {spec.port} has no cluster state and no master of its group "
                f"(port {spec.master_port}) holds slots; run `qasearch cluster down --purge`"
            )
        clients[spec.port].cluster("REPLICATE", owner["node_id"])


def _rejoin(
    fresh: list[NodeSpec], formed: list[NodeSpec], clients: dict[int, redis.Redis]
) -> None:
    """Introduce nodes whose folder was lost; their old identities must be forgotten first."""
    view = nodes_by_port(clients[formed[0].port].cluster("NODES"))
    stale = [view[s.port]["node_id"] for s in fresh if s.port in view]
    # FORGET is per node and only lasts 60 s, so every formed node is told before the MEET.
    for spec in formed:
        for node_id in stale:
            try:
                clients[spec.port].cluster("FORGET", node_id)
            except redis.ResponseError:
                pass  # e.g. a node does not know it any more
    for spec in fresh:
        clients[formed[0].port].cluster("MEET", spec.host, spec.port)


def up(settings: Settings, timeout: float = 30.0) -> UpResult:
    """Start (or complete, or restart) the local cluster; a no-op when it already runs."""
    t0 = time.monotonic()
    ip = loopback_ip(settings.host)
    acl_config(settings)  # no node starts without a password
    specs = managed(settings)
    moved = moved_nodes(settings, specs)
    if moved:
        raise ClusterError(
            f"node(s) {', '.join(moved)} were created on other hosts: give the hosts they "
            f"were created with (--hosts, QASEARCH_HOSTS), or `cluster down --purge` first")
    to_start = [s for s in specs if node_pid(s) is None]
    clients = {s.port: local_client(settings, s.host, s.port) for s in specs}
    try:
        if not to_start and all(not _quick_ready(s, clients, len(specs)) for s in specs):
            return UpResult(True, False, [], time.monotonic() - t0, status(settings))
        offsets = start_nodes(to_start, settings, ip)
        wait_ping(settings, specs, clients, offsets, timeout)
        fresh = [s for s in specs if _fresh(clients[s.port])]
        created = len(fresh) == len(specs)
        if created:
            _create(settings, specs, clients, timeout)
        elif fresh:
            if any(s.master_port is None for s in fresh):
                names = ", ".join(str(s.port) for s in fresh if s.master_port is None)
                raise ClusterError(
                    f"master node(s) {names} have no cluster state while others do (folder "
                    f"deleted or layout changed); run `qasearch cluster down --purge` first"
                )
            _rejoin(fresh, [s for s in specs if s not in fresh], clients)
            wait_mesh(specs, clients, timeout)
            _attach_replicas(fresh, clients)
        wait_ready(specs, clients, timeout)
    finally:
        for client in clients.values():
            client.close()
    return UpResult(
        False, created, [s.port for s in to_start], time.monotonic() - t0, status(settings)
    )


def _quick_ready(spec: NodeSpec, clients: dict[int, redis.Redis], count: int) -> str:
    try:
        return node_ready(spec, clients[spec.port], count)
    except redis.RedisError as exc:
        return str(exc)


# --------------------------------------------------------------------------- down


def down(settings: Settings, purge: bool = False, timeout: float = 15.0) -> DownResult:
    """SIGTERM our nodes (SIGKILL after ``timeout``); keep their data unless ``purge``."""
    specs = managed(settings)
    pids = {s.port: pid for s in specs if (pid := node_pid(s)) is not None}
    for pid in pids.values():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(not procs.gone(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for port, pid in pids.items():
        if not procs.gone(pid) and node_pid(next(s for s in specs if s.port == port)) == pid:
            os.kill(pid, signal.SIGKILL)
    # Redis removes its pid file on a clean exit, not after SIGKILL.
    for spec in specs:
        if spec.port in pids:
            spec.pidfile.unlink(missing_ok=True)
    stopped = sorted(pids)
    existing = [s for s in specs if s.folder.exists()]
    still = sorted(
        s.port for s in existing if s.port not in pids and not port_free(s.host, s.port)
    )
    if purge:
        for spec in existing:
            if spec.port not in still and (is_ours(spec.folder) or not spec.conf.exists()):
                shutil.rmtree(spec.folder, ignore_errors=True)
        data = Path(settings.data_dir)
        if data.is_dir() and not any(data.iterdir()):
            data.rmdir()
    not_running = sorted(s.port for s in existing if s.port not in pids and s.port not in still)
    return DownResult(stopped, not_running, still, purge)


# --------------------------------------------------------------------------- status


def _live_view(
    settings: Settings, specs: Iterable[NodeSpec], alive: dict[int, bool]
) -> tuple[NodeSpec | None, dict[int, dict], str]:
    for spec in specs:
        if not alive[spec.port]:
            continue
        client = local_client(settings, spec.host, spec.port)
        try:
            view = nodes_by_port(client.cluster("NODES"))
            state = client.cluster("INFO").get("cluster_state", "unknown")
            return spec, view, state
        except (redis.AuthenticationError, redis.AuthenticationWrongNumberOfArgsError) as exc:
            raise ClusterError(auth_hint(settings, spec.port, exc)) from None
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc):
                raise ClusterError(
                    f"node {spec.port} needs a password; set QASEARCH_REDIS_PASSWORD"
                ) from None
            continue
        except redis.RedisError:
            continue
        finally:
            client.close()
    return None, {}, "down"


def partition_count(settings: Settings, ms: list, default: int,
                     meta: dict[str, str] | None = None) -> int:
    raw = (durability.corpus_meta(settings, ms) if meta is None else meta).get("partitions")
    return int(raw) if raw else default


def _saved_self(spec: NodeSpec) -> tuple[str | None, str, str | None]:
    """(id, role, master id) of a stopped node, from the ``myself`` line of its nodes.conf."""
    try:
        for line in (spec.folder / "nodes.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) > 3 and "myself" in parts[2].split(","):
                role = "replica" if "slave" in parts[2] else "master"
                return parts[0], role, parts[3] if parts[3] != "-" else None
    except OSError:
        pass
    return None, "unknown", None


def status(settings: Settings) -> ClusterStatus:
    """Nodes (from pid files and CLUSTER NODES), masters with their slots and partitions."""
    specs = [s for s in managed(settings) if s.folder.exists()]
    pids = {s.port: node_pid(s) for s in specs}
    alive = {p: pid is not None for p, pid in pids.items()}
    via, view, state = _live_view(settings, specs, alive)
    host = {s.port: s.host for s in specs} | {p: v["host"] for p, v in view.items()}
    by_id = {v["node_id"]: v for v in view.values()}
    nodes = []
    saved = {s.port: _saved_self(s) for s in specs if s.port not in view}
    saved_ports = {nid: port for port, (nid, _, _) in saved.items() if nid}
    for port in sorted(set(pids) | set(view)):
        v = view.get(port)
        if v is None:
            nid, role, master_id = saved[port]
            of = saved_ports.get(master_id) if master_id else None
            nodes.append(NodeStatus(f"{host[port]}:{port}", port, nid, role,
                                    f"{host[of]}:{of}" if of else None, "down",
                                    pids.get(port), alive.get(port, False)))
            continue
        flags = v["flags"]
        role = "replica" if "slave" in flags else "master"
        master = by_id.get(v["master_id"]) if role == "replica" else None
        link = "fail" if flags & {"fail", "fail?"} else (
            "connected" if v["connected"] or "myself" in flags else "disconnected")
        nodes.append(NodeStatus(
            f"{host[port]}:{port}", port, v["node_id"], role,
            f"{master['host']}:{master['port']}" if master else None,
            link, pids.get(port), alive.get(port, link == "connected"),
        ))
    masters: list[MasterStatus] = []
    partitions = settings.masters * settings.partitions_per_master
    counted = durability.PassageCount(None, None)
    if via is not None:
        try:
            ms = topology_masters(settings, via=(via.host, via.port))
        except redis.RedisError:
            ms = []
        meta = durability.corpus_meta(settings, ms)
        partitions = partition_count(settings, ms, partitions, meta)
        if meta:
            counted = durability.passage_count(settings, ms, partitions, meta)
        for m in ms:
            masters.append(MasterStatus(
                m.address, m.node_id, m.tag, [tuple(r) for r in m.ranges],
                sum(hi - lo + 1 for lo, hi in m.ranges), owned_partitions(m.ranges, partitions),
                [n.address for n in nodes if n.node_id and
                 by_id.get(n.node_id, {}).get("master_id") == m.node_id],
            ))
    return ClusterStatus(state, nodes, masters, partitions, counted.present, counted.recorded)
