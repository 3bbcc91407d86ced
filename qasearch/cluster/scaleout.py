"""Scale-out of the local cluster: ``qasearch cluster add-node``.

Adds one master (and its replicas) to the running cluster of ``qasearch/cluster/localcluster``
and rebalances so that every master owns an equal share of the partitions, in the
contiguous layout ``cluster up`` would create for that many masters
(:func:`qasearch.core.partitions.partition_slot_ranges`). Steps:

1. Plan. Each existing master keeps the new range that holds its node tag's slot, so
   its node tag (request stream, model package, heartbeat) never changes; the new
   master takes the range left over, and its node tag is the first ``n<i>`` in it.
   Inside a master's new range its tag is the smallest one, and a master only ever
   gains slots of its new range, so no node tag changes in any intermediate state
   either. A plan that cannot keep every tag is refused before anything starts.
2. Start the nodes with the same config writer as ``cluster up`` (same
   ``notify-keyspace-events``, ACL user, timeouts), ``CLUSTER MEET`` them, attach the
   replicas to the new master and wait for the cluster to agree.
3. Move the slot of the new master's node tag to it first (it holds no partition),
   copy the model package there under that tag, and, when workers run, wait until
   the supervisor has started the new master's worker and it is ready.
4. Move every other slot whose owner changes: plain slots in batches, partition slots
   one by one with copy-then-switch (:mod:`qasearch.cluster.slotmove`), waiting each time for
   the target's worker to report the partition loaded before the switch.

The node folders under ``data_dir`` are the layout: ``cluster status``, ``down`` and
``up`` (restart) find the added nodes there (``localnodes.managed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis.backoff import NoBackoff
from redis.retry import Retry

from qasearch.cluster import localcluster, localnodes, nodewait
from qasearch.cluster.slotmove import Node, move_partition, move_slots
from qasearch.core import heartbeat, keys, modelpkg, procs
from qasearch.core.partitions import (
    SLOTS,
    SlotRange,
    in_ranges,
    node_tag,
    owned_partitions,
    partition_slot_ranges,
    partition_tag,
    slot_of_tag,
)
from qasearch.core.settings import Settings
from qasearch.core.topology import Master, masters, node_client

WORKER_WAIT_S = 300.0
POLL_S = 0.2


class ScaleOutError(localcluster.ClusterError):
    """The cluster could not be grown as asked."""


@dataclass
class Plan:
    """The slot ranges every master owns after the move, by node id (new master: "")."""

    partitions: int
    ranges: dict[str, SlotRange]
    tags: dict[str, str]


@dataclass
class AddNodeResult:
    master: str  # address of the new master
    replicas: list[str]
    tag: str
    partitions_moved: int
    slots_moved: int
    keys_moved: int
    seconds: float
    waited_for_workers: bool
    status: localcluster.ClusterStatus | None = None
    log: list[str] = field(default_factory=list)


def plan(current: list[Master], partitions: int) -> Plan:
    """Ranges per master for ``len(current) + 1`` masters, keeping every node tag."""
    ranges = partition_slot_ranges(len(current) + 1, partitions)
    taken: dict[int, Master] = {}
    for master in current:
        home = next(i for i, (lo, hi) in enumerate(ranges) if lo <= slot_of_tag(master.tag) <= hi)
        if home in taken or node_tag([ranges[home]]) != master.tag:
            raise ScaleOutError(
                f"rebalancing to {len(ranges)} masters would change the node tag of "
                f"{master.address} ({{{master.tag}}}); not supported for this layout"
            )
        taken[home] = master
    free = [i for i in range(len(ranges)) if i not in taken]
    assert len(free) == 1
    by_id = {m.node_id: ranges[i] for i, m in taken.items()}
    by_id[""] = ranges[free[0]]
    return Plan(partitions, by_id, {nid: node_tag([r]) for nid, r in by_id.items()})


def _partition_count(settings: Settings, current: list[Master]) -> int:
    return localcluster.partition_count(
        settings, current, len(current) * settings.partitions_per_master)


def _new_ports(settings: Settings, ip: str, count: int) -> list[int]:
    used = {s.port for s in localnodes.managed(settings)}
    port, found = max(used) + 1, []
    while len(found) < count:
        if port + localnodes.BUS_PORT_OFFSET >= 65536:
            raise ScaleOutError("no free ports above the cluster's for new nodes")
        if (port not in used and procs.port_free(ip, port)
                and procs.port_free(ip, port + localnodes.BUS_PORT_OFFSET)):
            found.append(port)
        port += 1
    return found


def _start_nodes(settings: Settings, ip: str, replicas: int, timeout: float,
                 say: Callable[[str], None]) -> tuple[localnodes.NodeSpec, list]:
    """Start the new master and replicas, meet them, attach the replicas; wait for ok."""
    existing = localnodes.managed(settings)
    data = Path(settings.data_dir).resolve()
    ports = _new_ports(settings, ip, 1 + replicas)
    master = localnodes.NodeSpec(ports[0], data / str(ports[0]))
    reps = [localnodes.NodeSpec(p, data / str(p), master_port=ports[0]) for p in ports[1:]]
    new = [master, *reps]
    every = existing + new
    clients = {s.port: nodewait.local_client(settings, ip, s.port) for s in every}
    try:
        offsets = localnodes.start_nodes(new, settings, ip)
        nodewait.wait_ping(settings, new, clients, offsets, timeout)
        via = next(s for s in existing if localcluster.node_pid(s) is not None)
        for spec in new:
            clients[via.port].cluster("MEET", ip, spec.port)
        localcluster.wait_mesh(every, clients, timeout)
        master_id = clients[master.port].cluster("MYID")
        for spec in reps:
            clients[spec.port].cluster("REPLICATE", master_id)
        nodewait.wait_ready(every, clients, timeout)
    finally:
        for client in clients.values():
            client.close()
    say(f"started master {ip}:{master.port}"
        + (f" and replica(s) {', '.join(str(s.port) for s in reps)}" if reps else ""))
    return master, reps


def _node(settings: Settings, host: str, port: int, node_id: str) -> Node:
    client = node_client(host, port, settings, socket_timeout=60, socket_connect_timeout=2,
                         retry=Retry(NoBackoff(), 0))
    return Node(host, port, node_id, client)


def _owner_map(current: list[Master]) -> list[str]:
    owner = [""] * SLOTS
    for m in current:
        for lo, hi in m.ranges:
            for s in range(lo, hi + 1):
                owner[s] = m.node_id
    return owner


def _workers_running(settings: Settings) -> bool:
    return procs.running_pid(
        settings.run_dir, procs.SUPERVISOR, procs.SUPERVISOR_MARKER) is not None


def _heartbeat(node: Node, tag: str) -> dict[str, str]:
    return heartbeat.read_node(node.client, tag, node.address, node.node_id)


def _wait_worker(node: Node, tag: str, timeout: float, what: str,
                 done: Callable[[dict[str, str]], bool]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = _heartbeat(node, tag)
        if heartbeat.is_ready(state) and done(state):
            return
        if time.monotonic() > deadline:
            raise ScaleOutError(f"timed out after {timeout:.0f}s waiting for the worker of "
                                f"{node.address} to {what} (heartbeat: {state or 'none'})")
        time.sleep(POLL_S)


def add_node(settings: Settings, replicas: int = 1, timeout: float = 60.0,
             worker_timeout: float = WORKER_WAIT_S,
             say: Callable[[str], None] = lambda _line: None) -> AddNodeResult:
    """Add a master with ``replicas`` replicas and rebalance the partitions (module doc)."""
    t0 = time.monotonic()
    if replicas < 0:
        raise ScaleOutError("--replicas must be 0 or more")
    ip = localnodes.loopback_ip(settings.host)
    before = localcluster.status(settings)
    if before.state != "ok":
        raise ScaleOutError(f"cluster_state is {before.state}; run `qasearch cluster up` first")
    current = masters(settings)
    partitions = _partition_count(settings, current)
    if partitions < len(current) + 1:
        raise ScaleOutError(f"{partitions} partitions cannot be shared by "
                            f"{len(current) + 1} masters")
    layout = plan(current, partitions)  # refuses before any node starts
    spec, reps = _start_nodes(settings, ip, replicas, timeout, say)
    probe = _node(settings, ip, spec.port, "")
    try:
        new_id = probe.client.execute_command("CLUSTER MYID").decode()
    finally:
        probe.client.close()
    layout.ranges[new_id] = layout.ranges.pop("")
    layout.tags[new_id] = layout.tags.pop("")
    nodes = {m.node_id: _node(settings, m.host, m.port, m.node_id) for m in current}
    nodes[new_id] = _node(settings, ip, spec.port, new_id)
    new_tag = layout.tags[new_id]
    result = AddNodeResult(f"{ip}:{spec.port}", [f"{ip}:{r.port}" for r in reps], new_tag,
                           0, 0, 0, 0.0, _workers_running(settings))
    try:
        owner = _owner_map(current)
        tag_slot = slot_of_tag(new_tag)
        first = nodes[owner[tag_slot]]
        result.keys_moved += move_slots(first, nodes[new_id], [tag_slot], nodes.values(),
                                        settings)
        result.slots_moved += 1
        owner[tag_slot] = new_id
        say(f"slot {tag_slot} of node tag {{{new_tag}}} moved to {result.master}")
        source = nodes[current[0].node_id]
        version = modelpkg.copy_versions(source.client, current[0].tag,
                                         nodes[new_id].client, new_tag)
        if version:
            say(f"model {version} copied to {result.master} under {{{new_tag}}}")
        if result.waited_for_workers and version:
            say("waiting for the new master's worker (started by the supervisor)")
            _wait_worker(nodes[new_id], new_tag, worker_timeout, "be ready",
                         lambda s: s.get("model") == version)
        _rebalance(settings, layout, owner, nodes, result, worker_timeout, say)
    finally:
        for node in nodes.values():
            node.client.close()
    result.status = _converged(settings, layout, timeout)
    result.seconds = time.monotonic() - t0
    return result


def _rebalance(settings: Settings, layout: Plan, owner: list[str], nodes: dict[str, Node],
               result: AddNodeResult, worker_timeout: float, say: Callable[[str], None]) -> None:
    partition_slots = {slot_of_tag(partition_tag(p)): p for p in range(layout.partitions)}
    moves: dict[tuple[str, str], list[int]] = {}
    for nid, (lo, hi) in layout.ranges.items():
        for slot in range(lo, hi + 1):
            if owner[slot] != nid:
                moves.setdefault((owner[slot], nid), []).append(slot)
    for (src_id, dst_id), slots in moves.items():
        src, dst = nodes[src_id], nodes[dst_id]
        plain = [s for s in slots if s not in partition_slots]
        result.keys_moved += move_slots(src, dst, plain, nodes.values(), settings)
        result.slots_moved += len(plain)
        for slot in (s for s in slots if s in partition_slots):
            tag = partition_tag(partition_slots[slot])

            def loaded(tag: str = tag, dst: Node = dst, dst_id: str = dst_id) -> None:
                if result.waited_for_workers:
                    _wait_worker(dst, layout.tags[dst_id], worker_timeout, f"load {tag}",
                                 lambda state: tag in _loaded(state))

            result.keys_moved += move_partition(
                src, dst, slot, keys.passage_index(tag).encode(), nodes.values(), settings,
                loaded)
            result.slots_moved += 1
            result.partitions_moved += 1
            say(f"partition {tag} moved {src.address} -> {dst.address}")


def _loaded(state: dict[str, str]) -> list[str]:
    """Partitions a worker heartbeat reports in memory: owned ones and warm (importing)."""
    return (state.get("warm", "") + "," + state.get("partitions", "")).split(",")


def _converged(settings: Settings, layout: Plan, timeout: float) -> localcluster.ClusterStatus:
    """The cluster's status once every node reports the planned ranges. Masters were
    told directly; replicas (``status`` may read a replica's view) learn by gossip."""
    deadline = time.monotonic() + timeout
    while True:
        status = localcluster.status(settings)
        try:
            _check(status, layout)
            return status
        except ScaleOutError:
            if time.monotonic() > deadline:
                raise
        time.sleep(POLL_S)


def _check(status: localcluster.ClusterStatus, layout: Plan) -> None:
    """The cluster must now hold exactly the planned ranges."""
    got = {m.node_id: [tuple(r) for r in m.ranges] for m in status.masters}
    for nid, (lo, hi) in layout.ranges.items():
        ranges = got.get(nid, [])
        covered = sum(b - a + 1 for a, b in ranges)
        if covered != hi - lo + 1 or not all(in_ranges(a, [(lo, hi)]) for a, _ in ranges):
            raise ScaleOutError(f"node {nid} owns {ranges}, planned {lo}-{hi}")


def share(status: localcluster.ClusterStatus) -> dict[str, int]:
    """Partitions per master address (what ``add-node`` balances)."""
    return {m.address: len(owned_partitions([tuple(r) for r in m.ranges], status.partitions))
            for m in status.masters}
